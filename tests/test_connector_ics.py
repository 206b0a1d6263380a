"""iCalendar expansion on real-world-like samples, and the ICS connector from a file and from a
real local HTTP(S) server."""

from __future__ import annotations

import contextlib
import http.server
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from tests.connector_contract import ConnectorContract, final_cursor, keys, run, skips

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, SourceProblem
from keepwarm.connectors.icalendar_meetings import meetings_from_calendar
from keepwarm.connectors.ics import IcsConnector
from keepwarm.errors import AuthError, TransientError
from keepwarm.model import Attendee, MeetingMeta, Person

DATA = Path(__file__).parent / "data" / "ics"
WIDE = {
    "window_start": datetime(2023, 1, 1, tzinfo=UTC),
    "window_end": datetime(2025, 1, 1, tzinfo=UTC),
}


def sample(name: str) -> tuple[list[MeetingMeta], list[Any]]:
    return meetings_from_calendar((DATA / name).read_bytes(), source="feed", **WIDE)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def by_uid(meetings: list[MeetingMeta]) -> dict[str, MeetingMeta]:
    return {m.uid: m for m in meetings}


# --- iCalendar reality ---------------------------------------------------------------------


def test_windows_zone_names_and_custom_vtimezones() -> None:
    meetings, skipped = sample("outlook_windows_tz.ics")
    assert skipped == []
    found = {m.summary: m for m in meetings}
    planning = found["Quartalsplanung"]  # W. Europe Standard Time, summer: UTC+2
    assert (planning.start, planning.end) == (utc("2024-07-10T12:00"), utc("2024-07-10T13:00"))
    assert planning.recurrence_id is None
    assert planning.calendar == "Calendar"
    assert planning.organizer == Person("anna.mueller@contoso.com", "Müller, Anna")
    assert planning.attendees == (
        Attendee("ben.schmidt@contoso.com", "Ben Schmidt", "accepted"),
        Attendee("room-3@contoso.com", "Raum 3", "accepted", resource=True),
        Attendee("Chris.Vogel@Fabrikam.example", "Chris Vogel", "tentative"),
    )
    # "Pacific Standard Time" without a VTIMEZONE: mapped to America/Los_Angeles (UTC-8).
    assert found["Sync with Seattle"].start == utc("2024-01-15T17:00")
    # Outlook's "Customized Time Zone", defined only by its VTIMEZONE (+05:30).
    assert found["Call with Pune"].start == utc("2024-02-05T04:30")


def test_floating_and_unknown_zones_are_taken_as_utc() -> None:
    found = by_uid(sample("floating.ics")[0])
    assert found["floating-1@example.org"].start == utc("2024-03-01T09:30")
    assert found["floating-1@example.org"].end == utc("2024-03-01T10:30")
    assert found["unknown-zone@example.org"].start == utc("2024-03-02T08:00")


def test_all_day_events_start_at_noon_utc() -> None:
    meetings, _ = sample("all_day.ics")
    found = by_uid(meetings)
    offsite = found["7F5E2A0C-1D9B-4C1E-9A51-2F1A9B3C4D5E"]
    assert (offsite.start, offsite.end, offsite.all_day) == (
        utc("2024-02-29T12:00"),
        utc("2024-03-01T12:00"),
        True,
    )
    assert found["3A1B-multi-day"].end == utc("2024-04-11T12:00")
    birthdays = [(m.recurrence_id, m.start) for m in meetings if m.uid == "birthday-series"]
    assert birthdays == [
        ("2023-06-12T12:00:00Z", utc("2023-06-12T12:00")),
        ("2024-06-12T12:00:00Z", utc("2024-06-12T12:00")),
    ]


def test_recurrence_exdate_moved_and_cancelled_instances() -> None:
    meetings, skipped = sample("recurring.ics")
    assert skipped == []
    weekly = [
        (m.recurrence_id, m.start, m.status, m.summary)
        for m in meetings
        if m.uid == "weekly-1on1@example.org"
    ]
    assert weekly == [
        ("2024-03-18T09:00:00Z", utc("2024-03-18T09:00"), "confirmed", "1:1 Frank / me"),
        # 25 March is an EXDATE; from 31 March Berlin is on summer time (UTC+2).
        ("2024-04-01T08:00:00Z", utc("2024-04-02T13:00"), "confirmed", "1:1 Frank / me (moved)"),
        ("2024-04-08T08:00:00Z", utc("2024-04-08T08:00"), "cancelled", "1:1 Frank / me"),
        ("2024-04-15T08:00:00Z", utc("2024-04-15T08:00"), "confirmed", "1:1 Frank / me"),
        ("2024-04-22T08:00:00Z", utc("2024-04-22T08:00"), "confirmed", "1:1 Frank / me"),
    ]
    extra = [m.start for m in meetings if m.uid == "rdate-series@example.org"]
    assert extra == [utc("2024-03-20T16:00"), utc("2024-03-27T16:00"), utc("2024-04-04T16:00")]


def test_x_wr_timezone_feed_keeps_local_time_across_dst() -> None:
    meetings, _ = sample("google_x_wr_timezone.ics")
    assert [m.start for m in meetings] == [
        utc("2024-03-18T09:00"),
        utc("2024-03-25T09:00"),
        utc("2024-04-01T08:00"),  # 10:00 in Berlin, now on summer time
    ]
    first = meetings[0]
    assert first.calendar == "me@example.net"
    assert [(a.address, a.partstat, a.resource) for a in first.attendees] == [
        ("grace@example.org", "declined", False),
        ("me@example.net", "accepted", False),
        ("c_1882abc@resource.calendar.google.com", "accepted", True),
    ]


def test_organizer_without_attendees_and_attendees_without_mailto() -> None:
    meetings, skipped = sample("people.ics")
    assert skipped == []
    found = by_uid(meetings)
    lunch = found["organizer-only@example.org"]
    assert (lunch.organizer, lunch.attendees) == (Person("heidi@example.org", "Heidi"), ())
    games = found["no-mailto@example.org"]
    assert games.status == "tentative"
    assert games.organizer is None
    assert games.attendees == (  # the room's urn:uuid is nobody to keep in touch with
        Attendee("ivan@example.org", "Ivan", "needs-action"),
        Attendee("judy@example.org", "Judy", "declined"),
    )
    assert found["no-organizer@example.org"].organizer is None
    assert [m.uid for m in meetings].count("dup@example.org") == 1


def test_a_broken_vevent_is_skipped_and_the_others_are_read() -> None:
    meetings, skipped = sample("broken_event.ics")
    assert [m.uid for m in meetings] == ["good-before@example.org", "good-after@example.org"]
    assert sorted((s.source_id, s.reason) for s in skipped) == [
        ("feed", "no-uid"),
        ("feed:bad-rule@example.org", "bad-event"),
        ("feed:every-minute@example.org", "too-frequent"),
        ("feed:garbage-start@example.org", "bad-event"),
        ("feed:no-start@example.org", "no-start"),
    ]


def test_an_unparseable_file_is_one_skip() -> None:
    for data in (b"<html><body>Sign in</body></html>", b""):
        meetings, skipped = meetings_from_calendar(data, source="feed", **WIDE)
        assert meetings == []
        assert [(s.source_id, s.reason) for s in skipped] == [("feed", "bad-calendar")]


def test_the_window_bounds_the_expansion() -> None:
    meetings, _ = meetings_from_calendar(
        (DATA / "recurring.ics").read_bytes(),
        source="feed",
        window_start=datetime(2024, 4, 3, tzinfo=UTC),
        window_end=datetime(2024, 4, 16, tzinfo=UTC),
    )
    assert sorted(m.start for m in meetings) == [
        utc("2024-04-04T16:00"),
        utc("2024-04-08T08:00"),
        utc("2024-04-15T08:00"),
    ]


# --- the connector ---------------------------------------------------------------------------

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


def vevent(uid: str, start: datetime, extra: str = "") -> str:
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20240101T000000Z",
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
        f"DTEND:{start + timedelta(hours=1):%Y%m%dT%H%M%SZ}",
        "ORGANIZER;CN=Alice:mailto:alice@example.org",
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:me@example.net",
        extra,
        "END:VEVENT",
    ]
    return "\r\n".join(line for line in lines if line)


def calendar(events: list[str]) -> bytes:
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//keepwarm tests//EN\r\n"
    return (head + "\r\n".join(events) + "\r\nEND:VCALENDAR\r\n").encode()


class Feed:
    """The events of one feed; rendered whole each time it changes, as a server does."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def add(self, keys: list[str]) -> None:
        for key in keys:
            self.events.append(vevent(key, BASE + timedelta(hours=len(self.events))))

    def add_bad(self, key: str) -> None:
        self.events.append(f"BEGIN:VEVENT\r\nUID:{key}\r\nSUMMARY:no start\r\nEND:VEVENT")

    def data(self) -> bytes:
        return calendar(self.events)


class FileFeed(Feed):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.account = AccountConfig(name="cal", kind="ics", path=str(path))
        self.path.write_bytes(self.data())

    def add(self, keys: list[str]) -> None:
        super().add(keys)
        self.path.write_bytes(self.data())

    def add_bad(self, key: str) -> None:
        super().add_bad(key)
        self.path.write_bytes(self.data())


class FeedServer(http.server.ThreadingHTTPServer):
    """A real HTTP server: /feed.ics with ETag/Last-Modified, redirects, errors on demand."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.feed = Feed()
        self.status = 200
        self.headers_sent: dict[str, str] = {}
        self.etag: str | None = '"v1"'
        self.last_modified: str | None = None
        self.content_length = True
        self.stall = 0.0  # seconds before answering
        self.requests: list[dict[str, str]] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FeedServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def handle_one_request(self) -> None:
        # A client that timed out and left: nothing to answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().handle_one_request()

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append({"path": self.path, **dict(self.headers.items())})
        if srv.stall:
            time.sleep(srv.stall)
        if self.path in ("/loop/a", "/loop/b"):
            return self._redirect("/loop/b" if self.path.endswith("a") else "/loop/a")
        if self.path.startswith("/hop/"):
            left = int(self.path.rsplit("/", 1)[1])
            return self._redirect(f"/hop/{left - 1}" if left > 1 else "/feed.ics")
        if self.path == "/login":
            return self._send(200, b"<!DOCTYPE html><html>Please sign in</html>", "text/html")
        if self.path != "/feed.ics":
            return self._send(404, b"not found", "text/plain")
        if srv.status != 200:
            return self._send(srv.status, b"nope", "text/plain", srv.headers_sent)
        data = srv.feed.data()
        if srv.etag and self.headers.get("If-None-Match") == srv.etag:
            return self._send(304, b"", "text/calendar")
        if srv.last_modified and self.headers.get("If-Modified-Since") == srv.last_modified:
            return self._send(304, b"", "text/calendar")
        extra = {"ETag": srv.etag or "", "Last-Modified": srv.last_modified or ""}
        return self._send(200, data, "text/calendar; charset=utf-8", extra)

    def _redirect(self, location: str) -> None:
        self._send(302, b"", "text/plain", {"Location": location})

    def _send(
        self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for name, value in (extra or {}).items():
            if value:
                self.send_header(name, value)
        if self.server.content_length or code != 200:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()  # HTTP/1.0: without a length, the body ends when the connection does
        if code != 304:
            self.wfile.write(body)


class HttpFeed:
    def __init__(self, server: FeedServer) -> None:
        self.server = server
        self.account = AccountConfig(name="cal", kind="ics", url=f"{server.base}/feed.ics")

    def add(self, keys: list[str]) -> None:
        self.server.feed.add(keys)
        self.server.etag = f'"v{len(self.server.feed.events)}"'

    def add_bad(self, key: str) -> None:
        self.server.feed.add_bad(key)
        self.server.etag = f'"v{len(self.server.feed.events)}"'


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer()
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


@pytest.fixture
def context(tmp_path: Path) -> ConnectorContext:
    now = datetime.now(UTC)
    return ConnectorContext(state_dir=tmp_path, now=lambda: now)


class TestIcsFileContract(ConnectorContract):
    resends_everything: ClassVar[bool] = True
    many: ClassVar[int] = 0

    @pytest.fixture
    def source(self, tmp_path: Path) -> FileFeed:
        return FileFeed(tmp_path / "calendar.ics")


class TestIcsHttpContract(ConnectorContract):
    resends_everything: ClassVar[bool] = True
    many: ClassVar[int] = 0

    @pytest.fixture
    def source(self, server: FeedServer) -> HttpFeed:
        return HttpFeed(server)


def test_a_changed_feed_is_one_batch_of_the_whole_window(
    tmp_path: Path, context: ConnectorContext
) -> None:
    now = context.now()
    path = tmp_path / "cal.ics"
    path.write_bytes(
        calendar([
            vevent("long-ago", now - timedelta(days=400)),
            vevent("last-month", now - timedelta(days=30)),
            vevent("next-month", now + timedelta(days=30)),
            vevent("in-two-years", now + timedelta(days=730)),
        ])
    )  # fmt: skip
    account = AccountConfig(name="cal", kind="ics", path=str(path), backfill_days=365)
    [batch] = list(IcsConnector(account, context).poll(None))
    assert batch.future_complete
    assert keys([batch]) == ["last-month", "next-month"]
    assert {m.source_id for m in batch.items} == {"cal:last-month", "cal:next-month"}


def test_etag_and_last_modified_make_conditional_requests(
    server: FeedServer, context: ConnectorContext
) -> None:
    feed = HttpFeed(server)
    feed.add(["a@x"])
    server.last_modified = "Mon, 15 Jan 2024 10:00:00 GMT"
    [first] = run(feed, context, None)
    assert keys([first]) == ["a@x"]
    [second] = run(feed, context, first.cursor)
    assert server.requests[-1]["If-None-Match"] == server.etag
    assert server.requests[-1]["If-Modified-Since"] == server.last_modified
    assert (second.items, second.cursor, second.future_complete) == ([], first.cursor, False)
    server.etag = None  # a server that only knows Last-Modified
    [third] = run(feed, context, first.cursor)
    assert (third.items, third.cursor) == ([], first.cursor)


def test_an_unchanged_body_without_validators_is_not_expanded_again(
    server: FeedServer, context: ConnectorContext
) -> None:
    feed = HttpFeed(server)
    feed.add(["a@x"])
    server.etag = None
    [first] = run(feed, context, None)
    [second] = run(feed, context, first.cursor)
    assert (second.items, second.cursor) == ([], first.cursor)


def test_an_unchanged_feed_is_expanded_again_after_a_week(
    server: FeedServer, tmp_path: Path
) -> None:
    feed = HttpFeed(server)
    feed.add(["a@x"])
    now = datetime.now(UTC)
    first = run(feed, ConnectorContext(state_dir=tmp_path, now=lambda: now), None)
    later = ConnectorContext(state_dir=tmp_path, now=lambda: now + timedelta(days=8))
    [again] = run(feed, later, final_cursor(first))
    assert "If-None-Match" not in server.requests[-1]
    assert keys([again]) == ["a@x"]
    assert again.future_complete


def test_redirects_are_followed_up_to_five(server: FeedServer, context: ConnectorContext) -> None:
    server.feed.add(["a@x"])
    account = AccountConfig(name="cal", kind="ics", url=f"{server.base}/hop/5")
    assert keys(list(IcsConnector(account, context).poll(None))) == ["a@x"]
    too_many = replace(account, url=f"{server.base}/hop/6")
    with pytest.raises(SourceProblem, match="redirected more than 5"):
        list(IcsConnector(too_many, context).poll(None))


def test_a_feed_over_max_bytes_is_refused(server: FeedServer, context: ConnectorContext) -> None:
    server.feed.add([f"m{i}@x" for i in range(20)])
    account = AccountConfig(name="cal", kind="ics", url=f"{server.base}/feed.ics", max_bytes=2000)
    for declared in (True, False):  # with a Content-Length, and streamed to the close
        server.content_length = declared
        with pytest.raises(SourceProblem, match="over 2000 bytes") as caught:
            list(IcsConnector(account, context).poll(None))
        assert "max_bytes" in caught.value.fix
    server.content_length = False
    assert (
        len(keys(list(IcsConnector(replace(account, max_bytes=10**6), context).poll(None)))) == 20
    )


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (500, TransientError, "HTTP 500"),
        (503, TransientError, "HTTP 503"),
        (429, TransientError, "HTTP 429"),
        (401, AuthError, "HTTP 401"),
        (403, AuthError, "HTTP 403"),
        (410, SourceProblem, "no feed"),
    ],
)
def test_http_errors_map_to_our_errors(
    server: FeedServer, context: ConnectorContext, status: int, error: type[Exception], words: str
) -> None:
    server.status = status
    server.headers_sent = {"Retry-After": "120"}
    feed = HttpFeed(server)
    with pytest.raises(error, match=words) as caught:
        run(feed, context, None)
    assert "127.0.0.1" in str(caught.value)
    assert "/feed.ics" not in str(caught.value)  # the path may hold the feed's secret
    if status == 503:
        assert caught.value.retry_after == 120.0  # type: ignore[attr-defined]
    if error is AuthError:
        assert "accounts.url" in caught.value.fix  # type: ignore[attr-defined]


def test_404_login_pages_and_dead_servers(server: FeedServer, context: ConnectorContext) -> None:
    for path, error, words in [
        ("/missing.ics", SourceProblem, "no feed"),
        ("/login", SourceProblem, "not iCalendar"),
    ]:
        account = AccountConfig(name="cal", kind="ics", url=server.base + path)
        with pytest.raises(error, match=words):
            list(IcsConnector(account, context).poll(None))
    dead = AccountConfig(name="cal", kind="ics", url="http://127.0.0.1:9/feed.ics")
    with pytest.raises(TransientError, match="cannot reach"):
        list(IcsConnector(dead, context).poll(None))


def test_file_urls_and_missing_files(tmp_path: Path, context: ConnectorContext) -> None:
    path = tmp_path / "cal.ics"
    path.write_bytes(calendar([vevent("a@x", context.now())]))
    account = AccountConfig(name="cal", kind="ics", url=path.as_uri())
    assert keys(list(IcsConnector(account, context).poll(None))) == ["a@x"]
    path.unlink()
    with pytest.raises(SourceProblem, match="does not exist"):
        list(IcsConnector(account, context).poll(None))


def test_an_unparseable_feed_keeps_the_cursor_and_planned_meetings(
    tmp_path: Path, context: ConnectorContext
) -> None:
    path = tmp_path / "cal.ics"
    path.write_bytes(b"BEGIN:VCALENDAR\r\nthis is not a content line\r\n")
    account = AccountConfig(name="cal", kind="ics", path=str(path))
    [batch] = list(IcsConnector(account, context).poll(None))
    assert (batch.cursor, batch.future_complete) == (None, False)
    assert [s.reason for s in skips([batch])] == ["bad-calendar"]


def test_https_is_verified_against_ca_file(tmp_path: Path, context: ConnectorContext) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    srv = FeedServer()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    srv.feed.add(["a@x"])
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{srv.server_address[1]}/feed.ics"
        untrusted = AccountConfig(name="cal", kind="ics", url=url)
        with pytest.raises(SourceProblem, match="cannot be verified") as caught:
            list(IcsConnector(untrusted, context).poll(None))
        assert "ca_file" in caught.value.fix
        trusted = replace(untrusted, ca_file=str(cert))
        assert keys(list(IcsConnector(trusted, context).poll(None))) == ["a@x"]
        # A subscription link (webcal://, as iCloud and Outlook give them) is read over https.
        webcal = replace(trusted, url=url.replace("https://", "webcal://"))
        assert keys(list(IcsConnector(webcal, context).poll(None))) == ["a@x"]
        # A redirect from https down to plain http is refused, not followed.
        srv.status = 301
        srv.headers_sent = {"Location": "http://127.0.0.1:9/feed.ics"}
        with pytest.raises(SourceProblem, match="unencrypted"):
            list(IcsConnector(trusted, context).poll(None))
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


def test_a_redirect_loop_is_refused(server: FeedServer, context: ConnectorContext) -> None:
    account = AccountConfig(name="cal", kind="ics", url=f"{server.base}/loop/a")
    with pytest.raises(SourceProblem, match="in a loop") as caught:
        list(IcsConnector(account, context).poll(None))
    assert "final address" in caught.value.fix
    assert [r["path"] for r in server.requests] == ["/loop/a", "/loop/b", "/loop/a"]


def test_a_stalled_server_times_out_as_a_transient_error(
    server: FeedServer, context: ConnectorContext
) -> None:
    server.feed.add(["a@x"])
    server.stall = 2.0
    account = AccountConfig(name="cal", kind="ics", url=f"{server.base}/feed.ics", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        list(IcsConnector(account, context).poll(None))
    assert time.monotonic() - started < 2.0
    assert "/feed.ics" not in str(caught.value)
    server.stall = 0.0
    assert keys(list(IcsConnector(account, context).poll(None))) == ["a@x"]
