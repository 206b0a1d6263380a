"""A private Radicale (CalDAV) server for tests and benchmarks: `python -m radicale -C CONFIG`,
and its users, whose calendars are filled through the caldav client as a phone would fill them.

htpasswd (plain) logins, owner_only rights, filesystem storage under a temp directory, a free
127.0.0.1 port. It runs in its own process group, killed at the end. Radicale logs one INFO line
per request ("PROPFIND request for '/alice/' ... received from ..."): `requests()` reads them,
so a test can count what a client really sent.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import caldav
import pytest

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, create
from keepwarm.model import Batch, MeetingMeta

_REQUEST = re.compile(r"(\w+) request for '([^']*)'")
STARTUP_TIMEOUT = 30.0


class RadicaleMissing(RuntimeError):
    """Radicale is not installed in this interpreter."""


class Radicale:
    """One running Radicale. Users and passwords are fixed at start; use as a context manager."""

    def __init__(
        self,
        users: dict[str, str],
        *,
        root: Path | None = None,
        extra: str = "",
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """`extra`: more config sections; `tls`: (certificate, key) to serve https."""
        if importlib.util.find_spec("radicale") is None:
            raise RadicaleMissing(
                "Radicale is needed for the CalDAV tests: install it with "
                "`.venv/bin/pip install radicale` (it is in the `test` extra)"
            )
        self.users = dict(users)
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="keepwarm-radicale-")) if root is None else root
        self.root.mkdir(parents=True, exist_ok=True)
        self.storage = self.root / "collections"
        self.log_path = self.root / "radicale.log"
        self.port = _free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/"
        ssl = f"ssl = True\ncertificate = {tls[0]}\nkey = {tls[1]}\n" if tls else ""
        (self.root / "users").write_text(
            "".join(f"{name}:{password}\n" for name, password in self.users.items())
        )
        (self.root / "config").write_text(
            f"""[server]
hosts = 127.0.0.1:{self.port}
max_connections = 8
delay_on_error = 0
{ssl}[auth]
type = htpasswd
htpasswd_filename = {self.root / "users"}
htpasswd_encryption = plain
delay = 0
[rights]
type = owner_only
[storage]
filesystem_folder = {self.storage}
[web]
type = none
[logging]
level = info
{extra}
"""
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Radicale:
        """Start the server and wait until its port answers."""
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "radicale", "-C", str(self.root / "config")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, killed whole at the end
            preexec_fn=_die_with_parent,  # and if the test runner itself is killed
        )
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Radicale exited at start:\n{self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Radicale did not listen within {STARTUP_TIMEOUT:g} s")

    def stop(self) -> None:
        """Kill the process group and remove the temp directory this object made."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Radicale:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def add_user(self, name: str, password: str) -> None:
        """Another login; Radicale reads the htpasswd file at each login."""
        self.users[name] = password
        with (self.root / "users").open("a") as users:
            users.write(f"{name}:{password}\n")

    def requests(self) -> list[tuple[str, str]]:
        """Every request the server has received so far, as (method, path), oldest first."""
        text = self.log_path.read_text(errors="replace")
        return [(m[1], m[2]) for m in _REQUEST.finditer(text)]

    def mark(self) -> int:
        """A position in the request log: `requests_since(mark)` lists what came after it."""
        return len(self.requests())

    def requests_since(self, mark: int) -> list[tuple[str, str]]:
        return self.requests()[mark:]


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL it when its parent dies."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def radicale_server(
    users: dict[str, str],
    root: Path | None = None,
    extra: str = "",
    tls: tuple[Path, Path] | None = None,
) -> Iterator[Radicale]:
    """The body of a fixture: a started server, or a failed test saying what to install.
    Give `root` from pytest's tmp_path_factory: pytest removes it in later runs, even after a
    run that was killed before it could clean up."""
    try:
        server = Radicale(users, root=root, extra=extra, tls=tls)
    except RadicaleMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    with server:
        yield server


_users = itertools.count(1)
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="session")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    """One Radicale for the whole test session (it starts in about a second)."""
    yield from radicale_server({"admin": secrets.token_hex(8)}, tmp_path_factory.mktemp("dav"))


class DavUser:
    """A Radicale user of its own, with a client to fill calendars and an account to read them."""

    def __init__(self, server: Radicale, tmp_path: Path, ca_file: str | None = None) -> None:
        self.server = server
        self.name = f"user{next(_users)}"
        self.password = secrets.token_hex(8)
        server.add_user(self.name, self.password)
        secret = tmp_path / f"{self.name}.password"
        secret.write_text(self.password + "\n")
        secret.chmod(0o600)
        self.client = caldav.DAVClient(
            server.url, username=self.name, password=self.password,
            ssl_verify_cert=ca_file or True,
        )  # fmt: skip
        self.principal = self.client.principal()
        self.account = AccountConfig(
            name="dav", kind="caldav", url=server.url, username=self.name,
            password_file=str(secret), backfill_days=365, timeout=30, ca_file=ca_file,
        )  # fmt: skip

    def calendar(self, cal_id: str, name: str | None = None, **kwargs: Any) -> caldav.Calendar:
        return self.principal.make_calendar(name=name or cal_id.title(), cal_id=cal_id, **kwargs)

    def url(self, cal_id: str) -> str:
        return f"{self.server.url}{self.name}/{cal_id}/"

    def account_with(self, **changes: Any) -> AccountConfig:
        return replace(self.account, **changes)


@pytest.fixture
def dav_user(radicale: Radicale, tmp_path: Path) -> DavUser:
    return DavUser(radicale, tmp_path)


def vevent(uid: str, start: datetime, extra: str = "", *, hours: float = 1.0) -> str:
    """One VEVENT: the user's meeting with Alice, or whatever `extra` adds."""
    lines = [
        "BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20240101T000000Z",
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
        f"DTEND:{start + timedelta(hours=hours):%Y%m%dT%H%M%SZ}",
        "SUMMARY:Catch-up", "ORGANIZER;CN=Alice:mailto:alice@example.org",
        "ATTENDEE;PARTSTAT=ACCEPTED;CN=Me:mailto:me@example.net",
        "ATTENDEE;PARTSTAT=ACCEPTED;CN=Alice:mailto:alice@example.org", extra, "END:VEVENT",
    ]  # fmt: skip
    return "\r\n".join(line for line in lines if line)


def ics(*events: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//keepwarm tests//EN\r\n"
        + "\r\n".join(events)
        + "\r\nEND:VCALENDAR\r\n"
    )


def context(now: datetime = NOW, state_dir: Path | None = None) -> ConnectorContext:
    return ConnectorContext(state_dir=state_dir or Path("/nonexistent"), now=lambda: now)


def poll(account: AccountConfig, cursor: str | None, now: datetime = NOW) -> Batch:
    """One poll to the end through the registry: its one batch."""
    connector = create(account, context(now))
    try:
        [batch] = list(connector.poll(cursor))
    finally:
        connector.close()
    return batch


def instances(batch: Batch) -> list[tuple[str, str | None]]:
    """The batch's meetings as sorted (uid, recurrence id) pairs."""
    found = []
    for item in batch.items:
        assert isinstance(item, MeetingMeta)
        found.append((item.uid, item.recurrence_id))
    return sorted(found)


def uids(batch: Batch) -> list[str]:
    return sorted({uid for uid, _ in instances(batch)})
