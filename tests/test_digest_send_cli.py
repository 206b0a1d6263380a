"""`keepwarm digest --send` / `--send-now` as a user runs them, and a sender killed mid-send."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.cli_world import ME, NOW, World, world

from keepwarm.store import Store

if TYPE_CHECKING:
    from tests.servers.smtp import SmtpServer

pytest_plugins = ("tests.servers.smtp",)


@pytest.fixture
def home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> World:
    w = world(tmp_path, capsys, monkeypatch)
    w.maildir("home")
    # Ana wrote every three weeks for a year, then nothing for four months: she is going cold.
    w.exchange("Ana Silva", "ana@friends.example", [120 + 21 * i for i in range(16)])
    w.exchange("Bob", "bob@friends.example", [2, 9, 16, 23, 30])
    return w


def configure(w: World, server: SmtpServer, digest: str = "") -> None:
    secret = w.root / "smtp-password"
    secret.write_text("correct horse battery staple\n")
    secret.chmod(0o600)
    password = secret if server.auth else None
    w.write_config(
        f'[digest]\nto = "{ME}"\ntimezone = "Europe/London"\n{digest}\n' + server.toml(password)
    )


def test_send_delivers_this_weeks_digest_once(home: World, smtp_starttls: SmtpServer) -> None:
    configure(home, smtp_starttls)
    home.ok("sync")
    first = home.ok("digest", "--send")
    assert first.out.startswith("sent week ")
    assert "250 2.0.0 Ok: queued as KW0001" in first.out
    again = home.ok("digest", "--send")
    assert again.out.startswith("not sent: week ")
    assert "was already sent: 250 2.0.0 Ok: queued as KW0001" in again.out
    (got,) = smtp_starttls.received
    msg = got.message
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert msg["Subject"].startswith("keepwarm: 1 person going cold")
    for part in (plain, html):
        content = part.get_content()  # type: ignore[attr-defined]
        assert "Ana Silva" in content
        assert "keepwarm snooze ana@friends.example 30d" in content
        assert "keepwarm ignore ana@friends.example" in content
        assert str(home.config) in " ".join(content.split())  # how to stop: which file
    assert msg["Message-ID"] in first.out


def test_send_now_sends_again_beside_the_periods_digest(
    home: World, smtp_plain: SmtpServer
) -> None:
    configure(home, smtp_plain)
    first = home.ok("digest", "--send-now")  # the period had none: this one counts as it
    assert first.out.startswith("sent week ")
    assert "extra" not in first.out
    assert home.ok("digest", "--send").out.startswith("not sent")
    extra = home.ok("digest", "--send-now")
    assert "(an extra copy)" in extra.out
    one, two = (r.message["Message-ID"] for r in smtp_plain.received)
    assert one != two


def test_send_json_reports_the_outcome(home: World, smtp_plain: SmtpServer) -> None:
    configure(home, smtp_plain)
    doc = home.ok("digest", "--send", "--format", "json").json()
    assert doc["status"] == "sent"
    assert doc["recipient"] == ME
    assert doc["reply"].startswith("250 ")
    assert doc["message_id"] == smtp_plain.received[0].message["Message-ID"]
    assert home.ok("digest", "--send", "--format", "json").json()["status"] == "done"


def test_sending_needs_a_recipient_and_a_server(home: World) -> None:
    home.write_config("")
    run = home.cli("digest", "--send")
    assert run.code == 2
    assert "digest.to: required to send the digest" in run.err
    assert "smtp.host: required to send the digest" in run.err
    assert "Traceback" not in run.err
    # A preview needs neither.
    assert home.ok("digest").out.startswith("keepwarm · week ")


def test_a_refused_digest_exits_1_with_the_servers_reply(
    home: World, smtp_plain: SmtpServer
) -> None:
    configure(home, smtp_plain)
    smtp_plain.script.append("554")
    run = home.cli("digest", "--send")
    assert run.code == 1
    assert "554 5.7.1 Message rejected by policy" in run.err
    assert run.out.startswith("FAILED week ")
    # Fixed on the server's side: sending by hand again goes at once.
    assert home.ok("digest", "--send").out.startswith("sent week ")


def test_a_wrong_password_source_exits_2_naming_the_key(
    home: World, smtp_starttls: SmtpServer
) -> None:
    configure(home, smtp_starttls)
    (home.root / "smtp-password").unlink()
    run = home.cli("digest", "--send")
    assert run.code == 2
    assert "smtp.password_file:" in run.err
    assert smtp_starttls.received == []


def test_send_and_send_now_together_are_a_usage_error(home: World) -> None:
    home.write_config("")
    assert home.cli("digest", "--send", "--send-now").code == 2


def test_a_sender_killed_after_the_server_took_the_message_resends_it_unchanged(
    tmp_path: Path, store_url: str, smtp_plain: SmtpServer
) -> None:
    """The at-least-once window, end to end: `digest --send` dies (SIGKILL) after the server
    kept the message and before the reply. The next `--send` on this host sees the holder is
    gone, resends the identical message (same Message-ID) and records the reply; the one after
    sends nothing."""
    config = tmp_path / "keepwarm.toml"
    config.write_text(
        f'[store]\nurl = "{store_url}"\n[digest]\nto = "{ME}"\n' + smtp_plain.toml(),
        encoding="utf-8",
    )
    env = {**os.environ, "KEEPWARM_NOW": NOW.isoformat()}
    command = [sys.executable, "-m", "keepwarm", "--config", str(config), "digest", "--send"]
    smtp_plain.script.append("hold")
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert smtp_plain.holding.wait(60), child.communicate(timeout=5)
    finally:
        child.kill()
        child.communicate(timeout=30)
    smtp_plain.release.set()
    assert len(smtp_plain.received) == 1  # the server has it; the sender never heard so

    with Store.open(store_url) as store:
        (row,) = store.outbox.recent()
        assert (row.status, row.reply) == ("pending", None)
        assert row.claimed_by is not None
        assert row.claimed_by.endswith(f":{child.pid}")

    resent = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert resent.returncode == 0, resent.stderr
    assert resent.stdout.startswith("sent week ")
    first, second = smtp_plain.received
    assert first.raw == second.raw
    assert first.message["Message-ID"] == second.message["Message-ID"]

    last = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert last.stdout.startswith("not sent")
    assert len(smtp_plain.received) == 2
