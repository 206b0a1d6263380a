"""iCalendar bytes -> expanded `MeetingMeta` instances. Shared by the ICS and CalDAV connectors.

Time rules (the same for every calendar source, so natural keys agree across them):
- aware times are converted to UTC; Windows zone names (Outlook's "W. Europe Standard Time") are
  mapped to IANA zones by icalendar;
- floating times, and times whose TZID is neither defined by a VTIMEZONE nor known, are taken as
  UTC: the feed does not say where they are, and a few hours do not matter for a relationship;
- an all-day event starts at 12:00 UTC of its date, so the date is the same in every zone a
  reader is likely to be in; its end is 12:00 UTC of its (exclusive) end date. Outlook's
  midnight-to-midnight events flagged X-MICROSOFT-CDO-ALLDAYEVENT are all-day events too;
- `recurrence_id` is `instance_id()` of the instance's original start for members of a
  recurring series (RRULE, RDATE or RECURRENCE-ID), None for single events; instances after a
  RANGE=THISANDFUTURE change keep their own original start.

People: a calendar user address is its `mailto:` value, else its EMAIL parameter (Apple writes
`urn:uuid:` addresses); rooms and resources are marked. Only the lines read here are parsed
(`icalendar_text`); one event that cannot be read is a Skip with a reason, never an error.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from keepwarm.connectors.icalendar_text import utf8, wanted_lines, without_timezones
from keepwarm.model import Attendee, MeetingMeta, Person, Skip

if TYPE_CHECKING:
    import icalendar

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
    skipped: list[Skip] = []
    try:
        calendars = _parse(data)
    except _BadZone as bad:
        # One malformed VTIMEZONE must not cost the whole feed: read it without its zones
        # (their names are then resolved as IANA or Windows names, else taken as UTC).
        skipped.append(Skip(source, "bad-timezone", bad.detail))
        try:
            calendars = _parse(without_timezones(data))
        except (_BadZone, ValueError, KeyError, IndexError, TypeError) as exc:
            return [], [Skip(source, "bad-calendar", _short(exc))]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return [], [Skip(source, "bad-calendar", _short(exc))]
    if not calendars:
        return [], [Skip(source, "bad-calendar", "no VCALENDAR in the data")]
    meetings: list[MeetingMeta] = []
    seen: set[tuple[str, str | None]] = set()
    for calendar in calendars:
        for item in _expand(calendar, source, window_start, window_end):
            if isinstance(item, Skip):
                skipped.append(item)
            elif (item.uid, item.recurrence_id) not in seen:
                seen.add((item.uid, item.recurrence_id))
                meetings.append(item)
    return meetings, skipped


class _BadZone(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _parse(data: bytes) -> list[icalendar.Calendar]:
    import icalendar  # here, not at the top: every keepwarm process imports this module

    data = wanted_lines(utf8(data))  # what is never parsed costs nothing (icalendar_text)
    try:
        found: list[icalendar.Calendar] = icalendar.Calendar.from_ical(data, multiple=True)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        if b"BEGIN:VTIMEZONE" in data.upper() and "TZOFFSET" in str(exc).upper():
            raise _BadZone(_short(exc)) from exc
        raise
    return found


def _expand(
    calendar: icalendar.Calendar, source: str, window_start: datetime, window_end: datetime
) -> Iterable[MeetingMeta | Skip]:
    import recurring_ical_events
    import x_wr_timezone  # type: ignore[import-untyped]  # ships without type hints

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
        recurring = any(
            key in event for event in events for key in ("RRULE", "RDATE", "RECURRENCE-ID")
        )
        if not recurring and len(events) == 1:
            # Most events happen once: the expander would only hand the event back, slowly.
            try:
                meeting = _meeting(events[0], uid, False, source, calendar_name, {})
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                yield Skip(f"{source}:{uid}", "bad-event", _short(exc))
                continue
            if _overlaps(meeting, window_start, window_end):
                yield meeting
            continue
        # One small calendar per UID, so that a series the expander chokes on costs only itself.
        single = type(calendar)()  # an empty VCALENDAR (icalendar is imported by _parse)
        for component in (*timezones, *events):
            single.add_component(component)
        try:
            shifts = _future_shifts(events)
            instances = recurring_ical_events.of(single).between(window_start, window_end)
            metas = [
                _meeting(instance, uid, recurring, source, calendar_name, shifts)
                for instance in instances
            ]
        except Exception as exc:  # whatever breaks one series costs only that series
            yield Skip(f"{source}:{uid}", "bad-recurrence", _short(exc))
            continue
        yield from metas


def _overlaps(meeting: MeetingMeta, start: datetime, end: datetime) -> bool:
    """Whether the meeting takes place in [start, end), as the expander decides for series."""
    first, last = meeting.start, meeting.end or meeting.start
    if last <= first:  # no duration: a point in time
        return start <= first < end
    return first < end and last > start


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
        # INTERVAL=0 makes the expander repeat one instant until memory runs out.
        if any(not isinstance(n, int) or n < 1 for n in rule.get("INTERVAL", [])):
            return "bad-event", f"RRULE: INTERVAL must be a positive number, got {rule['INTERVAL']}"
    return None


def _future_shifts(events: list[icalendar.Component]) -> dict[str, timedelta]:
    """How far each RANGE=THISANDFUTURE change moves the instances from it on, by its id.

    The expander gives every instance after such a change the change's own RECURRENCE-ID, so
    an instance's original start is its start minus this shift; without it, all those
    instances would share one recurrence id and collapse into one meeting.
    """
    shifts: dict[str, timedelta] = {}
    for event in events:
        original = event.get("RECURRENCE-ID")
        if original is None or str(original.params.get("RANGE", "")).upper() != "THISANDFUTURE":
            continue
        start = event.decoded("DTSTART")
        if isinstance(start, datetime) == isinstance(original.dt, datetime):
            shifts[instance_id(original.dt)] = start - original.dt
    return shifts


def _meeting(
    event: Any,
    uid: str,
    recurring: bool,
    source: str,
    calendar_name: str | None,
    shifts: dict[str, timedelta],
) -> MeetingMeta:
    start_value = event.decoded("DTSTART")
    all_day = not isinstance(start_value, datetime) or _outlook_all_day(event, start_value)
    try:
        end_value = event.end
        if all_day and isinstance(end_value, datetime):
            end_value = end_value.date()
        end: datetime | None = to_utc(end_value)
    except (ValueError, KeyError, TypeError):
        end = None
    recurrence_id: str | None = None
    if recurring:
        original = event.get("RECURRENCE-ID")
        recurrence_id = instance_id(original.dt if original is not None else start_value)
        shift = shifts.get(recurrence_id) if original is not None else None
        if shift is not None:
            recurrence_id = instance_id(start_value - shift)
    return MeetingMeta(
        source_id=f"{source}:{uid}" + (f":{recurrence_id}" if recurrence_id else ""),
        uid=uid,
        recurrence_id=recurrence_id,
        start=to_utc(
            start_value.date() if isinstance(start_value, datetime) and all_day else start_value
        ),
        end=end,
        all_day=all_day,
        status=str(event.get("STATUS") or "confirmed").lower(),
        organizer=_organizer(event.get("ORGANIZER")),
        attendees=tuple(_attendees(event.get("ATTENDEE"))),
        summary=str(event["SUMMARY"]) if event.get("SUMMARY") else None,
        calendar=calendar_name,
    )


def _outlook_all_day(event: Any, start: datetime) -> bool:
    """Outlook writes some all-day events as local midnight to midnight, flagged only by
    X-MICROSOFT-CDO-ALLDAYEVENT: read them as the all-day events they are (else a 1 May in
    Berlin would become 30 April in UTC)."""
    flag = event.get("X-MICROSOFT-CDO-ALLDAYEVENT") or event.get(
        "X-MICROSOFT-MSNCALENDAR-ALLDAYEVENT"
    )
    return str(flag).upper() == "TRUE" and start.time() == time(0)


def _address(value: Any) -> str | None:
    """A calendar user address without `mailto:`; else its EMAIL parameter (RFC 7986: Apple
    and others write `urn:uuid:…` with the address there); None when neither is an address."""
    for text in (str(value).strip(), _param(value, "EMAIL") or ""):
        if text[:7].lower() == "mailto:":
            text = text[7:].strip()
        if "@" in text and ":" not in text:
            return text
    return None


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
