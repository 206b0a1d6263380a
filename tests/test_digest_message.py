"""The digest email as a mail client reads it: headers, both parts, charset, escaping, footer."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import pytest
from tests.test_digest_render import NASTY, full_digest, person

from keepwarm.config.schema import DigestConfig
from keepwarm.detect.automated import automated_reason, noreply_pattern, role_locals
from keepwarm.detect.headers import parse_headers
from keepwarm.digest.compose import compose
from keepwarm.digest.message import (
    address_of,
    build_message,
    new_message_id,
    sender_of,
    stop_line,
    to_bytes,
)
from keepwarm.digest.model import Digest

LONDON = ZoneInfo("Europe/London")
WHEN = datetime(2026, 11, 23, 8, 0, 5, tzinfo=UTC)


def mail(digest: Digest, sender: str = "keepwarm <me@example.org>") -> tuple[bytes, str]:
    message_id = new_message_id(digest.period, sender)
    msg = build_message(
        digest,
        sender=sender,
        recipient="Sam <me@example.org>",
        message_id=message_id,
        date=WHEN,
        tz=LONDON,
        stop=stop_line("/home/sam/.config/keepwarm/keepwarm.toml"),
    )
    return to_bytes(msg), message_id


def read(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(msg: EmailMessage) -> tuple[EmailMessage, EmailMessage]:
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert isinstance(plain, EmailMessage)
    assert isinstance(html, EmailMessage)
    return plain, html


def test_headers_say_who_what_when_and_that_no_robot_should_answer() -> None:
    digest = full_digest()
    raw, message_id = mail(digest)
    msg = read(raw)
    assert msg["From"].addresses[0].addr_spec == "me@example.org"
    assert msg["From"].addresses[0].display_name == "keepwarm"
    assert msg["To"].addresses[0].addr_spec == "me@example.org"
    assert msg["Subject"] == "keepwarm: " + digest.headline.rstrip(".")
    assert msg["Message-ID"] == message_id
    assert re.fullmatch(r"<keepwarm\.2026-W48\.[0-9a-f]{20}@example\.org>", message_id)
    # Date in the digest's zone (GMT in November), the same instant.
    assert parsedate_to_datetime(msg["Date"]) == WHEN
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    assert msg["X-Keepwarm-Period"] == "2026-W48"
    assert "delete `to` under [digest]" in msg["X-Keepwarm-Stop"]
    # Not bulk mail: no Precedence, no List-Unsubscribe that nothing would serve.
    assert msg["Precedence"] is None
    assert msg["List-Unsubscribe"] is None


def test_two_alternatives_text_first_both_utf8_and_saying_the_same() -> None:
    msg = read(mail(full_digest())[0])
    assert msg.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in msg.iter_parts()]
    assert kinds == ["text/plain", "text/html"]  # clients show the last one they can
    plain, html = parts(msg)
    for part in (plain, html):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    text, markup = plain.get_content(), html.get_content()
    for needle in ("Ana Silva", "usually every ~3 weeks; 9 weeks now", "Ask how things are at",
                   "keepwarm auth work", "2 of 3 people at oldco.example went quiet"):  # fmt: skip
        assert needle in text
        assert needle in markup
    assert "▁▆▁▁▁█▁▁▁▃▁▁" in text  # the sparkline's block characters survive the trip


def test_every_person_carries_their_snooze_and_ignore_commands_in_both_parts() -> None:
    digest = full_digest()
    plain, html = parts(read(mail(digest)[0]))
    people = [c for s in digest.sections for c in s.contacts]
    assert people
    for line in people:
        for command in (line.snooze, line.ignore):
            assert command in plain.get_content()
            assert command in html.get_content()


def test_names_from_mail_are_escaped_in_html_and_shown_as_is_in_text() -> None:
    plain, html = parts(read(mail(full_digest())[0]))
    markup = html.get_content()
    assert "<script>" not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt; O&#39;Brien &amp; Co" in markup
    assert "“&lt;b&gt;Q3&lt;/b&gt; &amp; more”" in markup  # a kept subject, escaped too
    assert "<b>Q3" not in markup
    assert NASTY in plain.get_content()
    # Nothing to fetch or follow: no links, images or remote resources.
    assert not re.search(r"<(a|img|link|script)\b|src=|href=|url\(", markup, re.IGNORECASE)


def test_the_footer_says_how_to_stop_the_digest_in_both_parts() -> None:
    plain, html = parts(read(mail(full_digest())[0]))
    where = "/home/sam/.config/keepwarm/keepwarm.toml"
    flat_text = " ".join(plain.get_content().split())
    assert f"To stop this weekly email, delete `to` under [digest] in {where}" in flat_text
    assert f"delete `to` under [digest] in {where}" in html.get_content()


def test_the_wire_form_is_7bit_with_short_lines() -> None:
    raw, _ = mail(full_digest())
    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only, as SMTP wants


def test_an_empty_week_is_one_line_in_the_subject_and_body() -> None:
    now = datetime(2026, 11, 23, 8, tzinfo=UTC)
    empty = compose([], now=now, config=DigestConfig(timezone="Europe/London"))
    msg = read(mail(empty)[0])
    assert msg["Subject"] == "keepwarm: All warm this week: nobody is going cold"
    plain, _ = parts(msg)
    assert "All warm this week: nobody is going cold." in plain.get_content()


def test_a_name_outside_ascii_is_encoded_in_headers_and_read_back() -> None:
    raw, _ = mail(full_digest(), sender="Zoë Brontë <zoe@example.org>")
    assert raw.isascii()
    assert read(raw)["From"].addresses[0].display_name == "Zoë Brontë"


def test_keepwarm_itself_counts_its_digest_as_automated_mail() -> None:
    raw, _ = mail(full_digest())
    head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    meta = parse_headers(head, "digest")
    reason = automated_reason(meta, noreply=noreply_pattern(), role_locals=role_locals())
    assert reason == "auto-reply"  # Auto-Submitted: never a touchpoint with yourself


def test_sender_defaults_to_the_recipient_named_keepwarm() -> None:
    assert sender_of(None, "Sam <me@example.org>") == "keepwarm <me@example.org>"
    assert sender_of("Digest <d@example.org>", "me@example.org") == "Digest <d@example.org>"


@pytest.mark.parametrize("text", ["", "a@b.example, c@d.example", "not an address"])
def test_address_of_wants_exactly_one_address(text: str) -> None:
    with pytest.raises(ValueError, match="not one email address"):
        address_of(text)


def test_thousands_of_owed_replies_still_make_a_short_readable_email() -> None:
    now = datetime(2026, 11, 23, 8, tzinfo=UTC)
    owed = [
        person(f"p{i:04d}@example.net", status="warm", owed_reply_since=now - timedelta(days=5))
        for i in range(3000)
    ]
    config = DigestConfig(timezone="Europe/London", max_per_section=5)
    digest = compose(owed, now=now, config=config)
    raw, _ = mail(digest)
    assert len(raw) < 100_000
    msg = read(raw)
    assert msg["Subject"] == "keepwarm: 3000 replies owed"
    plain, html = parts(msg)
    for content in (" ".join(plain.get_content().split()), html.get_content()):
        assert "…and 2995 more replies owed." in content
        assert content.count("keepwarm snooze ") == 5
