"""The owner's calendar as one ICS file, written with the icalendar library.

Shaped like a calendar-app export: a VTIMEZONE for Europe/London, ORGANIZER and ATTENDEE with
mailto and PARTSTAT, weekly series with RRULE and EXDATE, a RECURRENCE-ID exception.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import recurring_ical_events

from keepwarm.demo.maildir import Addr
from keepwarm.demo.meetings import Meeting

# How far ahead `count_instances` looks: the future meetings the demo plans are within it.
HORIZON = timedelta(weeks=8)


def write(
    path: Path, meetings: list[Meeting], *, owner_name: str, stamp: datetime
) -> icalendar.Calendar:
    """Write the calendar to `path` and return it. `stamp` is every DTSTAMP, so the same
    world gives the same file."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//keepwarm//demo calendar//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", owner_name)
    cal.add("x-wr-timezone", "Europe/London")
    cal.add_component(_london())
    for meeting in meetings:
        cal.add_component(_event(meeting, stamp))
        for original, start in meeting.moved:
            cal.add_component(_event(meeting, stamp, recurrence_id=original, start=start))
    path.write_bytes(cal.to_ical())
    os.utime(path, (int(stamp.timestamp()),) * 2)  # same world, same tree, mtimes included
    return cal


def count_instances(cal: icalendar.Calendar, start: datetime, now: datetime) -> tuple[int, int]:
    """(past, future) meeting instances within the history and `HORIZON`, series expanded."""
    past = future = 0
    for event in recurring_ical_events.of(cal).between(start, now + HORIZON):
        begin = event.start
        if not isinstance(begin, datetime):
            begin = datetime(begin.year, begin.month, begin.day, 12, tzinfo=UTC)
        if begin < now:
            past += 1
        else:
            future += 1
    return past, future


def _event(
    meeting: Meeting,
    stamp: datetime,
    *,
    recurrence_id: datetime | None = None,
    start: datetime | date | None = None,
) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", meeting.uid)
    event.add("dtstamp", stamp)
    begin = start or meeting.start
    event.add("dtstart", begin)
    if isinstance(begin, datetime):
        event.add("dtend", begin + meeting.length)
    else:
        event.add("dtend", begin + timedelta(days=max(1, meeting.length.days)))
        event.add("transp", "TRANSPARENT")
    event.add("summary", meeting.summary)
    event.add("status", meeting.status)
    event.add("organizer", _address(meeting.organizer, role=None))
    for who, partstat in meeting.attendees:
        event.add("attendee", _address(who, role="REQ-PARTICIPANT", partstat=partstat))
    if recurrence_id is not None:
        event.add("recurrence-id", recurrence_id)
        event.add("sequence", 1)
    elif meeting.rrule is not None:
        event.add("rrule", _rrule(meeting.rrule))
        if meeting.exdates:
            event.add("exdate", list(meeting.exdates))
    return event


def _rrule(rule: dict[str, object]) -> dict[str, Any]:
    # RFC 5545: with a zoned DTSTART, UNTIL must be in UTC.
    out: dict[str, Any] = dict(rule)
    until = out.get("until")
    if isinstance(until, datetime):
        out["until"] = until.astimezone(UTC)
    return out


def _address(who: Addr, *, role: str | None, partstat: str | None = None) -> icalendar.vCalAddress:
    name, address = who
    value = icalendar.vCalAddress(f"mailto:{address}")
    if name:
        value.params["CN"] = name
    if role:
        value.params["CUTYPE"] = "INDIVIDUAL"
        value.params["ROLE"] = role
    if partstat:
        value.params["PARTSTAT"] = partstat
    return value


def _london() -> icalendar.Timezone:
    """Europe/London as calendar apps write it: two yearly rules instead of a date list."""
    zone = icalendar.Timezone()
    zone.add("tzid", "Europe/London")
    for kind, name, before, after, start, month in (
        (icalendar.TimezoneDaylight, "BST", 0, 1, datetime(1981, 3, 29, 1), 3),
        (icalendar.TimezoneStandard, "GMT", 1, 0, datetime(1996, 10, 27, 2), 10),
    ):
        part = kind()
        part.add("tzname", name)
        part.add("tzoffsetfrom", timedelta(hours=before))
        part.add("tzoffsetto", timedelta(hours=after))
        part.add("dtstart", start)
        part.add("rrule", {"freq": "yearly", "bymonth": month, "byday": "-1SU"})
        zone.add_component(part)
    return zone
