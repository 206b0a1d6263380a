"""Google Calendar calendars and the methods the connector calls: events.list (pages,
singleEvents expansion of `recurrence` in the series' time zone with exceptions, timeMin/timeMax,
showDeleted, syncToken with 410 once expired) and calendarList.list.

Events are stored as API resources: single events, series (with `recurrence`) and exceptions
(with `recurringEventId` and `originalStartTime`), as Google keeps them.
"""

from __future__ import annotations

import base64
import itertools
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dateutil import rrule
from tests.emulators.google_errors import ApiError

if TYPE_CHECKING:
    from tests.emulators.google import Call

MAX_INSTANCES = 1000  # an endless series without timeMax: Google stops somewhere too
_NO_TOKEN_WITH = ("timeMin", "timeMax", "orderBy", "q", "iCalUID", "updatedMin")


class Calendar:
    """One calendar: events by id, and a change sequence for sync tokens."""

    def __init__(self, calendar_id: str, summary: str, time_zone: str, *, owner: str) -> None:
        self.id, self.summary, self.time_zone, self.owner = calendar_id, summary, time_zone, owner
        self.events: dict[str, dict[str, Any]] = {}
        self.changed: dict[str, int] = {}  # event id -> sequence number of its last change
        self.sequence = 1
        self.token_floor = 0  # sync tokens from before this answer 410
        self._ids = itertools.count(1)

    def put(self, event: dict[str, Any]) -> dict[str, Any]:
        """Insert or replace an event resource (id assigned if missing); returns it."""
        event = dict(event)
        event.setdefault("id", f"ev{next(self._ids):06d}c{zlib.crc32(self.id.encode()):08x}")
        event.setdefault("iCalUID", f"{event['id']}@google.com")
        event.setdefault("status", "confirmed")
        event.setdefault("eventType", "default")
        event["kind"] = "calendar#event"
        self.sequence += 1
        event["etag"] = f'"{self.sequence}"'
        event["updated"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        self.events[event["id"]] = event
        self.changed[event["id"]] = self.sequence
        return event

    def cancel(self, event_id: str) -> None:
        """Delete an event the way Google keeps it: a `cancelled` tombstone for sync."""
        self.put({**self.events[event_id], "status": "cancelled"})

    def expire_tokens(self) -> None:
        """Every sync token handed out so far now answers 410 Gone."""
        self.sequence += 1
        self.token_floor = self.sequence

    def token(self) -> str:
        return base64.urlsafe_b64encode(f"{self.id}|{self.sequence}".encode()).decode()


def parse_time(value: dict[str, Any], zone: str) -> datetime | date:
    """An EventDateTime as aware datetime (or a date for all-day events)."""
    if "date" in value:
        return date.fromisoformat(value["date"])
    moment = datetime.fromisoformat(value["dateTime"].replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(value.get("timeZone") or zone))
    return moment


def _utc(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _event_time(value: datetime | date, zone: str | None) -> dict[str, str]:
    if not isinstance(value, datetime):
        return {"date": value.isoformat()}
    shown = {"dateTime": value.isoformat()}
    return {**shown, "timeZone": zone} if zone else shown


def _stamp(value: datetime | date) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return value.strftime("%Y%m%d")


def instances(
    master: dict[str, Any], exceptions: dict[str, dict[str, Any]], zone: str, until: datetime | None
) -> Iterator[dict[str, Any]]:
    """The series' instances as Google returns them with singleEvents=true."""
    tz_name = master["start"].get("timeZone") or zone
    start = parse_time(master["start"], tz_name)
    end = parse_time(master["end"], tz_name)
    duration = _utc(end) - _utc(start)
    if isinstance(start, datetime):
        first: datetime = start.astimezone(ZoneInfo(tz_name))
    else:
        first = datetime(start.year, start.month, start.day)
    lines = [line for line in master.get("recurrence", []) if not line.startswith("EXRULE")]
    rules = rrule.rrulestr("\n".join(lines), dtstart=first, forceset=True, unfold=True)
    base = {k: v for k, v in master.items() if k not in ("recurrence", "id", "start", "end")}
    for count, moment in enumerate(rules):
        if until is not None and _utc(moment) >= until:
            return
        if until is None and count >= MAX_INSTANCES:
            return
        original: datetime | date = moment if isinstance(start, datetime) else moment.date()
        instance_id = f"{master['id']}_{_stamp(original)}"
        if instance_id in exceptions:
            yield exceptions[instance_id]
            continue
        if isinstance(start, datetime):
            shown_start: datetime | date = moment
            shown_end: datetime | date = (moment.astimezone(UTC) + duration).astimezone(
                moment.tzinfo
            )
        else:
            shown_start, shown_end = moment.date(), (moment + duration).date()
        yield {
            **base,
            "id": instance_id,
            "recurringEventId": master["id"],
            "originalStartTime": _event_time(original, tz_name),
            "start": _event_time(shown_start, tz_name),
            "end": _event_time(shown_end, tz_name),
        }


def _expanded(calendar: Calendar, items: list[dict[str, Any]], until: datetime | None) -> Any:
    """singleEvents=true: series become their instances, exceptions take their places."""
    exceptions: dict[str, dict[str, Any]] = {}
    for event in calendar.events.values():
        if "recurringEventId" in event:
            original = parse_time(event["originalStartTime"], calendar.time_zone)
            exceptions[f"{event['recurringEventId']}_{_stamp(original)}"] = event
    series = {e["id"] for e in items if "recurrence" in e and e["status"] != "cancelled"}
    for event in items:
        if event["id"] in series:
            yield from instances(event, exceptions, calendar.time_zone, until)
        elif event.get("recurringEventId") not in series:  # else its series put it in place
            yield event


def _overlaps(
    event: dict[str, Any], zone: str, low: datetime | None, high: datetime | None
) -> bool:
    try:
        start = _utc(parse_time(event["start"], zone))
        end = _utc(parse_time(event.get("end", event["start"]), zone))
    except (KeyError, ValueError, TypeError):
        return True  # unreadable test data passes every filter, for the client to cope with
    return (low is None or end > low) and (high is None or start < high)


def list_events(call: Call) -> dict[str, Any]:
    calendar_id = call.path["calendarId"]
    calendars = call.user.calendars
    calendar = calendars.get(call.user.email if calendar_id == "primary" else calendar_id)
    if calendar is None:
        raise ApiError(404, "notFound", "Not Found")
    sync = call.one("syncToken")
    single = call.one("singleEvents", "false") == "true"
    low, high = (_rfc3339(call.one(name)) for name in ("timeMin", "timeMax"))
    if sync is not None:
        if any(call.one(name) is not None for name in _NO_TOKEN_WITH):
            raise ApiError(400, "invalid", "Sync token cannot be used with these parameters.")
        try:
            since = int(base64.urlsafe_b64decode(sync).decode().rsplit("|", 1)[1])
        except (ValueError, IndexError) as exc:
            raise ApiError(400, "invalid", "Invalid sync token value.") from exc
        if since < calendar.token_floor:
            gone = "Sync token is no longer valid, a full sync is required."
            raise ApiError(410, "fullSyncRequired", gone)
        chosen = [calendar.events[i] for i, seq in calendar.changed.items() if seq > since]
        deleted = True  # changes always include deletions
    else:
        deleted = call.one("showDeleted", "false") == "true"
        chosen = list(calendar.events.values())
    if single:
        chosen = list(_expanded(calendar, chosen, high))
    # Google: "Cancelled instances of recurring events (but not the underlying recurring
    # event) will still be included if showDeleted and singleEvents are both False."
    chosen = [
        _for_owner(event, calendar.owner)
        for event in chosen
        if (
            deleted
            or event["status"] != "cancelled"
            or (not single and "recurringEventId" in event)
        )
        and (sync is not None or _series_overlaps(event, calendar, low, high))
    ]
    chosen.sort(key=lambda e: (_sort_key(e, calendar.time_zone), e["id"]))
    size = call.number("maxResults", 250, 2500)
    offset = int(call.one("pageToken") or 0)
    page = chosen[offset : offset + size]
    answer: dict[str, Any] = {
        "kind": "calendar#events",
        "summary": calendar.summary,
        "timeZone": calendar.time_zone,
        "accessRole": "owner",
        "items": page,
    }
    if offset + size < len(chosen):
        answer["nextPageToken"] = str(offset + size)
    elif not any(call.one(name) is not None for name in _NO_TOKEN_WITH):
        answer["nextSyncToken"] = calendar.token()
    return answer


def _series_overlaps(
    event: dict[str, Any], calendar: Calendar, low: datetime | None, high: datetime | None
) -> bool:
    if "recurrence" not in event:
        return _overlaps(event, calendar.time_zone, low, high)
    first = _utc(parse_time(event["start"], calendar.time_zone))
    return high is None or first < high  # an open series may reach into any later window


def _sort_key(event: dict[str, Any], zone: str) -> datetime:
    try:
        return _utc(parse_time(event.get("start") or event["originalStartTime"], zone))
    except (KeyError, ValueError, TypeError):
        return datetime.min.replace(tzinfo=UTC)


def _for_owner(event: dict[str, Any], owner: str) -> dict[str, Any]:
    """Mark the entries of the calendar's owner with `self`, as Google does ("the calendar on
    which this copy of the event appears"): on a calendar shared with you, that is its owner."""
    event = dict(event)
    if event.get("organizer", {}).get("email") == owner:
        event["organizer"] = {**event["organizer"], "self": True}
    if "attendees" in event:
        event["attendees"] = [
            {**a, "self": True} if a.get("email") == owner else a for a in event["attendees"]
        ]
    return event


def _rfc3339(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(400, "badRequest", f"Bad Request: {text}") from exc
    if moment.tzinfo is None:
        raise ApiError(400, "badRequest", "A time zone offset is required.")
    return moment


def list_calendars(call: Call) -> dict[str, Any]:
    items = [
        {
            "kind": "calendar#calendarListEntry",
            "id": calendar.id,
            "summary": calendar.summary,
            "timeZone": calendar.time_zone,
            "accessRole": "owner",
            **({"primary": True} if calendar.id == call.user.email else {}),
        }
        for calendar in call.user.calendars.values()
    ]
    return {"kind": "calendar#calendarList", "items": items}


CALENDAR_HANDLERS: dict[str, Callable[[Call], dict[str, Any]]] = {
    "calendar.events.list": list_events,
    "calendar.calendarList.list": list_calendars,
}


def timed(moment: datetime, zone: str) -> dict[str, str]:
    """An EventDateTime for a timed event in `zone` (test helper)."""
    return {"dateTime": moment.astimezone(ZoneInfo(zone)).isoformat(), "timeZone": zone}


def all_day(day: date) -> dict[str, str]:
    return {"date": day.isoformat()}
