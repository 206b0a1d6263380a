"""Which calendars of a CalDAV account are read: the `calendars` setting, else the calendar
that `url` names, else every event calendar the user owns (not shared with them, not a
subscription, not a task list)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from keepwarm.connectors import caldav_xml as xml
from keepwarm.connectors.base import SourceProblem


@dataclass(frozen=True, slots=True)
class CalendarInfo:
    url: str
    name: str
    owned: bool  # in the user's home and not shared with them by someone else
    events: bool  # holds VEVENTs (not only tasks)
    sync_token: str | None
    ctag: str | None


def calendars_in(listing: xml.Multistatus, home: str, principal: str) -> list[CalendarInfo]:
    """The calendar collections of a calendar-home listing (PROPFIND depth 1), by URL."""
    found = []
    for entry in listing.entries:
        kinds = {child.tag for child in entry.children(xml.RESOURCETYPE)}
        if xml.CALENDAR not in kinds or xml.SUBSCRIBED in kinds:
            continue
        url = xml.absolute(entry.href, home)
        owners = [h.text or "" for h in entry.children(xml.OWNER)]
        # Apple marks calendars shared with the user; others name another owner (RFC 3744).
        owned = xml.SHARED not in kinds and all(
            xml.same_resource(owner.strip(), principal, home) for owner in owners
        )
        components = {c.get("name", "").upper() for c in entry.children(xml.COMPONENTS)}
        name = entry.text(xml.DISPLAYNAME) or last_segment(url)
        found.append(
            CalendarInfo(
                url=url,
                name=name,
                owned=owned,
                events=not components or "VEVENT" in components,
                sync_token=entry.text(xml.SYNC_TOKEN),
                ctag=entry.text(xml.GETCTAG),
            )
        )
    return sorted(found, key=lambda c: c.url)


def select(found: list[CalendarInfo], wanted: tuple[str, ...], url: str) -> list[CalendarInfo]:
    """The calendars to read: those `wanted` names (display name, id or URL), else the one
    `url` names, else every event calendar the user owns. SourceProblem if one is missing."""
    if not found:
        raise SourceProblem(f"found no calendars at {url}", "check accounts.url and username")
    if not wanted:
        named = [c for c in found if xml.same_resource(url, c.url, c.url)]
        chosen = named or [c for c in found if c.owned and c.events]
        if not chosen:
            names = ", ".join(repr(c.name) for c in found)
            raise SourceProblem(f"no event calendar of your own among {names}",
                                "name the ones to read in accounts.calendars")  # fmt: skip
        return chosen
    picked: dict[str, CalendarInfo] = {}
    missing: list[str] = []
    for name in wanted:
        matches = [c for c in found if _matches(c, name)]
        picked.update({c.url: c for c in matches})
        if not matches:
            missing.append(repr(name))
    if missing:
        names = ", ".join(repr(c.name) for c in found)
        raise SourceProblem(
            f"no calendar {', '.join(missing)} on the server (it has {names})",
            "fix accounts.calendars: a calendar's name, the last part of its URL, or its URL",
        )
    return sorted(picked.values(), key=lambda c: c.url)


def _matches(calendar: CalendarInfo, wanted: str) -> bool:
    text = wanted.strip()
    if text.casefold() in (calendar.name.casefold(), last_segment(calendar.url).casefold()):
        return True
    return ("/" in text) and xml.same_resource(text, calendar.url, calendar.url)


def last_segment(href: str) -> str:
    """`/dav/me/work/` -> `work`; `/dav/me/work/a%40b.ics` -> `a@b.ics`."""
    return unquote(urlsplit(href).path.rstrip("/")).rsplit("/", 1)[-1]
