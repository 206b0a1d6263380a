"""CalDAV servers unlike Radicale, and failures: a small reverse proxy in front of the real
Radicale hides sync-collection (and ctags), answers errors, stalls or serves a login page; a
second Radicale speaks TLS with a self-signed certificate, a third refuses big answers."""

from __future__ import annotations

import http.client
import http.server
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.servers.radicale import (
    NOW,
    DavUser,
    Radicale,
    dav_user,
    ics,
    instances,
    poll,
    radicale,
    radicale_server,
    uids,
    vevent,
)

from keepwarm.connectors.base import SourceProblem
from keepwarm.connectors.caldav_errors import LOGIN_FIX
from keepwarm.errors import AuthError, TransientError

__all__ = ["dav_user", "radicale"]  # fixtures: imported so that pytest finds them


class Proxy(http.server.ThreadingHTTPServer):
    """Forwards every request to Radicale, changing what a test asks it to change."""

    daemon_threads = True

    def __init__(self, upstream: Radicale) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream
        self.refuse_sync = False  # answer sync-collection like a server without it (Zimbra)
        self.hide: list[str] = []  # property elements removed from PROPFIND answers
        self.status: int | None = None  # answer this to everything
        self.headers_sent: dict[str, str] = {}
        self.stall = 0.0
        self.login_page = False
        self.seen: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that gave up on a stalled answer closes the connection under us."""


class _Forward(http.server.BaseHTTPRequestHandler):
    server: Proxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _any(self) -> None:
        proxy = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        proxy.seen.append((self.command, self.path))
        if proxy.stall:
            time.sleep(proxy.stall)
        if proxy.login_page:
            return self._answer(200, {"Content-Type": "text/html"}, b"<html>Sign in</html>")
        if proxy.status:
            return self._answer(proxy.status, proxy.headers_sent, b"server trouble")
        if proxy.refuse_sync and self.command == "REPORT" and b"sync-collection" in body:
            error = b'<?xml version="1.0"?><D:error xmlns:D="DAV:"><D:supported-report/></D:error>'
            return self._answer(403, {"Content-Type": "text/xml"}, error)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "accept-encoding"}
        upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream.port, timeout=30)
        upstream.request(self.command, self.path, body, headers)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        if self.command == "PROPFIND":
            for name in proxy.hide:
                data = re.sub(rb"<%s>[^<]*</%s>" % (name.encode(), name.encode()), b"", data)
        kept = {k: v for k, v in answer.getheaders() if k.lower() not in _HOP}
        return self._answer(answer.status, kept, data)

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_DELETE = do_OPTIONS = do_PROPFIND = do_REPORT = do_MKCALENDAR = _any
    do_PROPPATCH = _any


_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding"}


@pytest.fixture
def proxy(radicale: Radicale) -> Iterator[Proxy]:
    server = Proxy(radicale)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def through(user: DavUser, proxy: Proxy, **changes: Any) -> Any:
    return user.account_with(url=proxy.url, **changes)


def requests_of(proxy: Proxy, mark: int) -> list[tuple[str, str]]:
    return sorted(proxy.seen[mark:])


# --- servers without sync-collection ---------------------------------------------------------


def test_without_sync_collection_ctag_and_etags_find_the_changes(
    dav_user: DavUser, proxy: Proxy
) -> None:
    proxy.refuse_sync = True
    proxy.hide = ["sync-token"]
    work = dav_user.calendar("work")
    keep = vevent("keep@x", NOW - timedelta(days=5))
    work.save_event(ics(keep))
    work.save_event(ics(vevent("drop@x", NOW + timedelta(days=5))))
    account = through(dav_user, proxy)
    first = poll(account, None)
    assert uids(first) == ["drop@x", "keep@x"]
    state = json.loads(first.cursor or "")["calendars"][0]
    assert "token" not in state
    assert sorted(state["etags"]) == [f"/{dav_user.name}/work/drop%40x.ics",
                                      f"/{dav_user.name}/work/keep%40x.ics"]  # fmt: skip

    mark = len(proxy.seen)
    unchanged = poll(account, first.cursor, NOW + timedelta(minutes=15))
    assert (unchanged.items, unchanged.cursor) == ([], first.cursor)
    assert requests_of(proxy, mark) == [("PROPFIND", f"/{dav_user.name}/work/")]  # the ctag

    work.save_event(ics(keep.replace("SUMMARY:Catch-up", "SUMMARY:Catch-up (moved room)")))
    work.event_by_uid("drop@x").delete()
    work.save_event(ics(vevent("new@x", NOW - timedelta(days=4))))
    mark = len(proxy.seen)
    changed = poll(account, first.cursor, NOW + timedelta(hours=1))
    assert (uids(changed), changed.future_complete) == (["keep@x", "new@x"], True)
    methods = [method for method, _ in proxy.seen[mark:]]
    assert methods == ["PROPFIND", "PROPFIND", "REPORT", "REPORT"]  # ctag, ETags, get, future


def test_without_ctag_an_unchanged_poll_lists_the_etags(dav_user: DavUser, proxy: Proxy) -> None:
    proxy.refuse_sync = True
    proxy.hide = ["sync-token", "CS:getctag"]
    dav_user.calendar("work").save_event(ics(vevent("a@x", NOW - timedelta(days=5))))
    account = through(dav_user, proxy)
    first = poll(account, None)
    mark = len(proxy.seen)
    again = poll(account, first.cursor, NOW + timedelta(minutes=15))
    assert (again.items, again.cursor) == ([], first.cursor)
    assert requests_of(proxy, mark) == [("PROPFIND", f"/{dav_user.name}/work/")]


def test_a_server_that_stops_offering_sync_is_read_whole_once(
    dav_user: DavUser, proxy: Proxy
) -> None:
    work = dav_user.calendar("work")
    work.save_event(ics(vevent("a@x", NOW - timedelta(days=5))))
    account = through(dav_user, proxy)
    first = poll(account, None)
    assert "token" in json.loads(first.cursor or "")["calendars"][0]
    proxy.refuse_sync = True  # an upgrade, a proxy, a different backend: no more tokens
    work.save_event(ics(vevent("b@x", NOW - timedelta(days=4))))
    second = poll(account, first.cursor, NOW + timedelta(hours=1))
    assert uids(second) == ["a@x", "b@x"]
    assert "etags" in json.loads(second.cursor or "")["calendars"][0]


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "error", "words"),
    [
        (500, {}, TransientError, "HTTP 500"),
        (502, {}, TransientError, "HTTP 502"),
        (503, {"Retry-After": "120"}, TransientError, "slow down"),
        (429, {"Retry-After": "30"}, TransientError, "slow down"),
        (404, {}, SourceProblem, "404"),
    ],
)
def test_server_errors_map_to_ours(
    dav_user: DavUser, proxy: Proxy, status: int, headers: dict[str, str],
    error: type[Exception], words: str,
) -> None:  # fmt: skip
    proxy.status, proxy.headers_sent = status, headers
    with pytest.raises(error, match=words) as caught:
        poll(through(dav_user, proxy), None)
    if headers:
        assert caught.value.retry_after == float(headers["Retry-After"])  # type: ignore[attr-defined]
    if error is SourceProblem:
        assert "accounts.url" in caught.value.fix  # type: ignore[attr-defined]


def test_errors_in_the_middle_of_a_poll_keep_the_cursor_for_next_time(
    dav_user: DavUser, proxy: Proxy
) -> None:
    dav_user.calendar("work").save_event(ics(vevent("a@x", NOW - timedelta(days=5))))
    account = through(dav_user, proxy)
    first = poll(account, None)
    proxy.status = 500
    with pytest.raises(TransientError):
        poll(account, first.cursor, NOW + timedelta(hours=1))
    proxy.status = None
    assert poll(account, first.cursor, NOW + timedelta(hours=2)).cursor == first.cursor


def test_a_wrong_password_is_an_auth_error_that_says_what_to_do(dav_user: DavUser) -> None:
    secret = Path(dav_user.account.password_file or "")
    secret.write_text("not-the-password\n")
    with pytest.raises(AuthError, match=f"refused the login of '{dav_user.name}'") as caught:
        poll(dav_user.account, None)
    assert caught.value.fix == LOGIN_FIX
    assert "not-the-password" not in f"{caught.value} {caught.value.fix}"
    secret.unlink()
    with pytest.raises(AuthError, match="password_file") as missing:
        poll(dav_user.account, None)
    assert str(secret) in missing.value.fix


def test_a_remembered_login_scheme_that_stops_working_is_negotiated_again(
    dav_user: DavUser,
) -> None:
    dav_user.calendar("work").save_event(ics(vevent("a@x", NOW - timedelta(days=5))))
    first = poll(dav_user.account, None)
    cursor = json.loads(first.cursor or "")
    assert cursor["auth"] == "basic"
    cursor["auth"] = "digest"  # Radicale speaks only Basic: the first answer is a 401
    again = poll(dav_user.account, json.dumps(cursor), NOW + timedelta(minutes=15))
    assert json.loads(again.cursor or "")["auth"] == "basic"


def test_unreachable_stalled_and_login_page_servers(dav_user: DavUser, proxy: Proxy) -> None:
    with pytest.raises(TransientError, match=r"cannot reach http://127\.0\.0\.1:9/"):
        poll(dav_user.account_with(url="http://127.0.0.1:9/"), None)
    proxy.stall = 3
    started = time.monotonic()
    with pytest.raises(TransientError, match="cannot reach"):
        poll(through(dav_user, proxy, timeout=1), None)
    assert time.monotonic() - started < 10
    proxy.stall = 0
    proxy.login_page = True
    with pytest.raises(SourceProblem, match="CalDAV") as caught:
        poll(through(dav_user, proxy), None)
    assert "accounts.url" in caught.value.fix


# --- TLS and big calendars ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Radicale, Path]]:
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    for server in radicale_server({"tls": "tls-password"}, root / "dav", tls=(cert, key)):
        yield server, cert


def test_tls_is_verified_against_ca_file(
    tls_radicale: tuple[Radicale, Path], tmp_path: Path
) -> None:
    server, cert = tls_radicale
    user = DavUser(server, tmp_path, ca_file=str(cert))
    user.calendar("work").save_event(ics(vevent("a@x", NOW - timedelta(days=5))))
    untrusted = user.account_with(ca_file=None)
    with pytest.raises(SourceProblem, match="TLS") as caught:
        poll(untrusted, None)
    assert "ca_file" in caught.value.fix
    assert uids(poll(user.account, None)) == ["a@x"]


@pytest.fixture(scope="module")
def strict_radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    # Radicale refuses (400) an answer with more events than this; its default is 10,000.
    limit = "[reporting]\nmax_expand_occurrence = 4\n"
    yield from radicale_server({"admin": "x"}, tmp_path_factory.mktemp("strict"), extra=limit)


def test_a_refused_big_answer_is_asked_for_in_smaller_windows(
    strict_radicale: Radicale, tmp_path: Path
) -> None:
    user = DavUser(strict_radicale, tmp_path)
    work = user.calendar("work")
    for month in range(10):
        work.save_event(ics(vevent(f"m{month}@x", NOW - timedelta(days=30 * month + 1))))
    mark = strict_radicale.mark()
    batch = poll(user.account, None)
    assert len(instances(batch)) == 10
    reports = [r for r in strict_radicale.requests_since(mark) if r[0] == "REPORT"]
    assert 4 < len(reports) < 40
