"""Frozen dataclasses that cross module boundaries: what connectors read, what the log stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Kind(StrEnum):
    EMAIL = "email"
    MEETING = "meeting"
    MANUAL = "manual"
    IMPORT = "import"


class Direction(StrEnum):
    OUT = "out"  # the owner wrote to / invited the counterpart
    IN = "in"  # the counterpart wrote to / invited the owner
    MUTUAL = "mutual"  # both took part on equal terms (a meeting neither organised)


class Role(StrEnum):
    """The counterpart's place in the exchange."""

    TO = "to"
    CC = "cc"
    FROM = "from"
    ATTENDEE = "attendee"
    ORGANIZER = "organizer"


@dataclass(frozen=True, slots=True)
class Person:
    """One mailbox: `address` as written (detection normalises it), optional display name."""

    address: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """Header metadata of one email. Never a body."""

    source_id: str  # the provider's id: Maildir key, IMAP folder/uidvalidity/uid, Gmail id
    message_id: str | None  # RFC 5322 Message-ID without angle brackets, None if absent
    date: datetime | None  # timezone-aware UTC; None if missing or unreadable
    sender: tuple[Person, ...] = ()  # From
    to: tuple[Person, ...] = ()
    cc: tuple[Person, ...] = ()
    bcc: tuple[Person, ...] = ()
    reply_to: tuple[Person, ...] = ()
    subject: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    # Automated-mail signals, lower-case header name -> raw value (List-Id, Precedence, ...).
    signals: tuple[tuple[str, str], ...] = ()
    sent: bool | None = None  # the source says the owner sent it (Sent folder, SENT label)
    folder: str | None = None


@dataclass(frozen=True, slots=True)
class Attendee:
    address: str
    name: str | None = None
    partstat: str | None = None  # accepted | declined | tentative | needs-action (lower case)
    resource: bool = False  # a room or equipment, not a person


@dataclass(frozen=True, slots=True)
class MeetingMeta:
    """One meeting instance (recurring series are expanded before this point)."""

    source_id: str
    uid: str
    recurrence_id: str | None  # ISO 8601 UTC of the instance's original start; None if single
    start: datetime  # aware UTC; all-day events start at 12:00 UTC of their date
    end: datetime | None = None
    all_day: bool = False
    status: str = "confirmed"  # confirmed | tentative | cancelled
    organizer: Person | None = None
    attendees: tuple[Attendee, ...] = ()
    summary: str | None = None
    calendar: str | None = None


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """One (message or meeting, counterpart) pair: the unit of the event log."""

    natural_key: str  # "mid:<message-id>", "src:<account>:<source id>", "evt:<uid>:<instance>"
    counterpart: str  # normalised address
    occurred_at: datetime  # aware UTC
    kind: Kind
    direction: Direction
    role: Role
    participants: int  # people in the exchange including the owner (a 1:1 email is 2)
    account: str
    source: str  # connector kind and provider id, for `keepwarm show`
    name: str | None = None  # the counterpart's display name as seen here
    thread_key: str | None = None
    subject: str | None = None  # only when config keeps subjects


@dataclass(frozen=True, slots=True)
class Skip:
    """A message or event that could not be read: counted per reason, never fatal."""

    source_id: str
    reason: str  # short stable slug: "no-date", "bad-header", "too-large", ...
    detail: str = ""


@dataclass(slots=True)
class Batch:
    """What one step of a poll returns; `cursor` is valid once everything in it is stored."""

    items: list[MessageMeta | MeetingMeta] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    cursor: str | None = None  # opaque to everyone but the connector; None = keep the old one
    identities: frozenset[str] = frozenset()  # owner addresses the source revealed (send-as)
    # True when this batch holds every future meeting of the account: planned meetings
    # of the account that are not in it were cancelled or deleted.
    future_complete: bool = False


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """A user's statement about people, appended by CLI commands and replayed by the projection.

    action: merge (subject and value are one person) | tier | tag | untag | pin | unpin |
    snooze (value: ISO date until) | unsnooze | ignore | unignore | name (value: display name).
    `subject` is an address or "@domain" (subdomains included).
    """

    action: str
    subject: str
    value: str | None
    at: datetime
