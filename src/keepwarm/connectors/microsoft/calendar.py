"""Outlook / Microsoft 365 calendar over Graph (`kind = "outlook_calendar"`).

Each calendar (the primary one, or those `calendars` names by display name or id) is read with
`calendarView/delta` over a window from `now - backfill_days` to `now + lookahead_days`:
occurrences and exceptions of series come expanded, with `Prefer: outlook.timezone="UTC"`.
The cursor is JSON {"v", "graph", "calendars": {name: {"link", "kind", "opened"}},
"future_pending"}.

Past meetings come from the delta pages. Future meetings come from one plain calendarView list
with `$select` (no bodies: calendarView delta cannot `$select`, so its pages carry event bodies,
which are dropped unread) into a final batch marked `future_complete`, so meetings cancelled or
deleted since are dropped from the planned ones. That list runs only when a delta round changed
something: `future_pending` in every cursor after such a page makes sure a crash in between still
runs it. An idle poll costs one request per calendar.

The window moves: once a week a calendar, after following its stored round to the end (so
nothing changed meanwhile is missed), starts a new round over `now - RECENT_DAYS .. now +
lookahead_days`, so meetings rolling into the horizon are seen. An expired delta state restarts
that calendar in the same poll.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import structlog

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, SourceProblem, register
from keepwarm.connectors.microsoft.cursor import dump_cursor, load_cursor
from keepwarm.connectors.microsoft.events import meeting_meta, organiser_identity
from keepwarm.connectors.microsoft.graph import IMMUTABLE_IDS, PAGE_SIZE, GraphClient
from keepwarm.errors import CursorExpired, MalformedInput, TransientError
from keepwarm.model import Batch, MeetingMeta, Skip

log = structlog.get_logger(__name__)

REWINDOW = timedelta(days=7)
RECENT_DAYS = 30
PREFER = (
    f"odata.maxpagesize={PAGE_SIZE}",
    'outlook.timezone="UTC"',
    'outlook.body-content-type="text"',
    IMMUTABLE_IDS,
)
FIELDS = (
    "iCalUId,start,end,isAllDay,isCancelled,isOrganizer,responseStatus,attendees,organizer,"
    "type,seriesMasterId,originalStart"
)


@register("outlook_calendar")
class OutlookCalendarConnector:
    """Reads meetings of one Microsoft 365 / Outlook.com calendar; see the module docstring."""

    def __init__(self, account: AccountConfig, context: ConnectorContext) -> None:
        # msal and requests come with the first Outlook account, not with the registry.
        from keepwarm.connectors.microsoft.auth import TokenSource
        from keepwarm.connectors.microsoft.session import http_session

        self.account = account
        self.context = context
        self.session = http_session(account)
        self.tokens = TokenSource(account, context.state_dir, self.session)
        self.client = GraphClient(account, self.tokens, self.session)
        wanted = {name.lower() for name in context.wanted_headers}
        self.fields = FIELDS + (",subject" if not wanted or "subject" in wanted else "")
        self._ids: dict[str, str] = {}

    def close(self) -> None:
        """Drop pooled connections."""
        self.session.close()

    def poll(self, cursor: str | None) -> Iterator[Batch]:
        """Past meetings per delta page; future ones, when anything changed, in a last batch."""
        state = _load(cursor, self.client)
        now = self.context.now()
        self.tokens.token()
        owners = frozenset(
            a.lower() for a in (*self.account.addresses, self.tokens.owner or "") if a
        )
        calendars: dict[str, Any] = state["calendars"]
        last_cursor, yielded = cursor, False
        for name in self.account.calendars or ("",):
            restarted = False
            while True:
                try:
                    for items, saved, touched in self._rounds(name, calendars.get(name, {}), now):
                        calendars[name] = saved
                        state["future_pending"] = state.get("future_pending") or touched
                        batch = self._batch(items, name, owners, now, future=False)
                        batch.cursor = dump_cursor(state)
                        if batch.items or batch.skipped or batch.cursor != last_cursor:
                            last_cursor, yielded = batch.cursor, True
                            yield batch
                    break
                except CursorExpired as exc:
                    if restarted:
                        raise
                    restarted = True
                    log.warning(
                        "calendar delta expired, reading it again",
                        calendar=name or "primary",
                        reason=str(exc),
                    )
                    calendars[name] = {}
        if state.get("future_pending"):
            state["future_pending"] = False
            batch = self._future(owners, now)
            batch.cursor, yielded = dump_cursor(state), True
            yield batch
        log.info("outlook calendar polled", requests=self.client.requests)
        if not yielded:  # the daemon records a sync per stored batch, even an empty one
            yield Batch(cursor=dump_cursor(state))

    def _rounds(
        self, name: str, saved: dict[str, Any], now: datetime
    ) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any], bool]]:
        """(events, the calendar's state after them, whether anything changed) per page: the
        stored round to its end, then, when the window is a week old, a new window's round."""
        link, opened = saved.get("link"), saved.get("opened")
        if isinstance(link, str) and isinstance(opened, str):
            if not self.client.owns(link):
                raise CursorExpired("the stored delta link is not on the configured Graph root")
            yield from self._follow(link, None, saved.get("kind") == "delta", opened)
            if now - _when(opened, now) <= REWINDOW:
                return
        backfill = self.account.backfill_days
        days = min(RECENT_DAYS, backfill) if isinstance(link, str) else backfill
        params = {
            "startDateTime": _iso(now - timedelta(days=days)),
            "endDateTime": _iso(now + timedelta(days=self.account.lookahead_days)),
        }
        yield from self._follow(self._view(name) + "/delta", params, False, now.isoformat())

    def _follow(
        self, url: str, params: dict[str, str] | None, from_delta: bool, opened: str
    ) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any], bool]]:
        changed = not from_delta
        for page in self.client.pages(url, params, PREFER):
            changed = changed or bool(page.items)
            new: dict[str, Any] = {"opened": opened}
            if page.next_link is not None:
                new.update(link=page.next_link, kind="next")
            elif page.delta_link is not None:
                keep = from_delta and not changed  # nothing happened: the old link still holds
                new.update(link=url if keep else page.delta_link, kind="delta")
            else:
                raise TransientError("Graph ended a calendar delta round without a deltaLink")
            yield [item for item in page.items if "@removed" not in item], new, changed

    def _future(self, owners: frozenset[str], now: datetime) -> Batch:
        """Every meeting from now to the horizon, in every calendar: the planned ones."""
        params = {
            "startDateTime": _iso(now),
            "endDateTime": _iso(now + timedelta(days=self.account.lookahead_days)),
            "$select": self.fields,
            "$top": str(PAGE_SIZE),
        }
        items: list[tuple[str, dict[str, Any]]] = []
        for name in self.account.calendars or ("",):
            for page in self.client.pages(self._view(name), params, PREFER):
                items.extend((name, item) for item in page.items)
        batch = Batch(future_complete=True)
        for name, item in items:
            self._add(batch, item, name, owners, now, future=True)
        return batch

    def _batch(
        self,
        items: list[dict[str, Any]],
        name: str,
        owners: frozenset[str],
        now: datetime,
        *,
        future: bool,
    ) -> Batch:
        batch = Batch()
        for item in items:
            self._add(batch, item, name, owners, now, future=future)
        return batch

    def _add(
        self,
        batch: Batch,
        item: dict[str, Any],
        name: str,
        owners: frozenset[str],
        now: datetime,
        *,
        future: bool,
    ) -> None:
        if item.get("type") == "seriesMaster":
            return  # calendarView lists the occurrences themselves
        organiser = organiser_identity(item)
        known = owners | {organiser} if organiser else owners
        try:
            meta: MeetingMeta = meeting_meta(
                item, calendar=name or "Calendar", owners=known, owner=self.tokens.owner
            )
        except MalformedInput as exc:
            if not future:
                source_id = item.get("id") if isinstance(item.get("id"), str) else name
                batch.skipped.append(Skip(str(source_id), exc.reason, exc.detail))
            return
        # Future meetings come from the listing alone (see the module docstring).
        if (meta.start > now) != future:
            return
        batch.items.append(meta)
        if organiser:
            batch.identities = batch.identities | {organiser}

    def _view(self, name: str) -> str:
        """The calendarView URL of the primary calendar ("") or of a named one."""
        if not name:
            return f"{self.client.base}/calendarView"
        if name not in self._ids:
            body = self.client.get(
                f"{self.client.base}/calendars", {"$select": "id,name", "$top": "250"}, PREFER
            )
            for found in body.get("value", []):
                if isinstance(found, dict) and isinstance(found.get("id"), str):
                    self._ids.setdefault(str(found.get("name", "")).lower(), found["id"])
                    self._ids.setdefault(found["id"], found["id"])
        key = name if name in self._ids else name.lower()
        if key not in self._ids:
            raise SourceProblem(
                f"account {self.account.name!r} has no calendar {name!r}",
                "check accounts.calendars: names as Outlook shows them, or calendar ids",
            )
        return f"{self.client.base}/calendars/{quote(self._ids[key], safe='')}/calendarView"


def _when(text: str, now: datetime) -> datetime:
    """When a window was opened; a damaged value counts as long ago (a new window is cheap)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return now - 2 * REWINDOW


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _load(cursor: str | None, client: GraphClient) -> dict[str, Any]:
    return load_cursor(cursor, client.base, {"calendars": {}, "future_pending": False}, "calendars")
