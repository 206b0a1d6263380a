"""systemd notifications: what `Notifier` sends arrives on a real AF_UNIX datagram socket, and
`keepwarm run` speaks the protocol as a `Type=notify` service with a watchdog must."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from keepwarm.daemon.notify import Notifier


@dataclass(frozen=True)
class Datagram:
    fields: list[str]  # the KEY=VALUE lines, in order
    pid: int  # the sender, from the kernel's SCM_CREDENTIALS (what NotifyAccess=main checks)


class Manager:
    """The service manager's end: a bound datagram socket reading sender credentials."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        bind_to = "\0" + address[1:] if address.startswith("@") else address
        self.sock.bind(bind_to)
        self.address = address

    def receive(self, timeout: float = 5.0) -> Datagram | None:
        self.sock.settimeout(timeout)
        try:
            data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except TimeoutError:
            return None
        pid = -1
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        return Datagram(data.decode().split("\n"), pid)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Manager]:
    kind = request.param
    address = str(tmp_path / "notify") if kind == "path" else f"@keepwarm-test/{uuid.uuid4()}"
    listening = Manager(address)
    yield listening
    listening.close()


def test_each_message_arrives_as_one_datagram_from_this_process(manager: Manager) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": manager.address})
    assert notifier.enabled
    notifier.ready("1 account, 0 failing, next poll in 300 s")
    notifier.status("polling home\nand more")  # a newline must not start a bogus field
    notifier.watchdog()
    notifier.extend_timeout(90)
    notifier.stopping("stopping: waiting for 1 account")
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    got = [manager.receive() for _ in range(6)]
    notifier.close()
    assert all(d is not None and d.pid == os.getpid() for d in got)
    fields = [d.fields for d in got if d is not None]
    assert fields[:5] == [
        ["READY=1", "STATUS=1 account, 0 failing, next poll in 300 s"],
        ["STATUS=polling home and more"],
        ["WATCHDOG=1"],
        ["EXTEND_TIMEOUT_USEC=90000000"],
        ["STOPPING=1", "STATUS=stopping: waiting for 1 account"],
    ]
    reload_fields = fields[5]
    assert reload_fields[0] == "RELOADING=1"
    key, _, usec = reload_fields[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(usec) <= after


def test_without_notify_socket_nothing_is_sent_and_nothing_fails(manager: Manager) -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    with capture_logs() as logs:
        notifier.ready("x")
        notifier.watchdog()
        notifier.stopping()
    assert logs == []
    assert manager.receive(timeout=0.2) is None


def test_a_failed_send_never_raises_and_is_logged_once_at_debug(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    with capture_logs() as logs:
        for _ in range(3):
            notifier.watchdog()
        notifier.ready("still fine")
    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("debug", "systemd notification failed")
    ]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "2000000"}, 1.0),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": str(os.getpid())}, 60.0),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout_for_this_process_only(
    env: dict[str, str], expected: float | None
) -> None:
    assert Notifier(env).watchdog_interval() == expected


# -- keepwarm run under a (test) service manager ------------------------------------------------

MESSAGE = (
    "From: Bob <bob@example.net>\r\nTo: me@example.org\r\nSubject: hi\r\n"
    "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.net>\r\n\r\nbody\r\n"
)


def _config(root: Path) -> Path:
    maildir = root / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1.M1P1.host:2,S").write_text(MESSAGE)
    config = root / "keepwarm.toml"
    config.write_text(
        f'[owner]\naddresses = ["me@example.org"]\n[store]\nurl = "sqlite:///{root}/kw.db"\n'
        f'[[accounts]]\nname = "home"\nkind = "maildir"\npath = "{maildir}"\n'
        "interval_seconds = 600\n"
    )
    return config


def _touchpoints(config: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-m", "keepwarm", "--config", str(config), "status", "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (account,) = json.loads(out)["accounts"]
    return int(account["touchpoints"])


def test_run_says_ready_once_pings_the_watchdog_in_time_and_says_stopping(tmp_path: Path) -> None:
    """`keepwarm run` under a service manager with WatchdogSec=2s: READY=1 once with a STATUS=
    line, WATCHDOG=1 more often than every 2 s (the loop's own thread, whatever the polls do),
    STOPPING=1 on SIGTERM; everything from the main process (NotifyAccess=main drops others)."""
    config = _config(tmp_path)
    manager = Manager(str(tmp_path / "notify"))
    env = {**os.environ, "NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "2000000"}
    env.pop("WATCHDOG_PID", None)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "keepwarm", "--config", str(config), "--log-level", "info", "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    received: list[tuple[float, Datagram]] = []  # (when it arrived, what)

    def until(field: str, timeout: float) -> Datagram:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = manager.receive(timeout=left)
            if got is None:
                break
            received.append((time.monotonic(), got))
            if field in got.fields:
                return got
        raise AssertionError(f"no {field} within {timeout} s; got {[d for _, d in received]}")

    try:
        ready = until("READY=1", timeout=30)
        status = [f for f in ready.fields if f.startswith("STATUS=")]
        assert len(status) == 1
        assert re.match(r"STATUS=1 accounts?\b", status[0])
        # Read as they come (nothing else in between), so arrival times are the sending times.
        pings: list[float] = []
        while not pings or pings[-1] - pings[0] < 3.0:
            until("WATCHDOG=1", timeout=2.0)  # systemd would kill the service after 2 s
            pings.append(received[-1][0])
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert max(gaps) < 2.0
        assert min(gaps) > 0.3  # about every second (half of WATCHDOG_USEC), not in a burst
        deadline = time.monotonic() + 30
        while _touchpoints(config) != 1:  # and the service did its work meanwhile
            assert time.monotonic() < deadline, "the message was never stored"
            time.sleep(0.3)
        daemon.send_signal(signal.SIGTERM)
        until("STOPPING=1", timeout=30)
        code = daemon.wait(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        manager.close()
    err = daemon.stderr.read() if daemon.stderr else ""
    assert code == 0, err
    assert all(d.pid == daemon.pid for _, d in received)
    assert [d for _, d in received if "READY=1" in d.fields] == [ready]
