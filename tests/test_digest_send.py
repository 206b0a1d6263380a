"""Delivery to a real SMTP server (aiosmtpd): plain, STARTTLS, implicit TLS, AUTH, failures."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
import structlog
from tests.test_digest_render import full_digest

from keepwarm.config.schema import SmtpConfig
from keepwarm.digest.message import build_message, new_message_id, stop_line, to_bytes
from keepwarm.digest.send import Delivery, Retry, SendError, deliver
from keepwarm.errors import UserError

if TYPE_CHECKING:
    from tests.servers.smtp import SmtpServer

pytest_plugins = ("tests.servers.smtp",)


@pytest.fixture(autouse=True)
def _logs_to_a_live_stderr() -> None:
    # CLI tests configure structlog to print to a captured stderr that is closed afterwards.
    structlog.reset_defaults()


ME = "me@example.org"
FAST = Retry(attempts=3, initial=0.01, maximum=0.05, jitter=0.0)


def digest_mail() -> tuple[bytes, str]:
    digest = full_digest()
    message_id = new_message_id(digest.period, ME)
    msg = build_message(
        digest,
        sender=f"keepwarm <{ME}>",
        recipient=ME,
        message_id=message_id,
        date=datetime(2026, 11, 23, 8, tzinfo=UTC),
        tz=ZoneInfo("Europe/London"),
        stop=stop_line(None),
    )
    return to_bytes(msg), message_id


def send(smtp: SmtpConfig) -> tuple[Delivery, list[float]]:
    """Deliver the full digest with fast retries; the waits tenacity asked for are returned."""
    waits: list[float] = []
    delivery = deliver(
        digest_mail()[0], sender=ME, recipient=ME, smtp=smtp, retry=FAST, sleep=waits.append
    )
    return delivery, waits


@pytest.mark.parametrize("kind", ["smtp_plain", "smtp_starttls", "smtp_tls"])
def test_each_security_mode_delivers_and_returns_the_servers_reply(
    kind: str, request: pytest.FixtureRequest
) -> None:
    server: SmtpServer = request.getfixturevalue(kind)
    raw, message_id = digest_mail()
    delivery = deliver(raw, sender=ME, recipient=ME, smtp=server.config(), retry=FAST)
    assert delivery.reply == "250 2.0.0 Ok: queued as KW0001"
    assert delivery.attempts == 1
    (got,) = server.received
    assert got.mail_from == ME
    assert got.rcpt_tos == (ME,)
    assert got.message["Message-ID"] == message_id


def test_the_received_digest_reads_right_in_a_mail_client(smtp_starttls: SmtpServer) -> None:
    deliver(digest_mail()[0], sender=ME, recipient=ME, smtp=smtp_starttls.config(), retry=FAST)
    msg = smtp_starttls.received[0].message
    assert msg["Subject"].startswith("keepwarm: 2 people going cold, 1 reply owed")
    assert msg["Auto-Submitted"] == "auto-generated"
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert isinstance(plain, EmailMessage)
    assert isinstance(html, EmailMessage)
    assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
    text, markup = plain.get_content(), html.get_content()
    for command in ("keepwarm snooze ana@oldco.example 30d", "keepwarm ignore bob@obrien.example"):
        assert command in text
        assert command in markup
    assert "<script>" not in markup
    assert "&lt;script&gt;" in markup
    assert "<script>alert(1)</script> O'Brien & Co" in text
    assert "To stop this weekly email" in " ".join(text.split())


def test_a_password_comes_from_the_configured_file(smtp_tls: SmtpServer, tmp_path: Path) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("correct horse battery staple\n")
    secret.chmod(0o600)
    smtp = smtp_tls.config(password_env=None, password_file=str(secret))
    assert send(smtp)[0]
    assert len(smtp_tls.received) == 1


def test_a_wrong_password_is_permanent_and_says_what_to_check(
    smtp_starttls: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEPWARM_TEST_SMTP", "wrong")
    with pytest.raises(SendError) as info:
        send(smtp_starttls.config())
    assert info.value.permanent
    assert "refused the login: 535" in str(info.value)
    assert "smtp.username" in str(info.value)
    assert "wrong" not in str(info.value)
    assert smtp_starttls.recorder.data_commands == 0


def test_a_missing_password_source_names_the_key(
    smtp_starttls: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEEPWARM_TEST_SMTP")
    with pytest.raises(UserError, match=r"^smtp\.password_env: "):
        send(smtp_starttls.config())


def test_an_untrusted_certificate_is_refused_with_the_key_to_set(smtp_tls: SmtpServer) -> None:
    with pytest.raises(SendError) as info:
        send(smtp_tls.config(ca_file=None))  # the system's CAs do not know our self-signed one
    assert info.value.permanent
    assert "certificate does not verify" in str(info.value)
    assert "smtp.ca_file" in str(info.value)
    assert smtp_tls.received == []


def test_starttls_required_but_not_offered_never_falls_back_to_plain_text(
    smtp_plain: SmtpServer,
) -> None:
    with pytest.raises(SendError, match="does not offer STARTTLS") as info:
        send(smtp_plain.config(security="starttls"))
    assert info.value.permanent
    assert smtp_plain.recorder.data_commands == 0


def test_implicit_tls_against_a_plain_port_says_which_setting_to_check(
    smtp_plain: SmtpServer,
) -> None:
    with pytest.raises(SendError, match=r"check smtp\.security and smtp\.port"):
        send(smtp_plain.config(security="tls"))


def test_plain_text_to_a_remote_host_is_refused_before_connecting() -> None:
    smtp = SmtpConfig(host="smtp.example.org", port=25, security="none")
    with pytest.raises(SendError, match=r"plain text to smtp\.example\.org") as info:
        send(smtp)
    assert info.value.permanent


def test_a_transient_refusal_after_data_is_retried_with_the_server_reply_recorded(
    smtp_plain: SmtpServer,
) -> None:
    smtp_plain.script.append("451")
    delivery, waits = send(smtp_plain.config())
    assert delivery.attempts == 2
    assert delivery.reply == "250 2.0.0 Ok: queued as KW0001"
    assert len(waits) == 1
    assert len(smtp_plain.received) == 1


def test_a_connection_cut_mid_data_is_retried(smtp_plain: SmtpServer) -> None:
    smtp_plain.script.append("drop")
    delivery, _ = send(smtp_plain.config())
    assert delivery.attempts == 2
    assert smtp_plain.recorder.data_commands == 2
    assert len(smtp_plain.received) == 1


def test_a_permanent_refusal_is_reported_at_once_with_the_reply(smtp_plain: SmtpServer) -> None:
    smtp_plain.script.append("554")
    with pytest.raises(SendError) as info:
        send(smtp_plain.config())
    assert info.value.permanent
    assert "refused at DATA: 554 5.7.1 Message rejected by policy" in str(info.value)
    assert smtp_plain.recorder.data_commands == 1  # not retried
    assert smtp_plain.received == []


def test_transient_failures_give_up_after_the_attempts_with_growing_waits(
    smtp_plain: SmtpServer,
) -> None:
    smtp_plain.script.extend(["451", "451", "451", "451"])
    waits: list[float] = []
    retry = Retry(attempts=4, initial=0.01, maximum=1.0, jitter=0.0)
    with pytest.raises(SendError, match="deferred at DATA: 451") as info:
        deliver(
            digest_mail()[0], sender=ME, recipient=ME, smtp=smtp_plain.config(), retry=retry,
            sleep=waits.append,
        )  # fmt: skip
    assert not info.value.permanent
    assert smtp_plain.recorder.data_commands == 4
    assert waits == sorted(waits)
    assert waits[-1] > waits[0]


def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # bound, never listening: connections are refused
        smtp = SmtpConfig(host="127.0.0.1", port=closed_port, security="none", timeout=2.0)
        with pytest.raises(SendError) as info:
            send(smtp)
    assert not info.value.permanent
    assert "connecting failed" in str(info.value)
