"""The Detector: which touchpoints an email or a meeting gives, with whom, and why not."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keepwarm.config.schema import AccountConfig, Config, DetectConfig, OwnerConfig
from keepwarm.detect.touchpoints import Detector, Outcome
from keepwarm.model import (
    Attendee,
    Direction,
    Kind,
    MeetingMeta,
    MessageMeta,
    Person,
    Role,
    Touchpoint,
)

ME = "me@example.com"
WHEN = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
ACCOUNT = AccountConfig(name="home", kind="maildir", addresses=("me.too@gmail.com",))


def detector(identities: frozenset[str] = frozenset(), **detect: object) -> Detector:
    config = Config(
        owner=OwnerConfig(addresses=(ME,)),
        accounts=(ACCOUNT,),
        detect=DetectConfig(**detect),  # type: ignore[arg-type]
    )
    return Detector(config, ACCOUNT, identities)


def people(*addresses: str) -> tuple[Person, ...]:
    return tuple(Person(address, address.split("@")[0].title()) for address in addresses)


def email(
    sender: str = "alice@example.org",
    to: tuple[str, ...] = (ME,),
    cc: tuple[str, ...] = (),
    bcc: tuple[str, ...] = (),
    message_id: str | None = "Msg-1@Example.org",
    **extra: object,
) -> MessageMeta:
    return MessageMeta(
        source_id="42",
        message_id=message_id,
        date=WHEN,
        sender=people(sender),
        to=people(*to),
        cc=people(*cc),
        bcc=people(*bcc),
        **extra,  # type: ignore[arg-type]
    )


def by_counterpart(outcome: Outcome) -> dict[str, Touchpoint]:
    assert outcome.filtered is None
    return {tp.counterpart: tp for tp in outcome.touchpoints}


def test_outbound_touches_every_recipient() -> None:
    meta = email(sender=ME, to=("Bob@Example.net",), cc=("carol@example.org",), bcc=("d@x.io",))
    found = by_counterpart(detector().message(meta))
    assert set(found) == {"bob@example.net", "carol@example.org", "d@x.io"}
    assert found["bob@example.net"].role is Role.TO
    assert found["carol@example.org"].role is Role.CC
    assert found["d@x.io"].role is Role.TO
    bob = found["bob@example.net"]
    assert bob.direction is Direction.OUT
    assert bob.kind is Kind.EMAIL
    assert bob.participants == 4
    assert bob.natural_key == f"mid:msg-1@example.org|{int(WHEN.timestamp())}"
    assert bob.occurred_at == WHEN
    assert bob.account == "home"
    assert bob.source == "maildir:42"
    assert bob.name == "Bob"
    assert bob.subject is None


def test_outbound_from_the_sent_folder_with_an_unknown_alias() -> None:
    meta = email(sender="me@old-job.example", to=("bob@example.net",), sent=True)
    outcome = detector().message(meta)
    assert [(tp.counterpart, tp.direction) for tp in outcome.touchpoints] == [
        ("bob@example.net", Direction.OUT)
    ]


def test_inbound_touches_only_the_sender() -> None:
    meta = email(to=(ME, "bob@example.net"), cc=("carol@example.org",))
    outcome = detector().message(meta)
    assert len(outcome.touchpoints) == 1
    alice = outcome.touchpoints[0]
    assert (alice.counterpart, alice.direction, alice.role) == (
        "alice@example.org",
        Direction.IN,
        Role.FROM,
    )
    assert alice.participants == 4


@pytest.mark.parametrize(
    ("to", "cc", "bcc", "role"),
    [
        ((ME,), (), (), Role.FROM),
        (("bob@example.net",), (ME,), (), Role.CC),
        (("bob@example.net",), (ME,), (ME,), Role.FROM),
        (("bob@example.net",), (), (ME,), Role.FROM),
        ((), (), (), Role.FROM),  # undisclosed recipients: the owner got it directly
        (("metoo@gmail.com",), (), (), Role.FROM),  # an account address, Gmail dots aside
    ],
)
def test_inbound_role(
    to: tuple[str, ...], cc: tuple[str, ...], bcc: tuple[str, ...], role: Role
) -> None:
    outcome = detector().message(email(to=to, cc=cc, bcc=bcc))
    assert [tp.role for tp in outcome.touchpoints] == [role]


def test_owner_not_visible_still_counts_as_a_participant() -> None:
    outcome = detector().message(email(to=()))
    assert outcome.touchpoints[0].participants == 2


def test_group_size_limit() -> None:
    nine = tuple(f"p{i}@example.org" for i in range(9))
    assert len(detector().message(email(sender=ME, to=nine)).touchpoints) == 9  # 10 people
    ten = (*nine, "p9@example.org")
    assert detector().message(email(sender=ME, to=ten)) == Outcome(filtered="too-many-people")
    assert detector(max_group=20).message(email(sender=ME, to=ten)).filtered is None
    big_inbound = email(to=(ME, *ten))
    assert detector().message(big_inbound).filtered == "too-many-people"


def test_mail_between_the_owners_addresses_is_to_self() -> None:
    meta = email(sender=ME, to=("Me.Too+x@googlemail.com",), cc=(ME,))
    assert detector().message(meta) == Outcome(filtered="to-self")
    alias = email(sender=ME, to=("alias@example.net",))
    assert detector(frozenset({"alias@example.net"})).message(alias).filtered == "to-self"


def test_automated_mail_is_filtered_with_its_reason() -> None:
    listed = email(signals=(("list-id", "Friends <friends.example.org>"),))
    assert detector().message(listed) == Outcome(filtered="mailing-list")
    assert detector().message(email(sender="noreply@shop.example")).filtered == "no-reply"
    assert detector().message(email(sender="info@shop.example")).filtered == "role-address"


def test_outbound_to_role_and_noreply_addresses_drops_only_those() -> None:
    meta = email(sender=ME, to=("support@vendor.example", "alice@example.org"))
    found = by_counterpart(detector().message(meta))
    assert set(found) == {"alice@example.org"}
    only_role = email(sender=ME, to=("support@vendor.example",))
    assert detector().message(only_role) == Outcome(filtered="role-address")
    only_noreply = email(sender=ME, to=("no-reply@vendor.example",))
    assert detector().message(only_noreply) == Outcome(filtered="no-reply")


def test_configured_role_and_noreply_patterns() -> None:
    custom = detector(role_addresses=("hello",), noreply_patterns=(r"^robot$",))
    assert custom.message(email(sender="hello@studio.example")).filtered == "role-address"
    assert custom.message(email(sender="robot@ci.example")).filtered == "no-reply"
    assert detector().message(email(sender="hello@studio.example")).filtered is None


def test_natural_key_without_message_id_is_per_account_source() -> None:
    outcome = detector().message(email(message_id=None))
    assert outcome.touchpoints[0].natural_key == "src:home:42"


@pytest.mark.parametrize(
    ("extra", "thread"),
    [
        ({"references": ("Root@X", "Parent@X"), "in_reply_to": "Parent@X"}, "root@x"),
        ({"in_reply_to": "Parent@X"}, "parent@x"),
        ({}, "msg-1@example.org"),
    ],
)
def test_thread_key(extra: dict[str, Any], thread: str) -> None:
    outcome = detector().message(email(**extra))
    assert outcome.touchpoints[0].thread_key == thread


def test_subjects_are_kept_only_when_configured() -> None:
    meta = email(subject="Lunch?")
    assert detector().message(meta).touchpoints[0].subject is None
    assert detector(keep_subjects=True).message(meta).touchpoints[0].subject == "Lunch?"


def test_messages_from_other_connectors_are_normalised_here() -> None:
    meta = MessageMeta(
        source_id="g1",
        message_id=None,
        date=WHEN,
        sender=(Person("Alice.Smith@GoogleMail.com", "Alice"),),
        to=(Person("ME@EXAMPLE.COM"), Person("not an address")),
    )
    [tp] = detector().message(meta).touchpoints
    assert (tp.counterpart, tp.role, tp.participants) == ("alicesmith@gmail.com", Role.FROM, 2)


def test_no_date_and_no_sender() -> None:
    undated = MessageMeta(source_id="1", message_id=None, date=None, sender=people("a@x.io"))
    assert detector().message(undated) == Outcome(filtered="no-date")
    anonymous = MessageMeta(source_id="1", message_id=None, date=WHEN, to=people(ME))
    assert detector().message(anonymous) == Outcome(filtered="no-sender")


# --- meetings ---------------------------------------------------------------------------


def meeting(
    organizer: str | None = ME,
    attendees: tuple[Attendee, ...] = (),
    **extra: object,
) -> MeetingMeta:
    return MeetingMeta(
        source_id="ev1",
        uid="UID-1@cal",
        recurrence_id=extra.pop("recurrence_id", None),  # type: ignore[arg-type]
        start=WHEN,
        organizer=Person(organizer, organizer.split("@")[0].title()) if organizer else None,
        attendees=attendees,
        **extra,  # type: ignore[arg-type]
    )


def att(address: str, partstat: str | None = "accepted", resource: bool = False) -> Attendee:
    return Attendee(address, address.split("@")[0].title(), partstat, resource)


def test_meeting_the_owner_organised() -> None:
    meta = meeting(
        attendees=(
            att(ME),
            att("alice@example.org"),
            att("bob@example.net", "declined"),
            att("carol@example.org", "needs-action"),
            att("room-4@resource.example", resource=True),
        )
    )
    found = by_counterpart(detector().meeting(meta))
    assert set(found) == {"alice@example.org", "carol@example.org"}
    alice = found["alice@example.org"]
    assert (alice.direction, alice.role, alice.kind) == (Direction.OUT, Role.ATTENDEE, Kind.MEETING)
    assert alice.participants == 3
    assert alice.natural_key == "evt:UID-1@cal:"
    assert alice.occurred_at == WHEN
    assert alice.source == "maildir:ev1"
    assert alice.name == "Alice"


def test_meeting_someone_else_organised() -> None:
    meta = meeting(
        organizer="alice@example.org",
        attendees=(att("alice@example.org"), att(ME, "tentative"), att("bob@example.net")),
    )
    found = by_counterpart(detector().meeting(meta))
    assert (found["alice@example.org"].direction, found["alice@example.org"].role) == (
        Direction.IN,
        Role.ORGANIZER,
    )
    assert (found["bob@example.net"].direction, found["bob@example.net"].role) == (
        Direction.MUTUAL,
        Role.ATTENDEE,
    )


@pytest.mark.parametrize(
    ("partstat", "filtered"),
    [
        ("accepted", None),
        ("ACCEPTED", None),
        ("tentative", None),
        ("declined", "not-attended"),
        ("needs-action", "not-attended"),
    ],
)
def test_meeting_owner_response(partstat: str, filtered: str | None) -> None:
    meta = meeting(organizer="alice@example.org", attendees=(att(ME, partstat),))
    assert detector().meeting(meta).filtered == filtered


def test_meeting_on_the_owners_calendar_without_them_listed() -> None:
    meta = meeting(organizer=None, attendees=(att("alice@example.org"), att("bob@example.net")))
    outcome = detector().meeting(meta)
    assert {tp.direction for tp in outcome.touchpoints} == {Direction.MUTUAL}
    assert outcome.touchpoints[0].participants == 3


def test_meeting_filters() -> None:
    lone = meeting(attendees=(att(ME), att("room@resource.example", resource=True)))
    assert detector().meeting(lone) == Outcome(filtered="no-attendees")
    cancelled = meeting(attendees=(att("alice@example.org"),), status="cancelled")
    assert detector().meeting(cancelled) == Outcome(filtered="cancelled")
    crowd = meeting(attendees=tuple(att(f"p{i}@example.org") for i in range(10)))
    assert detector().meeting(crowd) == Outcome(filtered="too-many-people")


def test_meeting_drops_calendars_noreply_and_role_attendees() -> None:
    meta = meeting(
        organizer="abc123@group.calendar.google.com",
        attendees=(
            att("alice@example.org"),
            att("team@example.org"),
            att("calendar-notification@example.org"),
        ),
    )
    outcome = detector().meeting(meta)
    assert [tp.counterpart for tp in outcome.touchpoints] == ["alice@example.org"]
    assert outcome.touchpoints[0].direction is Direction.MUTUAL
    assert outcome.touchpoints[0].participants == 3  # owner, alice, and team@ (some people)


def test_meeting_keys_and_subjects() -> None:
    meta = meeting(
        attendees=(att("alice@example.org"),),
        recurrence_id="2024-03-01T09:30:00+00:00",
        summary="Weekly 1:1",
    )
    [tp] = detector(keep_subjects=True).meeting(meta).touchpoints
    assert tp.natural_key == "evt:UID-1@cal:2024-03-01T09:30:00+00:00"
    assert tp.subject == "Weekly 1:1"
    assert tp.participants == 2
    assert detector().meeting(meta).touchpoints[0].subject is None


def test_future_meetings_are_returned_like_past_ones() -> None:
    meta = meeting(attendees=(att("alice@example.org"),))
    now = datetime(2020, 1, 1, tzinfo=UTC)
    assert detector().meeting(meta, now=now) == detector().meeting(meta)


def test_a_reused_message_id_does_not_lose_the_second_message() -> None:
    first = email(sender="bob@example.net", to=(ME,))
    copy = email(sender="bob@example.net", to=(ME,))
    other = replace(first, date=WHEN + timedelta(days=3))
    keys = {detector().message(m).touchpoints[0].natural_key for m in (first, copy, other)}
    # The same message seen twice is one key; a different message with its ID is another.
    assert len(keys) == 2


def test_a_huge_message_id_still_gives_a_storable_key() -> None:
    meta = replace(email(sender="bob@example.net", to=(ME,)), message_id="x" * 5000 + "@y")
    (touchpoint,) = detector().message(meta).touchpoints
    # An index entry must stay small; the same message still gets the same key.
    assert len(touchpoint.natural_key) < 600
    assert detector().message(meta).touchpoints[0].natural_key == touchpoint.natural_key
