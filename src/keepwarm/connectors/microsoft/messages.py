"""Graph message JSON -> `MessageMeta`, and which messages need their internet headers.

Graph's message properties give the address fields and dates but not the header fields that mark
automated mail (List-Id, List-Unsubscribe, Precedence, Auto-Submitted, Return-Path …). Those
come only from `internetMessageHeaders`, one GET per message. They are fetched only for inbound
messages the cheap fields leave undecided (`undecided`): mail that reached the owner without
naming them in To or Cc (a list, a Bcc), mail whose Sender is not its From (list servers and
"on behalf of" senders), and mail whose subject reads like an auto-reply. Calendar messages are
recognised by their `@odata.type` (eventMessage*) without headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from keepwarm.detect.automated import AUTO_REPLY_PREFIXES, NOREPLY, ROLE_LOCALS
from keepwarm.detect.headers import MAX_VALUE_CHARS, SIGNAL_FIELDS
from keepwarm.errors import MalformedInput
from keepwarm.model import MessageMeta, Person

EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=2)
CALENDAR_CONTENT_CLASS = "urn:content-classes:calendarmessage"
_SIGNALS = frozenset(name.lower() for name in SIGNAL_FIELDS)
_NOREPLY = re.compile(NOREPLY)
_ISO = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?")


def select_fields(subject: bool) -> str:
    """The `$select` of a message delta: the metadata detection reads, nothing else."""
    fields = [
        "from",
        "sender",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "receivedDateTime",
        "sentDateTime",
        "internetMessageId",
    ]
    if subject:
        fields.append("subject")
    return ",".join(fields)


def parse_time(value: Any) -> datetime | None:
    """A Graph DateTimeOffset ("2024-01-15T09:00:00Z", 7 fractional digits allowed) as UTC."""
    if not isinstance(value, str):
        return None
    match = _ISO.fullmatch(value.strip())
    if not match:
        raise MalformedInput("bad-date", value[:60])
    fraction = (match.group(2) or "0")[:6].ljust(6, "0")
    zone = match.group(3) or "Z"
    moment = datetime.fromisoformat(f"{match.group(1)}.{fraction}{zone.replace('Z', '+00:00')}")
    return moment.astimezone(UTC)


def message_meta(item: dict[str, Any], *, folder: str, sent: bool, now: datetime) -> MessageMeta:
    """The `MessageMeta` of one message; raises MalformedInput for one that cannot be used."""
    source_id = item.get("id")
    if not isinstance(source_id, str) or not source_id:
        raise MalformedInput("bad-item", "a message without an id")
    date = parse_time(item.get("sentDateTime")) or parse_time(item.get("receivedDateTime"))
    if date is None:
        raise MalformedInput("no-date")
    if date < EARLIEST or date > now + FUTURE_SLACK:
        raise MalformedInput("implausible-date", date.isoformat())
    message_id = item.get("internetMessageId")
    if isinstance(message_id, str):
        message_id = message_id.strip().strip("<>").strip() or None
    else:
        message_id = None
    sender = _people([item.get("from") or item.get("sender")])
    signals: tuple[tuple[str, str], ...] = ()
    if "eventMessage" in str(item.get("@odata.type", "")):
        # Invitations and replies to them: the calendar connector counts the meeting itself.
        signals = (("content-class", CALENDAR_CONTENT_CLASS),)
    subject = item.get("subject")
    return MessageMeta(
        source_id=source_id,
        message_id=message_id,
        date=date,
        sender=sender,
        to=_people(item.get("toRecipients") or ()),
        cc=_people(item.get("ccRecipients") or ()),
        bcc=_people(item.get("bccRecipients") or ()),
        subject=subject[:MAX_VALUE_CHARS] if isinstance(subject, str) else None,
        signals=signals,
        sent=True if sent else None,
        folder=folder,
    )


def undecided(meta: MessageMeta, item: dict[str, Any], owners: frozenset[str]) -> bool:
    """Whether only the internet headers can tell if a person wrote this message to the owner.

    `owners` are lower-cased owner addresses; with none known, "not addressed to the owner"
    cannot be told and only the Sender/From and subject tests apply.
    """
    if meta.sent or meta.signals or not meta.sender:
        return False
    sender = meta.sender[0].address.lower()
    if sender in owners:
        return False
    local = sender.rpartition("@")[0]
    if _NOREPLY.search(local) or local.partition("+")[0] in ROLE_LOCALS:
        return False  # detection filters it whatever the headers say
    if owners and not any(p.address.lower() in owners for p in (*meta.to, *meta.cc)):
        return True
    on_behalf = _people([item.get("sender")])
    if on_behalf and on_behalf[0].address.lower() != sender:
        return True
    return (meta.subject or "").lower().startswith(AUTO_REPLY_PREFIXES)


def with_headers(meta: MessageMeta, headers: Any) -> MessageMeta:
    """`meta` with the automated-mail signals found in `internetMessageHeaders`."""
    found: list[tuple[str, str]] = list(meta.signals)
    for header in headers if isinstance(headers, list) else ():
        if not isinstance(header, dict):
            continue
        name = str(header.get("name", "")).strip().lower()
        if name in _SIGNALS:
            found.append((name, str(header.get("value", ""))[:MAX_VALUE_CHARS]))
    return MessageMeta(
        source_id=meta.source_id,
        message_id=meta.message_id,
        date=meta.date,
        sender=meta.sender,
        to=meta.to,
        cc=meta.cc,
        bcc=meta.bcc,
        subject=meta.subject,
        signals=tuple(found),
        sent=meta.sent,
        folder=meta.folder,
    )


def person(value: Any) -> Person | None:
    """A Graph recipient / emailAddress object as a Person (None when it has no address)."""
    if not isinstance(value, dict):
        return None
    email = value.get("emailAddress", value)
    if not isinstance(email, dict):
        return None
    return _person(str(email.get("address") or ""), str(email.get("name") or ""))


@lru_cache(maxsize=65_536)  # a mailbox repeats a few thousand correspondents endlessly
def _person(address: str, name: str) -> Person | None:
    address, name = address.strip(), name.strip()
    if "@" not in address:
        return None
    return Person(address, name if name and name != address else None)


def _people(values: Iterable[Any]) -> tuple[Person, ...]:
    return tuple(p for p in (person(v) for v in values) if p is not None)
