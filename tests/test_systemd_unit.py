"""systemd/keepwarm.service: clean for `systemd-analyze verify`, exposure 2.0 or lower, a
`Type=notify` service with a watchdog, and its command line really runs, logging JSON lines.

systemd is not PID 1 here: the offline analyses are what can run. `verify` needs the ExecStart
binary to exist, so the checks run on a copy pointing at this environment's `keepwarm`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keepwarm.config.schema import DaemonConfig

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "keepwarm.service"
INSTALLED_AT = "/usr/local/bin/keepwarm"


def _keepwarm() -> str:
    found = Path(sys.executable).with_name("keepwarm")
    assert found.exists(), f"the keepwarm entry point is not installed beside {sys.executable}"
    return str(found)


def _settings(text: str) -> dict[str, list[str]]:
    """`Section.Key` -> every value given, in order (systemd keys may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


def _seconds(value: str) -> float:
    """A systemd time span like "120s", "5min" or "1min 30s" in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)\s*([a-z]*)", value)
    assert parts, f"not a time span: {value!r}"
    return float(sum(int(n) * units[unit] for n, unit in parts))


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    text = UNIT.read_text()
    assert INSTALLED_AT in text
    copy = tmp_path / "keepwarm.service"
    copy.write_text(text.replace(INSTALLED_AT, _keepwarm()))
    return copy


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is needed (Debian package systemd)"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, check=False)


def test_verify_is_clean(unit_copy: Path) -> None:
    done = _analyze("verify", str(unit_copy))
    # Unknown keys and bad values are only warnings on stderr: any output is a failure.
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "")


def test_security_exposure_is_two_or_lower(unit_copy: Path) -> None:
    done = _analyze("security", "--offline=yes", "--threshold=20", str(unit_copy))
    level = re.search(r"Overall exposure level for keepwarm\.service: (\d+\.\d+)", done.stdout)
    assert level, done.stdout + done.stderr
    assert float(level[1]) <= 2.0, done.stdout
    assert done.returncode == 0, done.stdout + done.stderr  # --threshold agrees


def test_a_notify_service_with_watchdog_restart_and_stop_time_for_the_loop() -> None:
    unit = _settings(UNIT.read_text())
    assert unit["Service.Type"] == ["notify"]
    assert unit["Service.NotifyAccess"] == ["main"]  # only keepwarm itself, not its children
    watchdog = _seconds(unit["Service.WatchdogSec"][-1])
    assert 10 <= watchdog <= 600
    assert unit["Service.Restart"] == ["on-failure"]
    # SIGTERM waits daemon.stop_timeout for the batches in flight: systemd must wait longer.
    assert _seconds(unit["Service.TimeoutStopSec"][-1]) > DaemonConfig().stop_timeout
    assert unit["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    # The default SQLite store and token files land in the StateDirectory systemd creates.
    assert unit["Service.Environment"] == ["XDG_STATE_HOME=/var/lib"]
    assert unit["Service.StateDirectory"] == ["keepwarm"]
    for key in ("DynamicUser", "NoNewPrivileges", "PrivateUsers", "RestrictNamespaces"):
        assert unit[f"Service.{key}"] == ["yes"], key
    assert unit["Service.ProtectSystem"] == ["strict"]


MESSAGE = (
    "From: Bob <bob@example.net>\r\nTo: me@example.org\r\nSubject: hi\r\n"
    "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.net>\r\n\r\nbody\r\n"
)


def _touchpoints(config: Path, env: dict[str, str]) -> int:
    out = subprocess.run(
        [_keepwarm(), "--config", str(config), "status", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    return sum(int(account["touchpoints"]) for account in json.loads(out)["accounts"])


def test_the_units_command_line_runs_and_logs_json_lines_for_the_journal(tmp_path: Path) -> None:
    """journald stores stderr lines; keepwarm writes one JSON object per line when stderr is not
    a terminal, so the unit needs no log setting."""
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1.M1P1.host:2,S").write_text(MESSAGE)
    config = tmp_path / "keepwarm.toml"
    config.write_text(
        f'[owner]\naddresses = ["me@example.org"]\n[daemon]\nlog_level = "info"\n'
        f'[[accounts]]\nname = "home"\nkind = "maildir"\npath = "{maildir}"\n'
    )
    (command,) = _settings(UNIT.read_text())["Service.ExecStart"]
    argv = [
        _keepwarm() if arg == INSTALLED_AT else str(config) if arg.endswith(".toml") else arg
        for arg in shlex.split(command)
    ]
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}  # as Environment= does
    daemon = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 60
        # Polled: the default store in the state directory holds the message.
        while _touchpoints(config, env) != 1:
            assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
            assert time.monotonic() < deadline, "the message was never stored"
            time.sleep(0.3)
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    err = daemon.stderr.read() if daemon.stderr else ""
    assert code == 0, err
    lines = [json.loads(line) for line in err.splitlines()]
    events = [line["event"] for line in lines]
    assert "service started" in events
    assert "service stopped" in events
    assert all({"event", "level", "timestamp"} <= line.keys() for line in lines)
