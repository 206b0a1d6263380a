"""A local emulator of the Gmail and Google Calendar APIs and Google's OAuth endpoints.

Routes, methods and the scopes each method accepts are read from the discovery documents that
google-api-python-client ships (the same ones the client builds itself from), so the real client
runs against it unmodified. It answers in Google's error format, serves batch requests
(`multipart/mixed`), counts calls and Gmail quota units per method (published table), and
fails on demand: `fail("gmail.users.messages.get", 429, "rateLimitExceeded")`.

    with GoogleEmulator() as emu:
        me = emu.user("me@example.net")
        me.mailbox.deliver(raw_message_bytes)
        info = emu.oauth.authorized_user_info("me@example.net")   # credentials_file contents
        ... AccountConfig(kind="gmail", endpoint=emu.base, credentials_file=...)
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import googleapiclient
from tests.emulators import google_batch
from tests.emulators.google_calendar import CALENDAR_HANDLERS, Calendar
from tests.emulators.google_errors import ApiError
from tests.emulators.google_gmail import GMAIL_HANDLERS, Mailbox
from tests.emulators.google_mask import apply_mask
from tests.emulators.google_oauth import OAuth

DISCOVERY = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
# Published per-method quota units (developers.google.com/gmail/api/reference/quota); the
# Calendar API counts requests, one each.
GMAIL_UNITS = {
    "gmail.users.getProfile": 1, "gmail.users.messages.list": 5, "gmail.users.messages.get": 5,
    "gmail.users.history.list": 2, "gmail.users.settings.sendAs.list": 1,
    "gmail.users.labels.list": 1, "gmail.users.threads.get": 10, "gmail.users.threads.list": 10,
}  # fmt: skip
Params = dict[str, list[str]]


@dataclass
class User:
    email: str
    mailbox: Mailbox
    calendars: dict[str, Calendar]

    @property
    def calendar(self) -> Calendar:
        """The primary calendar (its id is the user's address)."""
        return self.calendars[self.email]

    def add_calendar(
        self, calendar_id: str, summary: str, time_zone: str = "UTC", owner: str | None = None
    ) -> Calendar:
        """A calendar this user can read; `owner` when someone else shares it."""
        calendar = Calendar(calendar_id, summary, time_zone, owner=owner or self.email)
        self.calendars[calendar_id] = calendar
        return calendar


@dataclass
class Call:
    """One API call as a handler sees it."""

    emulator: GoogleEmulator
    user: User
    path: dict[str, str]
    params: Params
    scopes: frozenset[str]

    def one(self, name: str, default: str | None = None) -> str | None:
        values = self.params.get(name)
        return values[-1] if values else default

    def number(self, name: str, default: int, most: int) -> int:
        text = self.one(name)
        if text is None:
            return default
        if not text.isdigit() or int(text) < 1:
            raise ApiError(400, "invalid", f"Invalid value for {name}: {text}")
        return min(int(text), most)


@dataclass
class _Failure:
    status: int
    reason: str
    message: str
    retry_after: str | None


@dataclass(frozen=True)
class _Route:
    method_id: str
    http_method: str
    pattern: re.Pattern[str]
    scopes: frozenset[str]


def _routes() -> list[_Route]:
    routes = []
    for name in ("gmail.v1.json", "calendar.v3.json"):
        doc = json.loads((DISCOVERY / name).read_text())
        prefix = doc["servicePath"]
        stack = [doc]
        while stack:
            node = stack.pop()
            stack.extend(node.get("resources", {}).values())
            for method in node.get("methods", {}).values():
                path = re.escape(prefix + method["path"]).replace(r"\{", "{").replace(r"\}", "}")
                path = re.sub(r"\{\+(\w+)\}", r"(?P<\1>.+)", path)
                path = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
                routes.append(
                    _Route(
                        method["id"],
                        method["httpMethod"],
                        re.compile(path),
                        frozenset(method.get("scopes", ())),
                    )
                )
    return routes


_ROUTES = _routes()
HANDLERS: dict[str, Callable[[Call], dict[str, Any]]] = {**GMAIL_HANDLERS, **CALENDAR_HANDLERS}


class GoogleEmulator:
    """The emulator; see the module docstring. Thread-safe: one lock around every call."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        """`tls`: serve https with this server context (a self-signed certificate, say)."""
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.calls: Counter[str] = Counter()
        self.units: Counter[str] = Counter()
        self.batch_sizes: list[int] = []
        self.bytes_out = 0  # response bodies of outer HTTP responses
        self.log: list[tuple[str, Params]] = []
        # Quota units a user may spend per second (sliding one-second window); None: unlimited.
        self.user_rate: float | None = None
        self.throttled = 0  # calls refused for going over user_rate
        self.garbled_batches = 0  # batch requests to answer with an HTML page instead
        self._spent: dict[str, deque[tuple[float, int]]] = {}
        self._failures: dict[str, deque[_Failure]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.emulator = self  # type: ignore[attr-defined]
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.base = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self.oauth = OAuth(self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.daemon = True

    def __enter__(self) -> GoogleEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def user(self, email: str) -> User:
        """The user with this address, created (with a mailbox and a primary calendar) if new."""
        with self.lock:
            if email not in self.users:
                user = User(email, Mailbox(email), {})
                user.add_calendar(email, email)
                self.users[email] = user
            return self.users[email]

    def fail(
        self,
        method_id: str,
        status: int,
        reason: str = "backendError",
        *,
        count: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next `count` calls of `method_id` ("token" for the token endpoint,
        "batch" for a whole batch request) with this error."""
        failure = _Failure(
            status,
            reason,
            message or f"{reason} (injected)",
            None if retry_after is None else f"{retry_after:g}",
        )
        with self.lock:
            self._failures.setdefault(method_id, deque()).extend([failure] * count)

    def reset_counts(self) -> None:
        with self.lock:
            self.calls.clear()
            self.units.clear()
            self.batch_sizes.clear()
            self.log.clear()
            self.bytes_out = 0

    @property
    def total_units(self) -> int:
        return sum(self.units.values())

    # --- dispatch -----------------------------------------------------------------------------

    def handle(
        self, verb: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request (outer or inside a batch) -> (status, headers, body)."""
        parts = urlsplit(target)
        params = parse_qs(parts.query, keep_blank_values=True)
        with self.lock:
            try:
                if parts.path == "/token":
                    self._injected("token")
                    return self.oauth.token(body)
                if parts.path == "/o/oauth2/auth":
                    return self.oauth.authorize(params)
                if parts.path.startswith("/batch"):
                    self._injected("batch")
                    if self.garbled_batches > 0:  # a proxy's page where multipart was due
                        self.garbled_batches -= 1
                        return 200, {"Content-Type": "text/html"}, b"<html>Bad gateway</html>"
                    return google_batch.answer(self, headers, body)
                return self._api(verb, parts.path, params, headers)
            except ApiError as exc:
                return _json(exc.code, exc.body(), exc.headers)

    def _api(
        self, verb: str, path: str, params: Params, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        for route in _ROUTES:
            match = route.pattern.fullmatch(path.lstrip("/"))
            if match and route.http_method == verb:
                break
        else:
            raise ApiError(404, "notFound", f"Not Found: {verb} {path}")
        granted = self.oauth.access(headers.get("authorization", ""))
        if granted is None:
            raise ApiError(
                401, "authError", "Request had invalid authentication credentials.",
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )  # fmt: skip
        email, scopes = granted
        user = self.users[email]
        if not scopes & route.scopes:
            raise ApiError(403, "insufficientPermissions", "Request had insufficient scopes.")
        path_params = {k: unquote(v) for k, v in match.groupdict().items()}
        if path_params.get("userId", "me") not in ("me", email):
            raise ApiError(403, "forbidden", f"Delegation denied for {email}")
        self.calls[route.method_id] += 1
        self.log.append((route.method_id, params))
        units = GMAIL_UNITS.get(route.method_id, 1 if route.method_id.startswith("gmail") else 0)
        self.units[route.method_id] += units
        self._injected(route.method_id)
        self._rate(email, units)
        handler = HANDLERS.get(route.method_id)
        if handler is None:
            raise ApiError(501, "notImplemented", f"{route.method_id} is not emulated")
        answer = handler(Call(self, user, path_params, params, scopes))
        fields = params.get("fields")
        return _json(200, apply_mask(answer, fields[-1]) if fields else answer)

    def _injected(self, method_id: str) -> None:
        queue = self._failures.get(method_id)
        if queue:
            failure = queue.popleft()
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            domain = "usageLimits" if "RateLimit" in failure.reason else "global"
            raise ApiError(
                failure.status, failure.reason, failure.message, domain=domain, headers=headers
            )

    def _rate(self, email: str, units: int) -> None:
        if self.user_rate is None or not units:
            return
        now = time.monotonic()
        window = self._spent.setdefault(email, deque())
        while window and window[0][0] <= now - 1.0:
            window.popleft()
        if sum(u for _, u in window) + units > self.user_rate:
            self.throttled += 1
            raise ApiError(
                429, "rateLimitExceeded", "Too many concurrent requests for user.",
                headers={"Retry-After": "1"},
            )  # fmt: skip
        window.append((now, units))


def _json(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode()
    return status, {"Content-Type": "application/json; charset=UTF-8", **(headers or {})}, data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Google's front ends offer
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, verb: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        emulator: GoogleEmulator = self.server.emulator  # type: ignore[attr-defined]
        status, out_headers, data = emulator.handle(verb, self.path, headers, body)
        emulator.bytes_out += len(data)
        self.send_response(status)
        for name, value in out_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
