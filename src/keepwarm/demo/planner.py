"""How the demo puts a meeting in the owner's calendar: `Meeting`, and the `Planner`'s tools.

A meeting as the demo's ICS writer takes it (series, exceptions, PARTSTAT answers), the owner's
addresses, and the date arithmetic series need: the next weekday, the first of a month, the
instances that fall in a holiday. What meetings there are is `meetings.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from keepwarm.demo.maildir import Addr
from keepwarm.demo.world import LONDON, Contact, World

ACCEPTED, DECLINED, TENTATIVE = "ACCEPTED", "DECLINED", "TENTATIVE"
_UID = "@demo.keepwarm.example"


@dataclass(frozen=True, slots=True)
class Meeting:
    """One calendar event (or series) as the demo's ICS writer takes it."""

    uid: str
    summary: str
    start: datetime | date  # London wall time; a date for all-day events
    length: timedelta
    organizer: Addr
    attendees: tuple[tuple[Addr, str], ...]  # (who, PARTSTAT), the owner included
    rrule: dict[str, object] | None = None
    exdates: tuple[datetime, ...] = ()
    moved: tuple[tuple[datetime, datetime], ...] = ()  # (RECURRENCE-ID, new start)
    status: str = "CONFIRMED"
    invited_by_mail: bool = False  # the organizer's invitation also arrived as an email

    @property
    def first_start_utc(self) -> datetime:
        if isinstance(self.start, datetime):
            return self.start.astimezone(UTC)
        return datetime.combine(self.start, time(12), UTC)


def london_at(day: date, hour: float) -> datetime:
    """`hour` (10.5 is 10:30) on `day`, London wall time."""
    return datetime.combine(day, time(), LONDON) + timedelta(hours=hour)


class Planner:
    """The world, its people, and the tools to put a meeting or a series in the calendar."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.people = {c.address: c for c in world.contacts}
        self.rng = world.rng("meetings")
        me = world.owner
        self.me_old: Addr = (me.name, me.old_work)
        self.me_new: Addr = (me.name, me.new_work)
        self.me_home: Addr = (me.name, me.personal)

    def who(self, contact: Contact | str) -> Addr:
        c = self.people[contact] if isinstance(contact, str) else contact
        return (c.name, c.address)

    def meeting(
        self,
        uid: str,
        summary: str,
        start: datetime | date,
        minutes: float,
        organizer: Addr,
        people: Iterable[Addr],
        *,
        rrule: dict[str, object] | None = None,
        exdates: tuple[datetime, ...] = (),
        moved: tuple[tuple[datetime, datetime], ...] = (),
        status: str = "CONFIRMED",
        invited_by_mail: bool = False,
    ) -> Meeting:
        """Everyone accepted (the organizer attends too); `with_partstat` changes one answer."""
        attendees = tuple((p, ACCEPTED) for p in dict.fromkeys((organizer, *people)))
        return Meeting(
            uid + _UID, summary, start, timedelta(minutes=minutes), organizer, attendees,
            rrule, exdates, moved, status, invited_by_mail,
        )  # fmt: skip

    def weekly(self, after: datetime, weekday: int, hour: float) -> datetime:
        """The first `weekday` strictly after `after`, at `hour` London time."""
        day = after.astimezone(LONDON).date()
        return london_at(day + timedelta(days=(weekday - day.weekday()) % 7 or 7), hour)

    def first_of_month(self, after: datetime, weekday: int, hour: float) -> datetime:
        """The first `weekday` of the month after `after`'s: where a BYDAY=1XX series starts."""
        day = after.astimezone(LONDON).date().replace(day=1) + timedelta(days=32)
        day = day.replace(day=1)
        return london_at(day + timedelta(days=(weekday - day.weekday()) % 7), hour)

    def on_holiday(self, first: datetime, until: datetime) -> tuple[datetime, ...]:
        """Weekly instances the owner was away for: the EXDATEs of a series."""
        out, at = [], first
        while at < until:
            if self.w.on_vacation(at.astimezone(UTC)):
                out.append(at)
            at = london_at(at.date() + timedelta(days=7), at.hour + at.minute / 60)
        return tuple(out)


def with_partstat(meeting: Meeting, who: Addr, partstat: str) -> Meeting:
    """The meeting with `who`'s answer changed to `partstat` (everyone else keeps theirs)."""
    attendees = tuple((p, partstat if p == who else s) for p, s in meeting.attendees)
    return replace(meeting, attendees=attendees)
