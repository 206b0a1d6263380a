"""WebDAV/CalDAV request bodies and multistatus answers, as plain data (no I/O).

Bodies: PROPFIND for calendars and member ETags, calendar-query over a time range (RFC 4791
§7.8), calendar-multiget (§7.9), sync-collection (RFC 6578). Answers are read leniently: a
property a server refuses (403/404 propstat) is just absent, unknown elements are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"
_NS = {"D": DAV, "C": CALDAV, "CS": CS}

RESOURCETYPE = f"{{{DAV}}}resourcetype"
DISPLAYNAME = f"{{{DAV}}}displayname"
OWNER = f"{{{DAV}}}owner"
SYNC_TOKEN = f"{{{DAV}}}sync-token"
GETETAG = f"{{{DAV}}}getetag"
GETCTAG = f"{{{CS}}}getctag"
COMPONENTS = f"{{{CALDAV}}}supported-calendar-component-set"
CALENDAR_DATA = f"{{{CALDAV}}}calendar-data"
CALENDAR = f"{{{CALDAV}}}calendar"
# Apple's markers: a calendar someone shared with the user, a subscribed webcal feed.
SHARED = f"{{{CS}}}shared"
SUBSCRIBED = f"{{{CS}}}subscribed"
VALID_SYNC_TOKEN = f"{{{DAV}}}valid-sync-token"


@dataclass(frozen=True, slots=True)
class Entry:
    """One `<response>` of a multistatus: its href, status and the properties found (200)."""

    href: str
    status: int  # of the response itself (404 = removed member in a sync report), else 200
    props: dict[str, Any] = field(default_factory=dict)  # Clark tag -> lxml element

    def text(self, tag: str) -> str | None:
        element = self.props.get(tag)
        text = element.text if element is not None else None
        return text.strip() if text and text.strip() else None

    def children(self, tag: str) -> list[Any]:
        element = self.props.get(tag)
        return list(element) if element is not None else []


@dataclass(frozen=True, slots=True)
class Multistatus:
    entries: list[Entry]
    sync_token: str | None = None
    truncated: bool = False  # RFC 6578 §3.6: a 507 for the request URL itself


@cache
def _makers() -> tuple[Any, Any, Any]:
    """Element makers for the DAV, CalDAV and CalendarServer namespaces.

    lxml is imported by the first request built, not at import: the connector registry
    imports this module in every process, CalDAV account or not.
    """
    from lxml.builder import ElementMaker  # type: ignore[import-untyped]  # no type hints

    return tuple(ElementMaker(namespace=ns, nsmap=_NS) for ns in (DAV, CALDAV, CS))


def _xml(element: Any) -> str:
    from lxml import etree  # type: ignore[import-untyped]  # lxml ships no type hints

    return str(etree.tostring(element, xml_declaration=True, encoding="utf-8").decode())


def propfind_principal() -> str:
    """The principal's calendar home and its own addresses."""
    D, C, _ = _makers()
    return _xml(D.propfind(D.prop(C("calendar-home-set"), C("calendar-user-address-set"))))


def propfind_calendars() -> str:
    """What the calendar listing asks of every collection in the calendar home."""
    D, C, S = _makers()
    return _xml(
        D.propfind(D.prop(
            D.resourcetype(), D.displayname(), D.owner(), D("sync-token"), S.getctag(),
            C("supported-calendar-component-set"),
        ))
    )  # fmt: skip


def propfind_state() -> str:
    """A collection's change markers (depth 0), or with its members' ETags (depth 1)."""
    D, _, S = _makers()
    return _xml(D.propfind(D.prop(D.resourcetype(), D("sync-token"), S.getctag(), D.getetag())))


def _calendar_data(expand: tuple[datetime, datetime] | None) -> Any:
    _, C, _ = _makers()
    if expand is None:
        return C("calendar-data")
    start, end = expand
    return C("calendar-data", C.expand(start=_stamp(start), end=_stamp(end)))


def calendar_query(start: datetime, end: datetime, *, expand: bool) -> str:
    """Every VEVENT overlapping [start, end) with its data; expanded by the server if asked."""
    D, C, _ = _makers()
    return _xml(
        C("calendar-query",
          D.prop(D.getetag(), _calendar_data((start, end) if expand else None)),
          C.filter(C("comp-filter", C("comp-filter",
                                      C("time-range", start=_stamp(start), end=_stamp(end)),
                                      name="VEVENT"), name="VCALENDAR")))
    )  # fmt: skip


def calendar_multiget(hrefs: Iterable[str], expand: tuple[datetime, datetime] | None) -> str:
    """The data of the named members (hrefs exactly as the server gave them)."""
    D, C, _ = _makers()
    return _xml(
        C("calendar-multiget", D.prop(D.getetag(), _calendar_data(expand)),
          *[D.href(href) for href in hrefs])
    )  # fmt: skip


def sync_collection(token: str | None) -> str:
    """Members changed or removed since `token` (all members when None), with their ETags."""
    D, _, _ = _makers()
    return _xml(
        D("sync-collection", D("sync-token", token or ""), D("sync-level", "1"),
          D.prop(D.getetag()))
    )  # fmt: skip


def parse(tree: Any, request_url: str) -> Multistatus:
    """A parsed `<multistatus>` (lxml element) -> entries; hrefs stay as the server wrote them."""
    if tree is None or tree.tag != f"{{{DAV}}}multistatus":
        raise ValueError("the answer is not a WebDAV multistatus")
    entries: list[Entry] = []
    token: str | None = None
    truncated = False
    for element in tree:
        if element.tag == SYNC_TOKEN:
            token = (element.text or "").strip() or None
        elif element.tag == f"{{{DAV}}}response":
            entry = _entry(element)
            if entry is None:
                continue
            if entry.status == 507 and same_resource(entry.href, request_url, request_url):
                truncated = True
                continue
            entries.append(entry)
    return Multistatus(entries, token, truncated)


def _entry(element: Any) -> Entry | None:
    href = element.findtext(f"{{{DAV}}}href")
    if not href or not href.strip():
        return None
    status = _status(element.findtext(f"{{{DAV}}}status"))
    props: dict[str, Any] = {}
    for propstat in element.iterfind(f"{{{DAV}}}propstat"):
        if _status(propstat.findtext(f"{{{DAV}}}status")) != 200:
            continue  # 404: not set; 403: not for us to see; either way, absent
        for prop in propstat.iterfind(f"{{{DAV}}}prop"):
            for child in prop:
                props[child.tag] = child
    return Entry(href.strip(), status, props)


def _status(line: str | None) -> int:
    """`HTTP/1.1 404 Not Found` -> 404; no status line means success."""
    parts = (line or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 200


def absolute(href: str, base: str) -> str:
    """An href (path or URL) as an absolute URL, resolved against `base`."""
    return urljoin(base, href)


def same_resource(href: str, url: str, base: str) -> bool:
    """Whether `href` (resolved against `base`) names `url`: paths compared unquoted,
    trailing slash ignored."""
    return _path(absolute(href, base)) == _path(url)


def _path(url: str) -> str:
    return unquote(urlsplit(url).path).rstrip("/")


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
