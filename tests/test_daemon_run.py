"""`keepwarm run` as a real process: it syncs, survives a bad SIGHUP reload, stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

MESSAGE = (
    "From: Bob <bob@example.net>\r\nTo: me@example.org\r\nSubject: hi\r\n"
    "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{n}@example.net>\r\n\r\nbody\r\n"
)


def write_config(root: Path, extra: str = "") -> Path:
    maildir = root / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    (maildir / "cur" / "1.M1P1.host:2,S").write_text(MESSAGE.format(n=1))
    config = root / "keepwarm.toml"
    config.write_text(
        f'[owner]\naddresses = ["me@example.org"]\n[store]\nurl = "sqlite:///{root}/kw.db"\n'
        f'[[accounts]]\nname = "home"\nkind = "maildir"\npath = "{maildir}"\n'
        f"interval_seconds = 10\n{extra}"
    )
    return config


def status(config: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "keepwarm", "--config", str(config), "status", "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (account,) = json.loads(out)["accounts"]
    assert isinstance(account, dict)
    return account


def wait_for(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_run_syncs_reloads_safely_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    env = {**os.environ, "KEEPWARM_NOW": "2026-11-25T08:00:00+00:00"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "keepwarm", "--config", str(config), "--log-level", "info", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for(lambda: status(config)["touchpoints"] == 1)
        # A broken config on SIGHUP is refused; the service keeps running on the old one.
        config.write_text(
            config.read_text().replace("interval_seconds = 10", "interval_seconds = 1")
        )
        daemon.send_signal(signal.SIGHUP)
        time.sleep(2)
        assert daemon.poll() is None
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=15)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    err = daemon.stderr.read() if daemon.stderr else ""
    assert code == 0, err
    assert "config reload failed" in err
    assert "interval_seconds" in err
    assert "service stopped" in err
