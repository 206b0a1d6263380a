"""Graph event JSON -> `MeetingMeta`, by the same time rules as `icalendar_meetings.py`.

- Times: the connector asks for UTC (`Prefer: outlook.timezone="UTC"`); a time that still comes
  with a zone is converted: IANA names directly, Windows names ("W. Europe Standard Time") through
  icalendar's Windows -> IANA table, anything unknown taken as UTC. All-day events start at
  12:00 UTC of their date.
- Series: calendarView returns occurrences and exceptions, never the master. Graph gives each
  occurrence its own `iCalUId`: for Exchange's own ids (a hex PidLidGlobalObjectId) the bytes
  holding the instance date are zeroed, which gives the series' iCalendar UID, the one other
  sources see; `recurrence_id` is the instance's original start (`originalStart`).
- The owner's answer is `responseStatus` (the owner's row in `attendees` often says "none"): it
  is written onto the owner's attendee, so detection's "attended" rule reads it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from keepwarm.connectors.icalendar_meetings import instance_id
from keepwarm.connectors.microsoft.messages import parse_time, person
from keepwarm.errors import MalformedInput
from keepwarm.model import Attendee, MeetingMeta, Person

UTC_NAMES = frozenset({"utc", "etc/utc", "etc/gmt", "gmt", "z", "tzone://microsoft/utc"})
# PidLidGlobalObjectId: 16 bytes of class id, then year (2 bytes), month, day of the instance.
GOID_PREFIX = "040000008200E00074C5B7101A82E008"
PARTSTAT = {
    "accepted": "accepted",
    "organizer": "accepted",
    "tentativelyaccepted": "tentative",
    "declined": "declined",
    "notresponded": "needs-action",
}
_LOCAL = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?")


def local_time(value: Any) -> tuple[datetime, bool]:
    """A Graph dateTimeTimeZone {dateTime, timeZone} as aware UTC, and whether its zone was
    known (False: taken as UTC)."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise MalformedInput("bad-event", "no start time")
    match = _LOCAL.match(value["dateTime"].strip())
    if not match:
        raise MalformedInput("bad-event", f"unreadable time {value['dateTime'][:40]!r}")
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    naive = datetime(year, month, day, hour, minute, second)
    zone = zone_of(str(value.get("timeZone") or "UTC"))
    if zone is None:
        return naive.replace(tzinfo=UTC), False
    return naive.replace(tzinfo=zone).astimezone(UTC), True


def zone_of(name: str) -> ZoneInfo | None:
    """The zone a Graph timeZone names (UTC, IANA or Windows), None when unknown."""
    cleaned = name.strip()
    if cleaned.lower() in UTC_NAMES:
        return ZoneInfo("UTC")
    # Here, not at import: icalendar is big and the connector asks Graph for UTC anyway.
    from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

    for candidate in (cleaned, WINDOWS_TO_OLSON.get(cleaned)):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return None


def series_uid(ical_uid: str) -> str:
    """The iCalendar UID of an occurrence's series: the instance date zeroed in an Exchange id."""
    if ical_uid.upper().startswith(GOID_PREFIX) and len(ical_uid) >= 40:
        return ical_uid[:32] + "00000000" + ical_uid[40:]
    return ical_uid


def meeting_meta(
    item: dict[str, Any], *, calendar: str, owners: frozenset[str], owner: str | None
) -> MeetingMeta:
    """The `MeetingMeta` of one event instance; MalformedInput when it cannot be used.

    `owners`: lower-cased owner addresses; `owner`: the one to add as an attendee when the
    owner's answer must be said and the attendee list does not name them.
    """
    source_id = item.get("id")
    if not isinstance(source_id, str) or not source_id:
        raise MalformedInput("bad-event", "an event without an id")
    all_day = item.get("isAllDay") is True
    start, _ = local_time(item.get("start"))
    end: datetime | None
    try:
        end = local_time(item.get("end"))[0]
    except MalformedInput:
        end = None
    if all_day:
        start = _noon(start, item.get("start"))
        end = _noon(end, item.get("end")) if end is not None else None
    kind = str(item.get("type") or "singleInstance")
    uid = str(item.get("iCalUId") or item.get("seriesMasterId") or source_id)
    recurrence_id: str | None = None
    if kind in ("occurrence", "exception"):
        uid = series_uid(uid)
        original = parse_time(item.get("originalStart")) or start
        recurrence_id = instance_id(original.date() if all_day else original)
    organizer = person(item.get("organizer"))
    attendees = _attendees(item, organizer, owners, owner)
    return MeetingMeta(
        source_id=source_id,
        uid=uid,
        recurrence_id=recurrence_id,
        start=start,
        end=end,
        all_day=all_day,
        status="cancelled" if item.get("isCancelled") is True else "confirmed",
        organizer=organizer,
        attendees=attendees,
        summary=str(item["subject"]) if isinstance(item.get("subject"), str) else None,
        calendar=calendar,
    )


def organiser_identity(item: dict[str, Any]) -> str | None:
    """The organizer's address when Graph says the owner organised the event (a send-as
    identity the owner may not have configured)."""
    found = person(item.get("organizer"))
    return found.address.lower() if item.get("isOrganizer") is True and found else None


def _attendees(
    item: dict[str, Any], organizer: Person | None, owners: frozenset[str], owner: str | None
) -> tuple[Attendee, ...]:
    answer = item.get("responseStatus")
    response = str(answer.get("response") or "") if isinstance(answer, dict) else ""
    own_partstat = PARTSTAT.get(response.lower())
    if item.get("isOrganizer") is True:
        own_partstat = "accepted"
    found: list[Attendee] = []
    owner_listed = False
    for raw in item.get("attendees") or ():
        who = person(raw)
        if who is None or not isinstance(raw, dict):
            continue
        status = raw.get("status")
        said = str(status.get("response") or "") if isinstance(status, dict) else ""
        partstat = PARTSTAT.get(said.lower())
        if who.address.lower() in owners:
            owner_listed = True
            partstat = own_partstat or partstat
        resource = str(raw.get("type") or "").lower() == "resource"
        found.append(Attendee(who.address, who.name, partstat, resource))
    organised = organizer is not None and organizer.address.lower() in owners
    if not owner_listed and not organised and owner and own_partstat not in (None, "accepted"):
        found.append(Attendee(owner, None, own_partstat))
    return tuple(found)


def _noon(moment: datetime, raw: Any) -> datetime:
    """12:00 UTC of an all-day event's date: the date as written, whatever zone it came in."""
    text = raw.get("dateTime", "") if isinstance(raw, dict) else ""
    match = _LOCAL.match(text.strip()) if isinstance(text, str) else None
    if match:
        year, month, day = (int(part) for part in match.groups()[:3])
        return datetime(year, month, day, 12, tzinfo=UTC)
    return moment.replace(hour=12, minute=0, second=0, microsecond=0)
