"""iCalendar bytes -> expanded `MeetingMeta` instances. Shared by the ICS and CalDAV connectors.

Time rules (the same for every calendar source, so natural keys agree across them):
- aware times are converted to UTC; Windows zone names (Outlook's "W. Europe Standard Time") are
  mapped to IANA zones by icalendar;
- floating times, and times whose TZID is neither defined by a VTIMEZONE nor known, are taken as
  UTC: the feed does not say where they are, and a few hours do not matter for a relationship;
- an all-day event starts at 12:00 UTC of its date, so the date is the same in every zone a
  reader is likely to be in; its end is 12:00 UTC of its (exclusive) end date;
- `recurrence_id` is `instance_id()` of the instance's original start for members of a
  recurring series (RRULE, RDATE or RECURRENCE-ID), None for single events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import icalendar
import recurring_ical_events
import x_wr_timezone  # type: ignore[import-untyped]  # ships without type hints

from keepwarm.model import Attendee, MeetingMeta, Person, Skip

# Properties whose garbage would break expansion of the whole series.
_TIME_PROPERTIES = frozenset({"DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE",
                              "RECURRENCE-ID"})  # fmt: skip
# A series repeating every second or minute is not a meeting, and expanding four years of it
# would take minutes and gigabytes.
_TOO_FREQUENT = frozenset({"SECONDLY", "MINUTELY"})
_RESOURCE_TYPES = frozenset({"ROOM", "RESOURCE"})


def instance_id(value: date | datetime) -> str:
    """The canonical recurrence id of an instance's original start: `YYYY-MM-DDTHH:MM:SSZ`."""
    return to_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_utc(value: date | datetime) -> datetime:
    """An iCalendar date or date-time as aware UTC, by the rules in the module docstring."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, 12, tzinfo=UTC)


def meetings_from_calendar(
    data: bytes, *, source: str, window_start: datetime, window_end: datetime
) -> tuple[list[MeetingMeta], list[Skip]]:
    """Every meeting instance overlapping the window, and a Skip per event that cannot be read.

    `source` names the feed or object (never a secret URL): it prefixes every `source_id`.
    """
    try:
        calendars = icalendar.Calendar.from_ical(data, multiple=True)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return [], [Skip(source, "bad-calendar", _short(exc))]
    if not calendars:
        return [], [Skip(source, "bad-calendar", "no VCALENDAR in the data")]
    meetings: list[MeetingMeta] = []
    skipped: list[Skip] = []
    seen: set[tuple[str, str | None]] = set()
    for calendar in calendars:
        for item in _expand(calendar, source, window_start, window_end):
            if isinstance(item, Skip):
                skipped.append(item)
            elif (item.uid, item.recurrence_id) not in seen:
                seen.add((item.uid, item.recurrence_id))
                meetings.append(item)
    return meetings, skipped


def _expand(
    calendar: icalendar.Calendar, source: str, window_start: datetime, window_end: datetime
) -> Iterable[MeetingMeta | Skip]:
    if "X-WR-TIMEZONE" in calendar:
        try:
            calendar = x_wr_timezone.to_standard(calendar)
        except Exception as exc:  # an unknown zone name, say: keep the times as they are
            yield Skip(source, "bad-timezone", _short(exc))
    name = calendar.get("X-WR-CALNAME")
    calendar_name = str(name) if name else None
    timezones = list(calendar.walk("VTIMEZONE"))
    groups: dict[str, list[icalendar.Component]] = defaultdict(list)
    for event in calendar.walk("VEVENT"):
        problem = _problem(event)
        if problem is not None:
            uid = event.get("UID")
            yield Skip(f"{source}:{uid}" if uid else source, *problem)
        else:
            groups[str(event["UID"])].append(event)
    for uid, events in groups.items():
        # One small calendar per UID, so that a series the expander chokes on costs only itself.
        single = icalendar.Calendar()
        for component in (*timezones, *events):
            single.add_component(component)
        recurring = any(
            key in event for event in events for key in ("RRULE", "RDATE", "RECURRENCE-ID")
        )
        try:
            instances = recurring_ical_events.of(single).between(window_start, window_end)
            metas = [
                _meeting(instance, uid, recurring, source, calendar_name) for instance in instances
            ]
        except Exception as exc:  # whatever breaks one series costs only that series
            yield Skip(f"{source}:{uid}", "bad-recurrence", _short(exc))
            continue
        yield from metas


def _problem(event: icalendar.Component) -> tuple[str, str] | None:
    """Why this VEVENT cannot be expanded, as (reason, detail), or None when it can."""
    if not event.get("UID"):
        return "no-uid", ""
    if "DTSTART" not in event:
        return "no-start", ""
    for prop, message in getattr(event, "errors", []):
        if prop in _TIME_PROPERTIES:
            return "bad-event", f"{prop}: {message}"[:200]
    try:
        event.decoded("DTSTART")
    except (ValueError, KeyError, TypeError) as exc:
        return "bad-event", _short(exc)
    rules = event.get("RRULE")
    for rule in rules if isinstance(rules, list) else [rules] if rules else []:
        if any(str(freq).upper() in _TOO_FREQUENT for freq in rule.get("FREQ", [])):
            return "too-frequent", str(rule.get("FREQ"))
    return None


def _meeting(
    event: Any, uid: str, recurring: bool, source: str, calendar_name: str | None
) -> MeetingMeta:
    start_value = event.decoded("DTSTART")
    all_day = not isinstance(start_value, datetime)
    try:
        end: datetime | None = to_utc(event.end)
    except (ValueError, KeyError, TypeError):
        end = None
    recurrence_id: str | None = None
    if recurring:
        original = event.get("RECURRENCE-ID")
        recurrence_id = instance_id(original.dt if original is not None else start_value)
    return MeetingMeta(
        source_id=f"{source}:{uid}" + (f":{recurrence_id}" if recurrence_id else ""),
        uid=uid,
        recurrence_id=recurrence_id,
        start=to_utc(start_value),
        end=end,
        all_day=all_day,
        status=str(event.get("STATUS") or "confirmed").lower(),
        organizer=_organizer(event.get("ORGANIZER")),
        attendees=tuple(_attendees(event.get("ATTENDEE"))),
        summary=str(event["SUMMARY"]) if event.get("SUMMARY") else None,
        calendar=calendar_name,
    )


def _address(value: Any) -> str | None:
    """A calendar user address without `mailto:`; None when it is not an email address."""
    text = str(value).strip()
    if text[:7].lower() == "mailto:":
        text = text[7:].strip()
    return text if "@" in text else None


def _param(value: Any, name: str) -> str | None:
    params = getattr(value, "params", None)
    found = params.get(name) if params is not None else None
    return str(found) if found else None


def _organizer(value: Any) -> Person | None:
    if value is None:
        return None
    address = _address(value)
    return Person(address, _param(value, "CN")) if address else None


def _attendees(value: Any) -> Iterable[Attendee]:
    for item in value if isinstance(value, list) else [value] if value is not None else []:
        address = _address(item)
        if address is None:  # urn:uuid:…, a room name: nobody to keep in touch with
            continue
        partstat = _param(item, "PARTSTAT")
        cutype = (_param(item, "CUTYPE") or "").upper()
        yield Attendee(
            address=address,
            name=_param(item, "CN"),
            partstat=partstat.lower() if partstat else None,
            resource=cutype in _RESOURCE_TYPES,
        )


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
