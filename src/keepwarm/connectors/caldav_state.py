"""The CalDAV cursor: which calendars are read, where each one's changes start, and when the
calendar list and the future meetings were last read whole. JSON text only this package reads.

Per calendar, either a sync-collection token (RFC 6578), or, for servers without it, the
collection's ctag and a map of member href -> ETag; neither means "read it whole next time".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from keepwarm.errors import CursorExpired

VERSION = 1
# The calendar list is read again, and every future meeting re-read (instances of unchanged
# series roll into the horizon as time passes), at least this often.
REFRESH = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class CalendarState:
    url: str
    name: str
    token: str | None = None  # sync-collection token
    ctag: str | None = None  # servers without sync-collection: the collection's ctag
    etags: dict[str, str] | None = None  # ... and its members' ETags by href

    @property
    def unread(self) -> bool:
        """Never read whole, or its place was lost: the next poll reads it whole."""
        return self.token is None and self.etags is None


@dataclass(frozen=True, slots=True)
class State:
    home: str | None = None
    calendars: tuple[CalendarState, ...] = ()
    discovered: datetime | None = None
    refreshed: datetime | None = None  # the last batch holding every future meeting
    due: bool = False  # something changed since: the next poll sends every future meeting
    auth: str | None = None  # the HTTP auth scheme the server accepted

    def discovery_due(self, now: datetime) -> bool:
        return self.home is None or not _recent(self.discovered, now)

    def refresh_due(self, now: datetime) -> bool:
        return self.due or not _recent(self.refreshed, now)

    def with_calendar(self, calendar: CalendarState) -> State:
        """This state with `calendar` replacing the one of the same URL."""
        calendars = tuple(calendar if c.url == calendar.url else c for c in self.calendars)
        return replace(self, calendars=calendars)

    def dump(self) -> str:
        data: dict[str, Any] = {
            "v": VERSION,
            "home": self.home,
            "calendars": [_calendar_dict(c) for c in self.calendars],
            "discovered": _iso(self.discovered),
            "refreshed": _iso(self.refreshed),
            "due": self.due,
            "auth": self.auth,
        }
        return json.dumps(data, separators=(",", ":"), sort_keys=True)


def load(cursor: str | None) -> State:
    """The state a cursor holds; an empty state for None; CursorExpired if unreadable."""
    if not cursor:
        return State()
    try:
        data = json.loads(cursor)
        if not isinstance(data, dict) or data.get("v") != VERSION:
            raise ValueError("not a CalDAV cursor of this version")
        return State(
            home=_str(data.get("home")),
            calendars=tuple(_calendar(c) for c in data["calendars"]),
            discovered=_time(data.get("discovered")),
            refreshed=_time(data.get("refreshed")),
            due=bool(data.get("due", False)),
            auth=_str(data.get("auth")),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CursorExpired(f"unreadable CalDAV cursor: {exc}") from exc


def _calendar(data: dict[str, Any]) -> CalendarState:
    etags = data.get("etags")
    if etags is not None and not all(isinstance(v, str) for v in etags.values()):
        raise TypeError("etags must map hrefs to strings")
    return CalendarState(
        url=str(data["url"]),
        name=str(data["name"]),
        token=_str(data.get("token")),
        ctag=_str(data.get("ctag")),
        etags=dict(etags) if etags is not None else None,
    )


def _calendar_dict(calendar: CalendarState) -> dict[str, Any]:
    found: dict[str, Any] = {"url": calendar.url, "name": calendar.name}
    for key in ("token", "ctag", "etags"):
        if getattr(calendar, key) is not None:
            found[key] = getattr(calendar, key)
    return found


def _recent(then: datetime | None, now: datetime) -> bool:
    return then is not None and timedelta(0) <= now - then < REFRESH


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError("naive time in cursor")
    return parsed


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
