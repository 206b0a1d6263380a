"""Automated-mail rules: which messages no person wrote, and why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from keepwarm.detect.automated import (
    automated_reason,
    is_noreply,
    is_role,
    noreply_pattern,
    role_locals,
)
from keepwarm.model import MessageMeta, Person

NOREPLY = noreply_pattern()
ROLES = role_locals()


def message(
    sender: str = "alice@example.org",
    subject: str | None = "hello",
    sent: bool | None = None,
    **signals: str,
) -> MessageMeta:
    return MessageMeta(
        source_id="1",
        message_id="m@x",
        date=datetime(2024, 3, 1, tzinfo=UTC),
        sender=(Person(sender),),
        to=(Person("me@example.com"),),
        subject=subject,
        signals=tuple((name.replace("_", "-"), value) for name, value in signals.items()),
        sent=sent,
    )


def reason(meta: MessageMeta, owner_sent: bool = False) -> str | None:
    return automated_reason(meta, noreply=NOREPLY, role_locals=ROLES, owner_sent=owner_sent)


def test_a_person_writing_is_not_automated() -> None:
    assert reason(message()) is None


@pytest.mark.parametrize(
    ("signals", "expected"),
    [
        ({"list_id": "Friends <friends.example.org>"}, "mailing-list"),
        ({"list_post": "<mailto:friends@example.org>"}, "mailing-list"),
        ({"list_id": "x", "list_unsubscribe": "<mailto:u@x>"}, "mailing-list"),
        ({"list_unsubscribe": "<https://shop.example/u>"}, "bulk"),
        ({"precedence": "bulk"}, "bulk"),
        ({"precedence": " List "}, "bulk"),
        ({"precedence": "junk"}, "bulk"),
        ({"precedence": "first-class"}, None),
        ({"auto_submitted": "auto-replied"}, "auto-reply"),
        ({"auto_submitted": "auto-generated (failure)"}, "auto-reply"),
        ({"auto_submitted": "no"}, None),
        ({"x_autoreply": "yes"}, "auto-reply"),
        ({"x_autorespond": "vacation"}, "auto-reply"),
        ({"return_path": "<>"}, "auto-reply"),
        ({"return_path": "<alice@example.org>"}, None),
        ({"content_type": "text/calendar; method=REQUEST"}, "invitation"),
        ({"content_class": "urn:content-classes:calendarmessage"}, "invitation"),
        ({"content_type": "multipart/alternative; boundary=x"}, None),
    ],
)
def test_header_rules(signals: dict[str, Any], expected: str | None) -> None:
    assert reason(message(**signals)) == expected


def test_auto_response_suppress_alone_is_ordinary_mail() -> None:
    # Some Outlook clients stamp it on everything; it asks others not to auto-reply.
    assert reason(message(x_auto_response_suppress="All")) is None
    assert reason(message(x_auto_response_suppress="OOF, AutoReply")) is None


def test_auto_response_suppress_with_an_auto_reply_subject_is_an_auto_reply() -> None:
    meta = message(subject="Automatic reply: lunch", x_auto_response_suppress="All")
    assert reason(meta) == "auto-reply"


@pytest.mark.parametrize(
    "subject",
    [
        "Invitation: Coffee @ Tue 5 Mar 2024 10am - 11am (GMT) (me@example.com)",
        "Updated invitation: Coffee",
        "Accepted: Coffee",
        "Declined: Coffee",
        "Tentatively accepted: Coffee",
        "Canceled event: Coffee",
        "Cancelled: Coffee",
    ],
)
def test_invitation_subjects(subject: str) -> None:
    assert reason(message(subject=subject)) == "invitation"


def test_a_reply_to_an_invitation_is_a_person_writing() -> None:
    assert reason(message(subject="Re: Invitation: Coffee")) is None


@pytest.mark.parametrize(
    "sender",
    [
        "noreply@example.com",
        "no-reply@accounts.example.com",
        "do-not-reply@example.com",
        "donotreply@example.com",
        "MAILER-DAEMON@mx.example.com",
        "postmaster@example.com",
        "notifications@github.example",
        "drive-shares-noreply@google.example",
        "bounces+12345-abc@mail.example.com",
        "calendar-notification@google.example",
    ],
)
def test_noreply_senders(sender: str) -> None:
    assert reason(message(sender=sender)) == "no-reply"


@pytest.mark.parametrize(
    "sender", ["info@example.com", "Support@example.com", "sales+eu@example.com", "team@x.io"]
)
def test_role_senders(sender: str) -> None:
    assert reason(message(sender=sender)) == "role-address"


@pytest.mark.parametrize(
    "sender",
    ["hello@janedoe.example", "noreen@example.com", "replyguy@example.com", "daemon@example.com"],
)
def test_people_whose_address_looks_a_bit_like_a_rule(sender: str) -> None:
    assert reason(message(sender=sender)) is None


def test_owner_sent_skips_sender_rules_but_not_header_rules() -> None:
    # The owner's own role address (they run info@ for their firm) is still them writing.
    assert reason(message(sender="info@myfirm.example"), owner_sent=True) is None
    assert reason(message(sender="info@myfirm.example", sent=True)) is None
    # A list echo, the owner's vacation responder and a calendar-sent invitation are not.
    assert reason(message(list_id="x"), owner_sent=True) == "mailing-list"
    assert reason(message(precedence="bulk"), owner_sent=True) == "bulk"
    assert reason(message(auto_submitted="auto-replied"), owner_sent=True) == "auto-reply"
    assert reason(message(subject="Invitation: Coffee"), owner_sent=True) == "invitation"


def test_config_extends_the_rules() -> None:
    noreply = noreply_pattern([r"^robot\d*$"])
    roles = role_locals(["Hello", " office "])
    meta = message(sender="robot7@example.com")
    assert automated_reason(meta, noreply=noreply, role_locals=roles) == "no-reply"
    meta = message(sender="hello@example.com")
    assert automated_reason(meta, noreply=noreply, role_locals=roles) == "role-address"
    assert is_role("office@example.com", roles)
    assert is_noreply("noreply@example.com", noreply)  # the built-ins stay


def test_helpers_on_addresses() -> None:
    assert is_noreply("no_reply@example.com", NOREPLY)
    assert not is_noreply("alice@noreply.example.com", NOREPLY)  # the domain is not the sender
    assert is_role("billing+2024@example.com", ROLES)
    assert not is_role("alice@info.example.com", ROLES)
