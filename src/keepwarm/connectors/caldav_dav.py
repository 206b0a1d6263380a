"""The CalDAV conversation, over the caldav library's client: discovery from the principal, the
calendar listing, sync-collection, ctag/ETag listings, calendar-query and calendar-multiget.

Every request runs inside `caldav_errors.translated`, so only our errors leave this module
(plus three signals the connector acts on: TokenInvalid, NoSync, CalendarGone). The library is
imported when a session starts: `keepwarm --help` need not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors import caldav_xml as xml
from keepwarm.connectors.base import SourceProblem
from keepwarm.connectors.caldav_errors import shown, translated
from keepwarm.connectors.caldav_select import CalendarInfo, calendars_in
from keepwarm.errors import AuthError, TransientError

# A calendar-query the server refuses (Radicale answers 400 past 10,000 events) is asked again
# as two half windows, down to this span.
MIN_SPAN = timedelta(days=1)
_SPLIT_ON = frozenset({400, 413, 500, 507})
MULTIGET_CHUNK = 200  # hrefs per calendar-multiget request
SYNC_PAGES = 100  # truncated sync-collection answers followed before giving up


class TokenInvalid(Exception):
    """The server no longer knows the sync token (RFC 6578 valid-sync-token): read it again."""


class NoSync(Exception):
    """The server refused the sync-collection report: use ctag and ETags instead."""


class CalendarGone(Exception):
    """A calendar answered 404: it was deleted or moved; discover the calendars again."""


@dataclass(frozen=True, slots=True)
class Discovery:
    home: str
    addresses: frozenset[str]  # the user's own addresses (calendar-user-address-set)
    calendars: list[CalendarInfo]


@dataclass(frozen=True, slots=True)
class Resource:
    """One calendar object as the server sent it."""

    href: str
    etag: str | None
    data: str | None


@dataclass(frozen=True, slots=True)
class Changes:
    changed: list[str]  # hrefs to fetch
    deleted: int
    token: str | None


class DavSession:
    """One client for one poll; `close()` ends it."""

    def __init__(self, account: AccountConfig, password: str, auth_type: str | None) -> None:
        # Half a second of imports (niquests, dnspython): paid only when CalDAV is used.
        from caldav.davclient import DAVClient

        self.url = account.url or ""
        self.where = shown(self.url)
        self.username = account.username
        with self.errors():
            self.client = DAVClient(
                url=self.url,
                username=account.username,
                password=password,
                auth_type=auth_type,
                timeout=account.timeout,  # type: ignore[arg-type]  # typed int, passed to niquests
                ssl_verify_cert=account.ca_file or True,
                enable_rfc6764=False,  # the URL is given: no DNS lookups on our behalf
                rate_limit_handle=False,  # the daemon backs off; a poll never sleeps
            )

    def close(self) -> None:
        self.client.close()

    @property
    def auth_type(self) -> str | None:
        """The scheme the server accepted (basic, digest), to skip the 401 round next time."""
        name = type(self.client.auth).__name__.lower() if self.client.auth else ""
        return next((kind for kind in ("basic", "digest") if kind in name), None)

    def discover(self) -> Discovery:
        """Principal (the library's discovery), its home and addresses, then the calendars."""
        with self.errors():
            principal = str(self.client.get_principal().url)
            found = self._propfind(principal, xml.propfind_principal(), depth=0, gone=False)
        entry = next((e for e in found.entries if xml.same_resource(e.href, principal, principal)),
                     None)  # fmt: skip
        home_hrefs = [h.text for h in entry.children(_HOME)] if entry else []
        home = xml.absolute(home_hrefs[0].strip(), principal) if home_hrefs else principal
        addresses = frozenset(
            (h.text or "").strip()[7:]
            for h in (entry.children(_ADDRESSES) if entry else [])
            if (h.text or "").strip().lower().startswith("mailto:")
        )
        return Discovery(home, addresses, self.calendars(home, principal))

    def calendars(self, home: str, principal: str) -> list[CalendarInfo]:
        """Every calendar collection in the home, with its change markers."""
        listing = self._propfind(home, xml.propfind_calendars(), depth=1, gone=False)
        return calendars_in(listing, home, principal)

    def state(self, url: str, *, members: bool) -> tuple[xml.Entry | None, dict[str, str]]:
        """The calendar's own markers (sync-token, ctag), and its members' ETags if asked."""
        listing = self._propfind(url, xml.propfind_state(), depth=1 if members else 0)
        own = next((e for e in listing.entries if xml.same_resource(e.href, url, url)), None)
        etags = {
            e.href: e.text(xml.GETETAG) or ""
            for e in listing.entries
            if e is not own and e.status == 200 and not e.children(xml.RESOURCETYPE)
        }
        return own, etags

    def sync(self, url: str, token: str) -> Changes:
        """What changed since `token`, following truncated answers (RFC 6578 §3.6)."""
        changed: dict[str, None] = {}
        deleted = 0
        for _ in range(SYNC_PAGES):
            response = self._report(url, xml.sync_collection(token), depth=None, sync=True)
            if response.status in (409, 412) and xml.VALID_SYNC_TOKEN in _preconditions(response):
                raise TokenInvalid(f"HTTP {response.status}")
            if response.status in (400, 405, 501):
                raise NoSync(f"HTTP {response.status}")
            answer = self._multistatus(response, url)
            for entry in answer.entries:
                if xml.same_resource(entry.href, url, url):
                    continue
                if entry.status == 404:
                    deleted += 1
                    changed.pop(entry.href, None)
                else:
                    changed[entry.href] = None
            more = answer.truncated and answer.sync_token not in (None, token)
            token = answer.sync_token or token
            if not more:
                break
        return Changes(list(changed), deleted, token)

    def query(
        self, url: str, start: datetime, end: datetime, *, expand: bool
    ) -> Iterator[Resource]:
        """Every event object overlapping [start, end); a refused window is asked in halves."""
        response = self._report(url, xml.calendar_query(start, end, expand=expand), depth=1)
        if response.status in _SPLIT_ON and end - start > MIN_SPAN:
            middle = start + (end - start) / 2
            yield from self.query(url, start, middle, expand=expand)
            yield from self.query(url, middle, end, expand=expand)
            return
        yield from self._resources(response, url)

    def multiget(
        self, url: str, hrefs: list[str], window: tuple[datetime, datetime] | None
    ) -> Iterator[Resource]:
        """The named objects' data (expanded by the server over `window` when given)."""
        for i in range(0, len(hrefs), MULTIGET_CHUNK):
            body = xml.calendar_multiget(hrefs[i : i + MULTIGET_CHUNK], window)
            yield from self._resources(self._report(url, body, depth=1), url)

    # -- requests --------------------------------------------------------------------------

    def _propfind(self, url: str, body: str, depth: int, *, gone: bool = True) -> xml.Multistatus:
        with self.errors():
            response = self.client.propfind(url, body, depth=depth)
        return self._multistatus(response, url, gone=gone)

    def _report(self, url: str, body: str, *, depth: int | None, sync: bool = False) -> Any:
        from caldav.lib import error

        try:
            with self.errors():
                return self.client.report(url, body, depth=depth)
        except AuthError as exc:
            cause = exc.__cause__
            if not sync or not isinstance(cause, error.AuthorizationError) or cause.status != 403:
                raise
            if xml.VALID_SYNC_TOKEN in cause.preconditions:
                raise TokenInvalid(str(cause.reason)) from exc
            # supported-report, or no reason given: a server (or a proxy) without the report.
            raise NoSync(str(cause.reason)) from exc

    def _resources(self, response: Any, url: str) -> Iterator[Resource]:
        for entry in self._multistatus(response, url).entries:
            if entry.status == 200 and not xml.same_resource(entry.href, url, url):
                yield Resource(entry.href, entry.text(xml.GETETAG), entry.text(xml.CALENDAR_DATA))

    def _multistatus(self, response: Any, url: str, *, gone: bool = True) -> xml.Multistatus:
        status = response.status
        if status == 404 and gone:
            raise CalendarGone(url)
        if status >= 500 or status == 429:
            raise TransientError(f"{self.where} answered HTTP {status}")
        if status not in (200, 207):
            raise SourceProblem(
                f"{self.where} answered HTTP {status} to a CalDAV request",
                "check that accounts.url is the server's CalDAV address",
            )
        try:
            return xml.parse(response.tree, url)
        except (ValueError, AttributeError) as exc:
            raise SourceProblem(
                f"{self.where} did not answer like a CalDAV server ({exc})",
                "check that accounts.url is the server's CalDAV address",
            ) from exc

    def errors(self) -> AbstractContextManager[None]:
        """Turn the library's and the HTTP layer's errors into ours."""
        return translated(self.where, self.username)


_HOME = f"{{{xml.CALDAV}}}calendar-home-set"
_ADDRESSES = f"{{{xml.CALDAV}}}calendar-user-address-set"


def _preconditions(response: Any) -> list[str]:
    tree = getattr(response, "tree", None)
    if tree is None or tree.tag != f"{{{xml.DAV}}}error":
        return []
    return [child.tag for child in tree if isinstance(child.tag, str)]
