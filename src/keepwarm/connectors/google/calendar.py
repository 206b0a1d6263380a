"""Google Calendar over its API: each chosen calendar (default `primary`) of the account.

Google cannot combine `syncToken` with `timeMin`/`timeMax`, so we use each for what it does best
(measurements and the alternatives in docs/google.md):

- a sync token tells *whether and where* a calendar changed: one `events.list(syncToken)` call
  per calendar and poll (fields limited to ids and times), 410 Gone -> CursorExpired;
- windowed reads of Google's own expansion (`singleEvents=true`, `timeMin`/`timeMax`) give the
  instances, recurrence rules, exceptions and time zones applied exactly as Google shows them.

First sync: take each calendar's sync token (pages with only `nextSyncToken` selected), then read
`now - backfill_days` .. `now + 365 days`. Later polls: when a calendar changed, read it again from
the earliest start among the changed events (never before the backfill, never after now) to the
horizon; every other calendar's future is read too, so that each such batch holds every future
meeting of the account (`future_complete`) and cancelled or declined ones drop out. No change:
one call per calendar, no batch items. The future is also read again weekly, so that instances
of a series entering the 365-day horizon are seen.

Cursor (JSON): {"v": 1, "tokens": {"<user>|<calendar>": syncToken}, "read": ISO time of the last
future read}.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, SourceProblem, register
from keepwarm.connectors.google import service
from keepwarm.connectors.google.calendar_events import EVENT_FIELDS, owners, to_meeting, when
from keepwarm.connectors.google.quota import CALENDAR_BURST, CALENDAR_RATE, Pacer
from keepwarm.connectors.google.service import Api
from keepwarm.connectors.icalendar_meetings import to_utc
from keepwarm.errors import CursorExpired
from keepwarm.model import Batch, MeetingMeta, MessageMeta, Skip

HORIZON = timedelta(days=365)
REFRESH = timedelta(days=7)
PAGE = 2500  # the most events.list returns in one page
LIST = "calendar.events.list"
_CHANGE_FIELDS = "items(id,status,start,originalStartTime),nextPageToken,nextSyncToken"


@register("google_calendar")
class GoogleCalendarConnector:
    """Reads the account's calendars; see the module docstring."""

    def __init__(
        self,
        account: AccountConfig,
        context: ConnectorContext,
        *,
        pacer: Callable[[], Pacer] | None = None,
    ) -> None:
        self.account = account
        self.context = context
        self._new_pacer = pacer or (
            lambda: (
                Pacer.for_rate(account.rate_limit)
                if account.rate_limit
                else Pacer.for_rate(CALENDAR_RATE, CALENDAR_BURST)
            )
        )
        self._apis: dict[str | None, Api] = {}

    def close(self) -> None:
        """Close the connections (a later poll opens new ones; counts stay readable)."""
        for api in self._apis.values():
            api.close()

    def api(self, user: str | None) -> Api:
        if user not in self._apis:
            self._apis[user] = service.calendar(
                self.account, self.context.state_dir, user, self._new_pacer()
            )
        return self._apis[user]

    def poll(self, cursor: str | None) -> Iterator[Batch]:
        """One batch: the changed windows and the whole future, or nothing when nothing changed."""
        now = self.context.now()
        calendars = self.account.calendars or ("primary",)
        pairs = {
            f"{user or 'me'}|{calendar}": (user, calendar)
            for user in service.users_of(self.account)
            for calendar in calendars
        }
        state = _load(cursor)
        start = now - timedelta(days=self.account.backfill_days)
        lows: dict[str, datetime] = {}
        if state is None or set(state["tokens"]) != set(pairs):  # first sync, or calendars changed
            tokens = {key: self._sync_token(*pair) for key, pair in pairs.items()}
            lows = dict.fromkeys(pairs, start)
        else:
            tokens = {}
            for key, pair in pairs.items():
                tokens[key], changed, earliest = self._changes(*pair, state["tokens"][key])
                if changed:
                    lows[key] = min(max(earliest or now, start), now)
            if not lows and now - state["read"] < REFRESH:
                yield Batch(cursor=_dump(tokens, state["read"]))
                return
        items: list[MessageMeta | MeetingMeta] = []
        skipped: list[Skip] = []
        identities = {user for user, _ in pairs.values() if user}
        for key, (user, calendar) in pairs.items():
            for event, label, zone in self._window(
                user, calendar, lows.get(key, now), now + HORIZON
            ):
                if calendar in ("primary", user):
                    # `self` marks the calendar's owner: on a calendar shared by someone else
                    # that is them, not you.
                    identities |= owners(event)
                meta = to_meeting(event, label, zone)
                if isinstance(meta, Skip):
                    skipped.append(meta)
                elif meta is not None:
                    items.append(meta)
        yield Batch(
            items=items,
            skipped=skipped,
            cursor=_dump(tokens, now),
            identities=frozenset(identities),
            future_complete=True,
        )

    def _list(self, user: str | None, calendar: str, **params: Any) -> Iterator[dict[str, Any]]:
        """The pages of one events.list query."""
        api = self.api(user)
        missing = SourceProblem(
            f"no calendar {calendar!r} for {user or 'this account'}",
            "check accounts.calendars (`keepwarm auth google NAME` lists the calendars)",
        )
        page_token = None
        while True:
            request = api.resource.events().list(
                calendarId=calendar, maxResults=PAGE, pageToken=page_token, **params
            )
            gone = CursorExpired(f"Google expired the sync token of calendar {calendar!r}")
            page = api.call(request, LIST, on_status={404: missing, 410: gone})
            yield page
            page_token = page.get("nextPageToken")
            if not page_token:
                return

    def _sync_token(self, user: str | None, calendar: str) -> str:
        """A sync token for the calendar as it is now (no events transferred)."""
        for page in self._list(user, calendar, fields="nextPageToken,nextSyncToken"):
            if page.get("nextSyncToken"):
                return str(page["nextSyncToken"])
        raise SourceProblem(f"Google gave no sync token for calendar {calendar!r}", "")

    def _changes(
        self, user: str | None, calendar: str, token: str
    ) -> tuple[str, bool, datetime | None]:
        """(new token, whether anything changed, earliest start among the changed events)."""
        changed, earliest = False, None
        new_token = token
        for page in self._list(user, calendar, syncToken=token, fields=_CHANGE_FIELDS):
            for event in page.get("items", []):
                changed = True
                for value in (event.get("start"), event.get("originalStartTime")):
                    try:
                        moment = to_utc(when(value, "UTC"))
                    except (ValueError, KeyError, TypeError):
                        continue  # a deletion's tombstone carries no time: the future covers it
                    earliest = moment if earliest is None else min(earliest, moment)
            new_token = str(page.get("nextSyncToken") or new_token)
        return new_token, changed, earliest

    def _window(
        self, user: str | None, calendar: str, low: datetime, high: datetime
    ) -> Iterator[tuple[dict[str, Any], str, str]]:
        """(event instance, calendar label, calendar zone) from low to high."""
        label = (user or "primary") if calendar == "primary" else calendar
        for page in self._list(
            user,
            calendar,
            singleEvents=True,
            showDeleted=False,
            timeMin=_rfc3339(low),
            timeMax=_rfc3339(high),
            fields=EVENT_FIELDS,
        ):
            zone = str(page.get("timeZone") or "UTC")
            for event in page.get("items", []):
                yield event, label, zone


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load(cursor: str | None) -> dict[str, Any] | None:
    if cursor is None:
        return None
    try:
        data = json.loads(cursor)
        if data.get("v") != 1:
            raise ValueError("unknown cursor version")
        tokens = {str(k): str(v) for k, v in data["tokens"].items()}
        read = datetime.fromisoformat(data["read"])
        if read.tzinfo is None:
            raise ValueError("naive time")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CursorExpired(f"unreadable Google Calendar cursor: {exc}") from exc
    return {"tokens": tokens, "read": read}


def _dump(tokens: dict[str, str], read: datetime) -> str:
    data = {"v": 1, "tokens": tokens, "read": read.astimezone(UTC).isoformat()}
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
