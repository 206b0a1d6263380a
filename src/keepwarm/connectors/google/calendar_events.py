"""A Google Calendar event resource (an instance: singleEvents=true) -> `MeetingMeta`.

Times: `dateTime` carries its UTC offset (RFC 3339), so the calendar's zone never matters; a
`dateTime` without one (not sent by Google, but allowed by the schema) is read in the event's
`timeZone`, else the calendar's. All-day events (`date`) start at 12:00 UTC of their date, as
every keepwarm connector has them, so that one meeting seen through ICS, CalDAV and the API has
the same natural key; an instance's recurrence id is its `originalStartTime` the same way.
Attendees' `responseStatus` becomes the iCalendar PARTSTAT detection reads; `self` marks the
calendar's owner, whose address is an owner identity.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from keepwarm.connectors.icalendar_meetings import instance_id, to_utc
from keepwarm.model import Attendee, MeetingMeta, Person, Skip

PARTSTAT = {
    "needsAction": "needs-action",
    "accepted": "accepted",
    "tentative": "tentative",
    "declined": "declined",
}
# `fields` of events.list: who, when and whether; no description, location or attachments.
EVENT_FIELDS = (
    "items(id,iCalUID,status,summary,start,end,originalStartTime,recurringEventId,eventType,"
    "organizer(email,displayName,self),"
    "attendees(email,displayName,responseStatus,resource,self,organizer),attendeesOmitted),"
    "timeZone,nextPageToken,nextSyncToken"
)


def when(value: Any, zone: str) -> datetime | date:
    """An EventDateTime as an aware datetime, or a date for all-day events."""
    if not isinstance(value, dict):
        raise ValueError("missing")
    if value.get("date"):
        return date.fromisoformat(str(value["date"]))
    moment = datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        try:
            moment = moment.replace(tzinfo=ZoneInfo(str(value.get("timeZone") or zone)))
        except (ZoneInfoNotFoundError, ValueError):
            moment = moment.replace(tzinfo=UTC)
    return moment


def owners(event: dict[str, Any]) -> set[str]:
    """The calendar owner's addresses as this event shows them (`self: true`)."""
    people = [event.get("organizer") or {}, *(event.get("attendees") or [])]
    return {
        str(p["email"]) for p in people if isinstance(p, dict) and p.get("self") and p.get("email")
    }


def to_meeting(event: dict[str, Any], calendar: str, zone: str) -> MeetingMeta | Skip | None:
    """The meeting instance, a Skip when it cannot be read, None for a cancelled one."""
    source_id = f"{calendar}:{event.get('id', '?')}"
    if event.get("status") == "cancelled":
        return None
    try:
        start = when(event.get("start"), zone)
        end = when(event.get("end"), zone) if event.get("end") else None
        original = event.get("originalStartTime")
        recurrence = (
            instance_id(when(original, zone))
            if event.get("recurringEventId") and original
            else None
        )
    except (ValueError, KeyError, TypeError) as exc:
        return Skip(source_id, "bad-event", f"unreadable start or end: {exc}"[:200])
    if event.get("attendeesOmitted"):
        # Google left guests out: a crowd we cannot count is not a meeting to weigh.
        return Skip(source_id, "attendees-omitted")
    organizer = event.get("organizer") or {}
    return MeetingMeta(
        source_id=source_id,
        uid=str(event.get("iCalUID") or event.get("id")),
        recurrence_id=recurrence,
        start=to_utc(start),
        end=to_utc(end) if end is not None else None,
        all_day=not isinstance(start, datetime),
        status=str(event.get("status") or "confirmed"),
        organizer=(
            Person(str(organizer["email"]), organizer.get("displayName"))
            if organizer.get("email")
            else None
        ),
        attendees=tuple(
            Attendee(
                str(a["email"]),
                a.get("displayName"),
                PARTSTAT.get(str(a.get("responseStatus")), "needs-action"),
                resource=bool(a.get("resource")),
            )
            for a in event.get("attendees") or []
            if isinstance(a, dict) and a.get("email")
        ),
        summary=event.get("summary"),
        calendar=calendar,
    )
