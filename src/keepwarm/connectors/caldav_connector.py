"""CalDAV calendars (`kind = "caldav"`): Fastmail, iCloud, Nextcloud, Radicale, any RFC 4791 server.

A poll:
1. Discovery, on the first poll and then daily: the principal (the caldav library's discovery
   from `url`), its calendar home and own addresses, and the calendars in the home. The default
   selection is every event calendar the user owns (or just the calendar `url` names);
   `calendars` picks by display name, last path segment or URL.
2. Changes per calendar: one sync-collection REPORT (RFC 6578) from the stored token; an unknown
   token (403 valid-sync-token) reads that calendar whole again. Servers without
   sync-collection: one PROPFIND for the ctag, and on a change one for the members' ETags,
   diffed with the stored map.
3. Nothing changed and the daily refresh not due: an empty batch. That is one request per
   calendar.
4. Otherwise one batch with `future_complete`: calendars read whole over the backfill window,
   changed objects (calendar-multiget) expanded over it, and every calendar's meetings from the
   last refresh on, so the batch holds every future meeting and a deleted, cancelled or
   shortened event drops out of the planned ones. Past touchpoints are never taken back.

Recurring events are expanded locally by `icalendar_meetings` (the same rules as the ICS
connector, so natural keys agree), or by the server with `server_expand` (objects it leaves
unexpanded are expanded locally). An event in two calendars is sent once (its UID and instance).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import structlog

from keepwarm.config.schema import AccountConfig
from keepwarm.config.secrets import read_secret
from keepwarm.connectors import caldav_state, caldav_xml
from keepwarm.connectors.base import ConnectorContext, SourceProblem, register
from keepwarm.connectors.caldav_dav import (
    CalendarGone,
    Changes,
    DavSession,
    Discovery,
    NoSync,
    Resource,
    TokenInvalid,
)
from keepwarm.connectors.caldav_select import CalendarInfo, last_segment, select
from keepwarm.connectors.caldav_state import CalendarState, State
from keepwarm.connectors.icalendar_meetings import meetings_from_calendar
from keepwarm.connectors.icalendar_text import merge
from keepwarm.errors import AuthError, TransientError, UserError
from keepwarm.model import Batch, MeetingMeta, Skip

log = structlog.get_logger(__name__)

HORIZON = timedelta(days=365)  # how far ahead meetings are read
# The refresh re-reads from the previous one minus this, so that a planned meeting whose time
# came between two polls is in the batch that replaces the planned ones.
MARGIN = timedelta(hours=1)
MERGED = 1000  # objects parsed together as one calendar


@dataclass(slots=True)
class _Plan:
    """What a poll reads from one calendar."""

    calendar: CalendarState
    whole: bool = False
    changed: list[str] = field(default_factory=list)
    deleted: int = 0


@register("caldav")
class CaldavConnector:
    """Reads the selected calendars of one CalDAV account; see the module docstring."""

    def __init__(self, account: AccountConfig, context: ConnectorContext) -> None:
        if not account.url:
            raise SourceProblem(f"account {account.name!r} has no url", "set accounts.url")
        self.account = account
        self.context = context

    def close(self) -> None:
        """Nothing is held open between polls."""

    def poll(self, cursor: str | None) -> Iterator[Batch]:
        """One batch: every meeting a change touched plus every future one, or an empty one."""
        state = caldav_state.load(cursor)
        password = self._password()
        try:
            batch = self._read(state, password, state.auth)
        except AuthError:
            if state.auth is None:
                raise
            # The scheme remembered from last time was refused: negotiate it afresh once.
            batch = self._read(replace(state, auth=None), password, None)
        yield batch

    def _password(self) -> str:
        account = self.account
        try:
            return read_secret(
                file=account.password_file,
                env=account.password_env,
                command=account.password_command,
                key=f"accounts[{account.name}].password",
            )
        except UserError as exc:
            raise AuthError(f"cannot read the CalDAV password: {exc}", fix=str(exc)) from None

    def _read(self, state: State, password: str, auth: str | None) -> Batch:
        now = self.context.now()
        dav = DavSession(self.account, password, auth)
        try:
            identities: frozenset[str] = frozenset()
            listing: dict[str, CalendarInfo] = {}
            for attempt in range(2):
                if attempt or state.discovery_due(now):
                    found = dav.discover()
                    identities = found.addresses
                    listing = {c.url: c for c in found.calendars}
                    state = self._adopt(state, found, now)
                try:
                    plans = [self._plan(dav, c, listing) for c in state.calendars]
                    break
                except CalendarGone:
                    if attempt:
                        raise SourceProblem(
                            f"a calendar of {dav.where} vanished while it was read",
                            "try again; if it persists, check accounts.calendars",
                        ) from None
            state = replace(
                state,
                calendars=tuple(p.calendar for p in plans),
                auth=dav.auth_type or state.auth,
            )
            if not (state.refresh_due(now) or any(p.whole or p.changed or p.deleted
                                                  for p in plans)):  # fmt: skip
                return Batch(cursor=state.dump(), identities=identities)
            try:
                items, skipped = self._meetings(dav, plans, state, now)
            except CalendarGone:
                # Deleted between the question and the reading: the next poll finds out which.
                message = f"a calendar of {dav.where} vanished while it was read"
                raise TransientError(message) from None
        finally:
            dav.close()
        done = replace(state, refreshed=now, due=False)
        log.info("caldav polled", calendars=len(plans), meetings=len(items), skipped=len(skipped))
        return Batch(items=list(items), skipped=skipped, cursor=done.dump(),
                     identities=identities, future_complete=True)  # fmt: skip

    def _adopt(self, state: State, found: Discovery, now: datetime) -> State:
        """The state for the calendars now selected; known ones keep their place."""
        selected = select(found.calendars, self.account.calendars, self.account.url or "")
        known = {c.url: c for c in state.calendars}
        calendars = tuple(
            replace(known[c.url], name=c.name) if c.url in known else CalendarState(c.url, c.name)
            for c in selected
        )
        dropped = set(known) - {c.url for c in calendars}  # their planned meetings must go
        return replace(state, home=found.home, calendars=calendars, discovered=now,
                       due=state.due or bool(dropped))  # fmt: skip

    def _plan(
        self, dav: DavSession, calendar: CalendarState, listing: dict[str, CalendarInfo]
    ) -> _Plan:
        """Ask one calendar what changed since its stored place (one request, or none)."""
        if calendar.unread:
            return self._whole(dav, calendar, listing.get(calendar.url))
        if calendar.token is not None:
            info = listing.get(calendar.url)
            if info is not None and info.sync_token == calendar.token:
                return _Plan(calendar)  # the listing just said so: no request needed
            try:
                changes: Changes = dav.sync(calendar.url, calendar.token)
            except TokenInvalid as exc:
                log.info("sync token expired, reading the calendar again", reason=str(exc))
                return self._whole(dav, replace(calendar, token=None), None)
            except NoSync:
                return self._whole(dav, replace(calendar, token=None), None, sync=False)
            return _Plan(replace(calendar, token=changes.token), False, changes.changed,
                         changes.deleted)  # fmt: skip
        if calendar.ctag is not None:
            own, _ = dav.state(calendar.url, members=False)
            if own is not None and own.text(caldav_xml.GETCTAG) == calendar.ctag:
                return _Plan(calendar)
        own, etags = dav.state(calendar.url, members=True)
        before = calendar.etags or {}
        changed = sorted(href for href, etag in etags.items() if before.get(href) != etag)
        ctag = own.text(caldav_xml.GETCTAG) if own is not None else None
        return _Plan(replace(calendar, ctag=ctag, etags=etags), False, changed,
                     len(set(before) - set(etags)))  # fmt: skip

    def _whole(
        self, dav: DavSession, calendar: CalendarState, info: CalendarInfo | None, *,
        sync: bool = True,
    ) -> _Plan:  # fmt: skip
        """Take the calendar's place *before* reading it whole: later changes come next time."""
        token = info.sync_token if info is not None else None
        if sync and info is None:
            own, _ = dav.state(calendar.url, members=False)
            token = own.text(caldav_xml.SYNC_TOKEN) if own is not None else None
        if sync and token:
            return _Plan(replace(calendar, token=token, ctag=None, etags=None), whole=True)
        own, etags = dav.state(calendar.url, members=True)
        ctag = own.text(caldav_xml.GETCTAG) if own is not None else None
        return _Plan(replace(calendar, token=None, ctag=ctag, etags=etags), whole=True)

    def _meetings(
        self, dav: DavSession, plans: list[_Plan], state: State, now: datetime
    ) -> tuple[list[MeetingMeta], list[Skip]]:
        everything = (now - timedelta(days=self.account.backfill_days), now + HORIZON)
        since = state.refreshed - MARGIN if state.refreshed and state.refreshed <= now else None
        future = (max(everything[0], since) if since else everything[0], everything[1])
        expand = self.account.server_expand
        found = _Found()
        for plan in plans:
            url, name = plan.calendar.url, plan.calendar.name
            if plan.whole:
                found.add(name, dav.query(url, *everything, expand=expand), everything)
                continue
            if plan.changed:
                objects = dav.multiget(url, plan.changed, everything if expand else None)
                found.add(name, objects, everything)
            found.add(name, dav.query(url, *future, expand=expand), future)
        return found.sorted(), found.skipped


class _Found:
    """Meetings of several calendars, each (UID, instance) once, and the skipped objects."""

    def __init__(self) -> None:
        self.meetings: dict[tuple[str, str | None], MeetingMeta] = {}
        self.skipped: list[Skip] = []

    def add(
        self, calendar: str, objects: Iterable[Resource], window: tuple[datetime, datetime]
    ) -> None:
        """Read the objects of one answer. They are parsed as one calendar (a server repeats
        each time zone in every object: parsing it once is most of the speed); an object that
        does not merge cleanly, or a merged text that does not parse, is read on its own."""
        named: list[tuple[str, bytes]] = []
        for found in objects:
            if found.data:
                named.append((f"{calendar}/{last_segment(found.href)}", found.data.encode()))
            else:
                where = f"{calendar}/{last_segment(found.href)}"
                self.skipped.append(Skip(where, "no-data", "the server sent no calendar data"))
        for first in range(0, len(named), MERGED):  # bounded memory for huge calendars
            part = named[first : first + MERGED]
            merged, alone = merge([data for _, data in part])
            if len(alone) < len(part) and self._read(merged, calendar, window):
                part = [part[i] for i in alone]
            for where, data in part:
                self._read(data, calendar, window, where)

    def _read(
        self, data: bytes, calendar: str, window: tuple[datetime, datetime], where: str = ""
    ) -> bool:
        """Add the meetings of `data`; False (and nothing added) if a merged text is unreadable."""
        meetings, skipped = meetings_from_calendar(
            data, source=calendar, window_start=window[0], window_end=window[1]
        )
        if not where and any(skip.source_id == calendar for skip in skipped):
            return False  # the whole text, or one of its time zones: read object by object
        # A whole object that cannot be read has no UID to name it by: name it by its href.
        self.skipped.extend(
            replace(skip, source_id=where) if where and skip.source_id == calendar else skip
            for skip in skipped
        )
        for meeting in meetings:
            self.meetings.setdefault((meeting.uid, meeting.recurrence_id), meeting)
        return True

    def sorted(self) -> list[MeetingMeta]:
        return sorted(self.meetings.values(), key=lambda m: (m.start, m.uid, m.recurrence_id or ""))
