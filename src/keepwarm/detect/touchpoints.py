"""`MessageMeta` / `MeetingMeta` -> touchpoints with real people: where a touchpoint is born.

One touchpoint per (message or meeting, counterpart). Outbound mail touches every recipient;
inbound mail touches only its sender (the other recipients wrote nothing to the owner).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from keepwarm.config.schema import AccountConfig, Config
from keepwarm.detect.addresses import Identities, matches, normalise
from keepwarm.detect.automated import (
    automated_reason,
    is_noreply,
    is_role,
    noreply_pattern,
    role_locals,
)
from keepwarm.model import Direction, Kind, MeetingMeta, MessageMeta, Person, Role, Touchpoint

# Partstats under which the owner took part. A missing PARTSTAT counts as taking part: the
# event is on the owner's calendar and nothing says they stayed away.
ATTENDED = frozenset({"accepted", "tentative", None})
# Google Calendar's group, resource and imported calendars appear as organizers and attendees;
# they are calendars, not people.
CALENDAR_SYSTEM_DOMAINS = ("@calendar.google.com",)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What detection made of one message or meeting: touchpoints, or why there are none."""

    touchpoints: tuple[Touchpoint, ...] = ()
    filtered: str | None = None  # a slug such as "mailing-list", "to-self", "not-attended"


class Detector:
    """Detection for one account: the owner's identities and the detect config, resolved once."""

    def __init__(
        self, config: Config, account: AccountConfig, identities: frozenset[str] = frozenset()
    ) -> None:
        self.account = account
        self.owners = Identities.from_config(config, account, identities).addresses
        self._noreply = noreply_pattern(config.detect.noreply_patterns)
        self._roles = role_locals(config.detect.role_addresses)
        self._max_group = config.detect.max_group
        self._keep_subjects = config.detect.keep_subjects

    def message(self, meta: MessageMeta) -> Outcome:
        """The touchpoints of one email, or the reason it has none."""
        if meta.date is None:
            return Outcome(filtered="no-date")
        senders = _normalised(meta.sender)
        sender = senders[0] if senders else None
        to, cc, bcc = _normalised(meta.to), _normalised(meta.cc), _normalised(meta.bcc)
        owners = self.owners
        outbound = meta.sent is True or (sender is not None and sender.address in owners)
        if sender is None and not outbound:
            return Outcome(filtered="no-sender")
        if meta.sent is True and sender is not None:
            # The source says the owner sent it: its From is one of theirs, known or not yet.
            owners = owners | {sender.address}

        reason = automated_reason(
            meta, noreply=self._noreply, role_locals=self._roles, owner_sent=outbound
        )
        if reason is not None:
            return Outcome(filtered=reason)
        everyone = {person.address for person in (*senders[:1], *to, *cc, *bcc)}
        others = everyone - owners
        if not others:
            return Outcome(filtered="to-self")
        participants = len(others) + 1  # the owner counts once, seen or not (Bcc, undisclosed)
        if participants > self._max_group:
            return Outcome(filtered="too-many-people")

        if outbound:
            direction = Direction.OUT
            candidates = [
                *((person, Role.TO) for person in to),
                *((person, Role.CC) for person in cc),
                *((person, Role.TO) for person in bcc),
            ]
        else:
            assert sender is not None  # inbound without a sender returned above
            direction = Direction.IN
            direct = any(person.address in owners for person in (*to, *bcc))
            copied = any(person.address in owners for person in cc)
            candidates = [(sender, Role.CC if copied and not direct else Role.FROM)]

        key = natural_key(meta, self.account.name)
        thread = meta.references[0] if meta.references else meta.in_reply_to or meta.message_id
        touchpoints: list[Touchpoint] = []
        dropped: str | None = None
        seen: set[str] = set()
        for person, role in candidates:
            if person.address in owners or person.address in seen:
                continue
            seen.add(person.address)
            drop = self._drop_reason(person.address)
            if drop is not None:
                dropped = dropped or drop
                continue
            touchpoints.append(
                Touchpoint(
                    natural_key=key,
                    counterpart=person.address,
                    occurred_at=_utc(meta.date),
                    kind=Kind.EMAIL,
                    direction=direction,
                    role=role,
                    participants=participants,
                    account=self.account.name,
                    source=f"{self.account.kind}:{meta.source_id}",
                    name=person.name,
                    thread_key=thread.lower() if thread else None,
                    subject=meta.subject if self._keep_subjects else None,
                )
            )
        if not touchpoints:
            return Outcome(filtered=dropped or "to-self")
        return Outcome(tuple(touchpoints))

    def meeting(self, meta: MeetingMeta, now: datetime | None = None) -> Outcome:
        """The touchpoints of one meeting instance, or the reason it has none.

        Future meetings are returned like past ones (the daemon keeps them apart); `now` is
        accepted for that caller's convenience and does not change the result.
        """
        if meta.status.strip().lower() == "cancelled":
            return Outcome(filtered="cancelled")
        organizer = normalise(meta.organizer.address) if meta.organizer else None
        owner_organised = organizer is not None and organizer in self.owners
        own = [a for a in meta.attendees if normalise(a.address) in self.owners]
        if not owner_organised and own and not any(_partstat(a.partstat) in ATTENDED for a in own):
            return Outcome(filtered="not-attended")

        declined = {
            normalise(a.address) for a in meta.attendees if _partstat(a.partstat) == "declined"
        }
        present: dict[str, tuple[str | None, Role]] = {}
        if organizer is not None and organizer not in declined and meta.organizer is not None:
            present[organizer] = (meta.organizer.name, Role.ORGANIZER)
        for attendee in meta.attendees:
            address = normalise(attendee.address)
            if address is None or attendee.resource or address in declined:
                continue
            if address not in present:
                present[address] = (attendee.name, Role.ATTENDEE)
        people = {
            address: value
            for address, value in present.items()
            if address not in self.owners
            and not is_noreply(address, self._noreply)
            and not any(matches(address, system) for system in CALENDAR_SYSTEM_DOMAINS)
        }
        participants = len(people) + 1
        if participants > self._max_group:
            return Outcome(filtered="too-many-people")
        # Role addresses (team@, a list) count as present but are nobody to keep in touch with.
        counterparts = {a: v for a, v in people.items() if not is_role(a, self._roles)}
        if not counterparts:
            return Outcome(filtered="no-attendees")

        touchpoints = tuple(
            Touchpoint(
                natural_key=f"evt:{_bounded(meta.uid)}:{meta.recurrence_id or ''}",
                counterpart=address,
                occurred_at=_utc(meta.start),
                kind=Kind.MEETING,
                direction=(
                    Direction.OUT
                    if owner_organised
                    else Direction.IN
                    if role is Role.ORGANIZER
                    else Direction.MUTUAL
                ),
                role=role,
                participants=participants,
                account=self.account.name,
                source=f"{self.account.kind}:{meta.source_id}",
                name=name,
                subject=meta.summary if self._keep_subjects else None,
            )
            for address, (name, role) in counterparts.items()
        )
        return Outcome(touchpoints)

    def _drop_reason(self, address: str) -> str | None:
        if is_noreply(address, self._noreply):
            return "no-reply"
        if is_role(address, self._roles):
            return "role-address"
        return None


def _normalised(people: Iterable[Person]) -> tuple[Person, ...]:
    """People with normalised addresses, unusable and repeated ones left out.

    parse_headers already normalises; other connectors (Gmail, Graph) build MessageMeta
    from provider fields, so detection does not rely on it.
    """
    seen: set[str] = set()
    result: list[Person] = []
    for person in people:
        address = normalise(person.address)
        if address is not None and address not in seen:
            seen.add(address)
            result.append(person if address == person.address else Person(address, person.name))
    return tuple(result)


def _partstat(value: str | None) -> str | None:
    return value.strip().lower() if value else None


def _utc(moment: datetime) -> datetime:
    # The model promises aware UTC; a naive value from a lax source is taken to be UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def natural_key(meta: MessageMeta, account: str) -> str:
    """The log's identity of an email: the same message seen twice (two folders, two accounts,
    IMAP and the Gmail API) gets the same key; two different messages never share one.

    The Message-ID alone is not enough: broken mailers reuse one Message-ID for different
    messages, and with it alone the later message would be lost. The Date header is part of the
    message, identical in every copy, so Message-ID + Date separates them and still dedupes.
    """
    if not meta.message_id:
        return f"src:{account}:{_bounded(meta.source_id)}"
    stamp = int(meta.date.timestamp()) if meta.date else 0
    return f"mid:{_bounded(meta.message_id.lower())}|{stamp}"


def _bounded(text: str, limit: int = 500) -> str:
    """`text`, or its SHA-256 when longer than `limit`: a database index holds ~2.7 KB at most,
    and a hostile header must not make a message unstorable."""
    if len(text) <= limit:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
