"""`keepwarm run` sends the week's digest after its first polls, and a restart sends no other."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.cli_world import ME, world

if TYPE_CHECKING:
    from tests.servers.smtp import SmtpServer

pytest_plugins = ("tests.servers.smtp",)


def run_daemon(config: Path) -> str:
    """Run `keepwarm run` until its first poll is done and a few ticks passed; its stderr."""
    daemon = subprocess.Popen(
        [sys.executable, "-m", "keepwarm", "--config", str(config), "--log-level", "info", "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(daemon.stderr or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not any("account synced" in line for line in lines):
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)
        time.sleep(2.0)  # the digest goes right after the first poll; two more ticks pass
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    reader.join(10)
    err = "".join(lines)
    assert daemon.returncode == 0, err
    return err


def test_the_daemon_sends_once_and_a_restart_sends_nothing_more(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    smtp_plain: SmtpServer,
) -> None:
    w = world(tmp_path, capsys, monkeypatch)
    w.maildir("home")
    w.exchange("Ana Silva", "ana@friends.example", [120 + 21 * i for i in range(16)])
    w.write_config(f'[digest]\nto = "{ME}"\n' + smtp_plain.toml())

    err = run_daemon(w.config)
    assert len(smtp_plain.received) == 1, err
    assert "digest sent" in err
    msg = smtp_plain.received[0].message
    assert "Ana Silva" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    err = run_daemon(w.config)  # the restart: same period, already sent
    assert len(smtp_plain.received) == 1, err
    assert "digest sent" not in err
