"""Local emulators of the Microsoft identity platform and Microsoft Graph (mail and calendar
delta), close enough to the published API that msal and the Outlook connectors run unmodified.

Both serve HTTPS with a self-signed certificate made by `openssl` once per test session, so
`ca_file` is exercised on every request. They run in threads of the test process on free
127.0.0.1 ports (nothing outlives the process) and keep a log of every request.

Identity (`Identity`), per the v2.0 endpoints msal uses:
- `GET /{tenant}/v2.0/.well-known/openid-configuration`
- `POST /{tenant}/oauth2/v2.0/devicecode` -> user_code, device_code, interval 1
- `POST /{tenant}/oauth2/v2.0/token`: device_code (authorization_pending for `pending_polls`
  polls, then tokens), refresh_token (or the error `refresh_error` names: "revoked",
  "expired", "consent"; a scope the user never consented to for that client is "consent"
  too), client_credentials (client secret checked). Token answers carry `scope`,
  `client_info` and an unsigned `id_token`, as the real platform's do.
- `imap_user(token)`: whom Outlook's IMAP would let in with an access token (XOAUTH2).

Graph (`Graph`), for `/v1.0/me/...` (delegated tokens) and `/v1.0/users/{address}/...` (app-only):
- `mailFolders/{id}/messages/delta`: `$select`, `$filter=receivedDateTime ge|gt X` (then at most
  FILTER_CAP messages, as documented), `Prefer: odata.maxpagesize` (default 10, at most
  `max_page`), `Prefer: IdType="ImmutableId"`, nextLink/deltaLink, `@removed` entries.
- `mailFolders/{id}/messages?$count=true`, `mailFolders` and `childFolders` by displayName,
  `messages/{id}?$select=internetMessageHeaders`.
- `calendarView/delta` (no `$select`, as documented), `calendarView` with `$select`/`$top`,
  `calendars`, `calendars/{id}/calendarView[/delta]`; `Prefer: outlook.timezone`.
- `expire_delta()` makes every issued delta token fail (410 or a 400 error code of your choice);
  `throttle()` answers the next requests with 429/503 and Retry-After.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import secrets
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from zoneinfo import ZoneInfo

FILTER_CAP = 5000
DEFAULT_PAGE = 10
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
OUTLOOK_IMAP = "https://outlook.office.com/IMAP.AccessAsUser.All"
MESSAGE_FIELDS = frozenset(
    {
        "id",
        "from",
        "sender",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "receivedDateTime",
        "sentDateTime",
        "internetMessageId",
        "conversationId",
        "subject",
        "body",
        "bodyPreview",
        "isRead",
        "isDraft",
        "parentFolderId",
        "internetMessageHeaders",
        "hasAttachments",
        "importance",
        "categories",
    }
)
EVENT_FIELDS = frozenset(
    {
        "id",
        "iCalUId",
        "subject",
        "body",
        "start",
        "end",
        "isAllDay",
        "isCancelled",
        "isOrganizer",
        "responseStatus",
        "attendees",
        "organizer",
        "type",
        "seriesMasterId",
        "originalStart",
        "originalStartTimeZone",
        "showAs",
        "location",
    }
)
WELL_KNOWN = ("inbox", "sentitems", "archive", "deleteditems", "drafts", "junkemail")


class OpensslMissing(RuntimeError):
    """openssl is needed to make the emulators' certificate."""


@dataclass(frozen=True)
class Tls:
    """A self-signed certificate for 127.0.0.1 and its key."""

    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: Path) -> Tls:
        if shutil.which("openssl") is None:
            raise OpensslMissing(
                "openssl is needed for the Microsoft emulators' certificate: install the Debian"
                " package `openssl` (scripts/install-test-deps.sh does)"
            )
        cert, key = directory / "cert.pem", directory / "key.pem"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )
        return cls(cert, key)

    def context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@dataclass(frozen=True)
class Request:
    """One request as the emulator saw it (form secrets left out)."""

    method: str
    path: str
    query: dict[str, str]
    prefer: str
    at: float
    form: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: _App, tls: Tls) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.app = app
        self.socket = tls.context().wrap_socket(self.socket, server_side=True)


class _App:
    """What a server answers; subclasses route requests."""

    url = ""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self._server: _Server | None = None

    def start(self, tls: Tls) -> None:
        self._server = _Server(self, tls)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def handle(self, handler: _Handler) -> tuple[int, dict[str, str], Any]:
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is kept in the app."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        try:
            status, headers, payload = self.server.app.handle(self)
        except Exception as exc:  # an emulator bug must show up as a failing request
            status, headers, payload = (
                500,
                {},
                {"error": {"code": "EmulatorBug", "message": repr(exc)}},
            )
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    @property
    def split(self) -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        return unquote(parts.path), query


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], Any]:
    return status, {}, {"error": {"code": code, "message": message}}


# --- identity platform ------------------------------------------------------------------------


@dataclass
class Grant:
    """What a token stands for: a user (delegated, with scopes) or an app (with roles)."""

    user: str | None
    permissions: frozenset[str]
    expires: float
    client_id: str
    scope: str = ""


class Identity(_App):
    """The identity platform endpoints msal needs; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests = []
            self.user = "me@example.net"
            self.user_name = "Me Example"
            self.oid = str(uuid.uuid4())
            self.tenant_id = str(uuid.uuid4())
            self.client_secrets: dict[str, str] = {}  # confidential clients
            self.app_roles = frozenset({"Mail.ReadBasic.All", "Calendars.Read"})
            self.pending_polls = 1
            self.token_lifetime = 3600
            self.refresh_error: str | None = None
            self.device_error: str | None = None  # e.g. "authorization_declined"
            self.device_codes: dict[str, int] = {}
            # The scope a device sign-in asked for: msal sends it with the devicecode request
            # only, and the token answer must echo it (else msal's cache never matches).
            self.device_scopes: dict[str, str] = {}
            self.access: dict[str, Grant] = {}
            self.refresh: dict[str, Grant] = {}
            # (client_id, user) -> the scopes the user consented to in a sign-in
            self.consented: dict[tuple[str, str], frozenset[str]] = {}

    def imap_user(self, token: str) -> str | None:
        """The user whose mailbox Outlook's IMAP opens for this access token: a current
        delegated token for https://outlook.office.com/IMAP.AccessAsUser.All; else None."""
        with self.lock:
            grant = self.access.get(token)
        if grant is None or grant.user is None or grant.expires < time.time():
            return None
        return grant.user if OUTLOOK_IMAP in grant.scope.split() else None

    def token_requests(self, grant_type: str) -> list[Request]:
        return [r for r in self.requests if r.form.get("grant_type") == grant_type]

    def handle(self, handler: _Handler) -> tuple[int, dict[str, str], Any]:
        path, query = handler.split
        form = {k: v[-1] for k, v in parse_qs(handler.body.decode()).items()}
        shown = {k: v for k, v in form.items() if k not in ("client_secret", "refresh_token")}
        with self.lock:
            self.requests.append(Request(handler.command, path, query, "", time.time(), shown))
        parts = path.strip("/").split("/")
        if len(parts) < 2:
            return _error(404, "not_found", path)
        tenant, rest = parts[0], "/".join(parts[1:])
        issuer = f"{self.url}/{tenant}/v2.0"
        if rest == "v2.0/.well-known/openid-configuration":
            base = f"{self.url}/{tenant}/oauth2/v2.0"
            return (
                200,
                {},
                {
                    "issuer": issuer,
                    "authorization_endpoint": f"{base}/authorize",
                    "token_endpoint": f"{base}/token",
                    "device_authorization_endpoint": f"{base}/devicecode",
                },
            )
        if rest == "oauth2/v2.0/devicecode" and handler.command == "POST":
            code = secrets.token_urlsafe(16)
            with self.lock:
                self.device_codes[code] = 0
                asked = form.get("scope", "").split()
                self.device_scopes[code] = " ".join(s for s in asked if s not in RESERVED_SCOPES)
            user_code = secrets.token_hex(4).upper()
            return (
                200,
                {},
                {
                    "device_code": code,
                    "user_code": user_code,
                    "verification_uri": f"{self.url}/devicelogin",
                    "expires_in": 900,
                    "interval": 1,
                    "message": f"To sign in, use a web browser to open the page {self.url}/devicelogin"  # noqa: E501  (the real error text)
                    f" and enter the code {user_code} to authenticate.",
                },
            )
        if rest == "oauth2/v2.0/token" and handler.command == "POST":
            return self._token(form, issuer)
        return _error(404, "not_found", path)

    def _token(self, form: dict[str, str], issuer: str) -> tuple[int, dict[str, str], Any]:
        grant_type = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        scope = " ".join(s for s in form.get("scope", "").split() if s not in RESERVED_SCOPES)
        with self.lock:
            if grant_type == "urn:ietf:params:oauth:grant-type:device_code":
                polls = self.device_codes.get(form.get("device_code", ""))
                if polls is None:
                    return (
                        400,
                        {},
                        {
                            "error": "expired_token",
                            "error_description": "AADSTS70020: The provided value for the input parameter 'device_code' is not valid.",  # noqa: E501  (the real error text)
                        },
                    )
                self.device_codes[form["device_code"]] = polls + 1
                if polls < self.pending_polls:
                    return (
                        400,
                        {},
                        {
                            "error": "authorization_pending",
                            "error_description": "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending.",  # noqa: E501  (the real error text)
                        },
                    )
                del self.device_codes[form["device_code"]]
                scope = scope or self.device_scopes.pop(form["device_code"], "")
                if self.device_error is not None:
                    return (
                        400,
                        {},
                        {
                            "error": self.device_error,
                            "error_description": "AADSTS70000: The user declined.",
                        },
                    )
                key = (client_id, self.user)
                self.consented[key] = self.consented.get(key, frozenset()) | set(scope.split())
                return 200, {}, self._user_tokens(client_id, scope, issuer)
            if grant_type == "refresh_token":
                old = self.refresh.get(form.get("refresh_token", ""))
                failure = _REFRESH_ERRORS.get(self.refresh_error or "")
                if old is None or failure is not None:
                    said = failure or _REFRESH_ERRORS["revoked"]
                    return 400, {}, {"error": "invalid_grant", **said}
                consented = self.consented.get((old.client_id, old.user or ""), frozenset())
                if not set(scope.split()) <= consented:  # another resource, never consented to
                    return 400, {}, {"error": "invalid_grant", **_REFRESH_ERRORS["consent"]}
                return 200, {}, self._user_tokens(client_id, scope or old.scope, issuer)
            if grant_type == "client_credentials":
                if self.client_secrets.get(client_id) != form.get("client_secret"):
                    return (
                        401,
                        {},
                        {
                            "error": "invalid_client",
                            "error_codes": [7000215],
                            "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.",  # noqa: E501  (the real error text)
                        },
                    )
                if not scope.endswith("/.default"):
                    return (
                        400,
                        {},
                        {
                            "error": "invalid_scope",
                            "error_description": "AADSTS1002012: The provided value for scope is not valid.",  # noqa: E501  (the real error text)
                        },
                    )
                token = secrets.token_urlsafe(24)
                self.access[token] = Grant(
                    None, self.app_roles, time.time() + self.token_lifetime, client_id
                )
                return (
                    200,
                    {},
                    {
                        "token_type": "Bearer",
                        "expires_in": self.token_lifetime,
                        "ext_expires_in": self.token_lifetime,
                        "access_token": token,
                    },
                )
        return 400, {}, {"error": "unsupported_grant_type", "error_description": grant_type}

    def _user_tokens(self, client_id: str, scope: str, issuer: str) -> dict[str, Any]:
        permissions = frozenset(s.rsplit("/", 1)[-1] for s in scope.split())
        grant = Grant(self.user, permissions, time.time() + self.token_lifetime, client_id, scope)
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
        self.access[access] = grant
        self.refresh[refresh] = grant
        now = int(time.time())
        claims = {
            "aud": client_id,
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": self.user_name,
            "oid": self.oid,
            "preferred_username": self.user,
            "sub": self.oid,
            "tid": self.tenant_id,
            "ver": "2.0",
        }
        id_token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
        return {
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": access,
            "refresh_token": refresh,
            "id_token": id_token,
            "client_info": _b64({"uid": self.oid, "utid": self.tenant_id}),
        }


_REFRESH_ERRORS: dict[str, dict[str, Any]] = {
    "revoked": {
        "error_codes": [50173],
        "suberror": "bad_token",
        "error_description": "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed.\r\nTrace ID: 0",  # noqa: E501  (the real error text)
    },
    "expired": {
        "error_codes": [700082],
        "error_description": "AADSTS700082: The refresh token has expired due to inactivity. The token was issued on 2024-01-01T00:00:00Z.\r\nTrace ID: 0",  # noqa: E501  (the real error text)
    },
    "consent": {
        "error_codes": [65001],
        "suberror": "consent_required",
        "error_description": "AADSTS65001: The user or administrator has not consented to use the application with ID 'x'. Send an interactive authorization request for this user and resource.\r\nTrace ID: 0",  # noqa: E501  (the real error text)
    },
}


# --- Graph ------------------------------------------------------------------------------------


@dataclass
class Item:
    """A message or an event: its immutable id, its regular id (changes on a move), where it is."""

    id: str
    regular: str
    container: str
    props: dict[str, Any]
    headers: list[dict[str, str]] = field(default_factory=list)
    odata_type: str = "#microsoft.graph.message"
    span: tuple[datetime, datetime] | None = None  # an event's start and end, UTC


@dataclass
class Container:
    """A mail folder or a calendar."""

    id: str
    name: str
    parent: str | None = None
    well_known: str | None = None


@dataclass
class Mailbox:
    address: str
    folders: dict[str, Container] = field(default_factory=dict)
    calendars: dict[str, Container] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)
    gone: dict[str, str] = field(default_factory=dict)  # removed item id -> its container
    changes: list[tuple[int, str, str]] = field(default_factory=list)  # (seq, item id, container)


@dataclass
class _Round:
    """One delta round's entries, fixed when the round starts (changes meanwhile come next)."""

    mailbox: str
    query: dict[str, Any]
    entries: list[tuple[str, str | None]]  # (item id, removal reason or None)
    end_seq: int
    generation: tuple[int, int]
    digest: str | None = None


@dataclass
class _DeltaState:
    mailbox: str
    query: dict[str, Any]
    seq: int
    generation: tuple[int, int]


_ZONES = {  # the Windows names the tests use, mapped independently of the code under test
    "W. Europe Standard Time": "Europe/Berlin",
    "Pacific Standard Time": "America/Los_Angeles",
    "India Standard Time": "Asia/Kolkata",
}


def _graph_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local(moment: datetime, zone: str) -> dict[str, str]:
    tz = ZoneInfo(_ZONES.get(zone, zone))
    return {
        "dateTime": moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S.0000000"),
        "timeZone": zone,
    }


def _parse_local(value: dict[str, str]) -> datetime:
    naive = datetime.fromisoformat(value["dateTime"][:19])
    zone = value.get("timeZone", "UTC")
    return naive.replace(tzinfo=ZoneInfo(_ZONES.get(zone, zone))).astimezone(UTC)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def recipient(address: str, name: str | None = None) -> dict[str, Any]:
    return {"emailAddress": {"name": name or address, "address": address}}


class Graph(_App):
    """Microsoft Graph mail and calendar for the Outlook connectors; see the module docstring."""

    def __init__(self, identity: Identity) -> None:
        super().__init__()
        self.identity = identity
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests = []
            self.mailboxes: dict[str, Mailbox] = {}
            self.seq = 0
            self.generation = 0
            self.generations: dict[str, int] = {}
            self.expiry = (410, "SyncStateNotFound")
            self.rounds: dict[str, tuple[_Round, int]] = {}
            self.deltas: dict[str, _DeltaState] = {}
            self.throttles: list[tuple[int, str | None, str]] = []
            self.max_page = 1000
            self.delay = 0.0
            self.in_flight = 0
            self.max_in_flight = 0
            self.bodies_sent = 0
            self.honour_timezone = True
            self.random_tokens = False
            self.headers_need: str | None = None  # a permission internetMessageHeaders needs

    # -- test helpers ----------------------------------------------------------------------

    def mailbox(self, address: str) -> Mailbox:
        with self.lock:
            key = address.lower()
            if key not in self.mailboxes:
                box = Mailbox(address)
                for name in WELL_KNOWN:
                    folder_id = f"AAMkF{secrets.token_hex(20)}{name}"
                    box.folders[folder_id] = Container(folder_id, name.title(), None, name)
                primary = f"AAMkC{secrets.token_hex(20)}"
                box.calendars[primary] = Container(primary, "Calendar", None, "calendar")
                self.mailboxes[key] = box
            return self.mailboxes[key]

    def folder(self, address: str, name: str, parent: str | None = None) -> Container:
        """The folder with this well-known name or display name, created when missing."""
        box = self.mailbox(address)
        with self.lock:
            for folder in box.folders.values():
                if (folder.well_known == name or folder.name == name) and folder.parent == parent:
                    return folder
            folder_id = f"AAMkF{secrets.token_hex(24)}"
            box.folders[folder_id] = Container(folder_id, name, parent)
            return box.folders[folder_id]

    def calendar(self, address: str, name: str | None = None) -> Container:
        box = self.mailbox(address)
        with self.lock:
            for calendar in box.calendars.values():
                if (name is None and calendar.well_known) or calendar.name == name:
                    return calendar
            calendar_id = f"AAMkC{secrets.token_hex(24)}"
            box.calendars[calendar_id] = Container(calendar_id, name or "Calendar")
            return box.calendars[calendar_id]

    def add_message(
        self,
        address: str,
        folder: str = "inbox",
        *,
        message_id: str | None,
        sender: str,
        to: tuple[str, ...] = (),
        cc: tuple[str, ...] = (),
        bcc: tuple[str, ...] = (),
        sent: datetime | str | None = None,
        received: datetime | None = None,
        subject: str = "Hello",
        headers: tuple[tuple[str, str], ...] = (),
        on_behalf: str | None = None,
        odata_type: str = "#microsoft.graph.message",
    ) -> Item:
        """Deliver a message into a folder (by well-known or display name, or id)."""
        received = received or datetime.now(UTC) - timedelta(days=1)
        sent_text = sent if isinstance(sent, str) else _graph_time(sent or received)
        props = {
            "from": recipient(sender),
            "sender": recipient(on_behalf or sender),
            "toRecipients": [recipient(a) for a in to],
            "ccRecipients": [recipient(a) for a in cc],
            "bccRecipients": [recipient(a) for a in bcc],
            "replyTo": [],
            "receivedDateTime": _graph_time(received),
            "sentDateTime": sent_text,
            "internetMessageId": f"<{message_id}>" if message_id else None,
            "conversationId": f"AAQk{secrets.token_hex(8)}",
            "subject": subject,
            "body": {"contentType": "text", "content": "the body, never to be read"},
            "bodyPreview": "the body",
            "isRead": False,
            "isDraft": False,
        }
        box = self.mailbox(address)
        with self.lock:
            container = self._folder_id(box, folder)
            item = Item(
                f"AAkAL{secrets.token_hex(16)}",
                f"AAMkAD{secrets.token_hex(16)}=",
                container,
                props,
                [{"name": n, "value": v} for n, v in headers],
                odata_type,
            )
            props["parentFolderId"] = container
            box.items[item.id] = item
            self._changed(box, item.id, container)
            return item

    def add_event(
        self,
        address: str,
        *,
        uid: str,
        start: datetime,
        end: datetime | None = None,
        zone: str = "UTC",
        subject: str = "Meeting",
        organizer: str = "alice@example.org",
        attendees: tuple[tuple[str, str], ...] = (),
        response: str = "accepted",
        is_organizer: bool = False,
        cancelled: bool = False,
        all_day: bool = False,
        kind: str = "singleInstance",
        series_master: str | None = None,
        original_start: datetime | None = None,
        calendar: str | None = None,
    ) -> Item:
        """Put one event instance (attendees: (address, response) pairs) on a calendar."""
        end = end or start + timedelta(hours=1)
        props = {
            "iCalUId": uid,
            "subject": subject,
            "isAllDay": all_day,
            "isCancelled": cancelled,
            "isOrganizer": is_organizer,
            "type": kind,
            "seriesMasterId": series_master,
            "body": {"contentType": "text", "content": "the agenda, never to be read"},
            "start": _local(start, zone),
            "end": _local(end, zone),
            "originalStartTimeZone": zone,
            "showAs": "busy",
            "responseStatus": {"response": response, "time": "0001-01-01T00:00:00Z"},
            "organizer": recipient(organizer),
            "attendees": [
                {
                    "type": "resource" if a.startswith("room") else "required",
                    "status": {"response": r, "time": "0001-01-01T00:00:00Z"},
                    "emailAddress": {"name": a, "address": a},
                }
                for a, r in attendees
            ],
        }
        if all_day:
            props["start"] = {
                "dateTime": start.strftime("%Y-%m-%dT00:00:00.0000000"),
                "timeZone": zone,
            }
            props["end"] = {"dateTime": end.strftime("%Y-%m-%dT00:00:00.0000000"), "timeZone": zone}
        if original_start is not None:
            props["originalStart"] = _graph_time(original_start)
        box = self.mailbox(address)
        with self.lock:
            container = self.calendar(address, calendar).id
            item = Item(
                f"AAkALe{secrets.token_hex(16)}",
                f"AAMkADe{secrets.token_hex(16)}=",
                container,
                props,
                [],
                "#microsoft.graph.event",
                (start.astimezone(UTC), end.astimezone(UTC)),
            )
            box.items[item.id] = item
            self._changed(box, item.id, container)
            return item

    def update(
        self,
        address: str,
        item_id: str,
        span: tuple[datetime, datetime] | None = None,
        **props: Any,
    ) -> None:
        """Change an item's properties or an event's time (an update delta reports)."""
        box = self.mailbox(address)
        with self.lock:
            if span is not None:
                box.items[item_id].span = span
            box.items[item_id].props.update(props)
            self._changed(box, item_id, box.items[item_id].container)

    def remove(self, address: str, item_id: str) -> None:
        box = self.mailbox(address)
        with self.lock:
            item = box.items.pop(item_id)
            box.gone[item_id] = item.container
            self._changed(box, item_id, item.container)

    def move(self, address: str, item_id: str, folder: str) -> None:
        """Move a message: its regular id changes, its immutable id does not."""
        box = self.mailbox(address)
        with self.lock:
            item = box.items[item_id]
            old, item.container = item.container, self._folder_id(box, folder)
            item.regular = f"AAMkAD{secrets.token_hex(16)}="
            self._changed(box, item_id, old)
            self._changed(box, item_id, item.container)

    def expire_delta(
        self, status: int = 410, code: str = "SyncStateNotFound", *, container: str | None = None
    ) -> None:
        """Every nextLink and deltaLink issued so far (for one folder or calendar id, or for
        all) answers this error from now on."""
        with self.lock:
            if container is None:
                self.generation += 1
            else:
                self.generations[container] = self.generations.get(container, 0) + 1
            self.expiry = (status, code)

    def _generation(self, container: str) -> tuple[int, int]:
        return self.generation, self.generations.get(container, 0)

    def throttle(
        self, count: int = 1, *, status: int = 429, retry_after: str | None = "1", path: str = ""
    ) -> None:
        """Answer the next `count` requests whose path contains `path` with `status`."""
        with self.lock:
            self.throttles.extend([(status, retry_after, path)] * count)

    def paths(self, fragment: str = "") -> list[Request]:
        """Requests whose path contains `fragment`."""
        return [r for r in self.requests if fragment in r.path]

    # -- serving -----------------------------------------------------------------------------

    def _changed(self, box: Mailbox, item_id: str, container: str) -> None:
        self.seq += 1
        box.changes.append((self.seq, item_id, container))

    def _folder_id(self, box: Mailbox, name: str) -> str:
        for folder in box.folders.values():
            if name in (folder.id, folder.well_known, folder.name):
                return folder.id
        raise KeyError(name)

    def handle(self, handler: _Handler) -> tuple[int, dict[str, str], Any]:
        path, query = handler.split
        prefer = ", ".join(handler.headers.get_all("Prefer") or [])
        with self.lock:
            self.requests.append(Request(handler.command, path, query, prefer, time.time()))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            throttled = next((t for t in self.throttles if t[2] in path), None)
            if throttled is not None:
                self.throttles.remove(throttled)
        try:
            if self.delay:
                time.sleep(self.delay)
            if throttled is not None:
                status, retry_after, _ = throttled
                code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                return status, headers, {"error": {"code": code, "message": "Slow down."}}
            with self.lock:
                return self._route(handler, path, query, prefer)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _route(
        self, handler: _Handler, path: str, query: dict[str, str], prefer: str
    ) -> tuple[int, dict[str, str], Any]:
        auth = handler.headers.get("Authorization", "")
        grant = self.identity.access.get(auth.removeprefix("Bearer ").strip())
        if grant is None or grant.expires < time.time():
            return _error(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        parts = [p for p in path.split("/") if p]
        if parts[:1] != ["v1.0"] or len(parts) < 2:
            return _error(404, "UnknownResource", path)
        if parts[1] == "me":
            if grant.user is None:
                return _error(
                    400,
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                )
            address, prefix, rest = grant.user, "/me", parts[2:]
        elif parts[1] == "users" and len(parts) > 2:
            address, prefix, rest = parts[2], f"/users/{quote(parts[2], safe='@')}", parts[3:]
            if grant.user is not None and grant.user.lower() != address.lower():
                return _error(403, "ErrorAccessDenied", "Access is denied.")
            if grant.user is None and address.lower() not in self.mailboxes:
                return _error(
                    404, "ErrorInvalidUser", f"The requested user '{address}' is invalid."
                )
        else:
            return _error(404, "UnknownResource", path)
        calendar = bool(rest) and rest[0] in ("calendarView", "calendars")
        needed = (
            {"Calendars.Read", "Calendars.ReadBasic"}
            if calendar
            else {"Mail.ReadBasic", "Mail.Read", "Mail.ReadBasic.All"}
        )
        if not grant.permissions & needed:
            return _error(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        box = self.mailbox(address)
        base = f"{self.url}/v1.0{prefix}"
        immutable = 'idtype="immutableid"' in prefer.lower().replace(" ", "")
        try:
            if calendar:
                return self._calendar(box, base, rest, query, prefer, immutable)
            return self._mail(box, base, rest, query, prefer, immutable, grant)
        except KeyError:
            return _error(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )

    def _mail(
        self,
        box: Mailbox,
        base: str,
        rest: list[str],
        query: dict[str, str],
        prefer: str,
        immutable: bool,
        grant: Grant,
    ) -> tuple[int, dict[str, str], Any]:
        if rest[:1] == ["messages"] and len(rest) == 2:
            asked = "internetMessageHeaders" in (_select(query) or ())
            if asked and self.headers_need and self.headers_need not in grant.permissions:
                return _error(403, "ErrorAccessDenied", "Access is denied.")
            item = next(i for i in box.items.values() if rest[1] in (i.id, i.regular))
            return 200, {}, self._message(item, _select(query), immutable)
        if rest[:1] != ["mailFolders"]:
            raise KeyError(rest)
        if len(rest) == 1 or rest[2:] == ["childFolders"]:
            parent = self._folder_id(box, rest[1]) if len(rest) > 1 else None
            wanted = _display_name(query.get("$filter", ""))
            folders = [
                {"id": f.id, "displayName": f.name}
                for f in box.folders.values()
                if f.parent == parent and (wanted is None or f.name.lower() == wanted.lower())
            ]
            return 200, {}, {"value": folders}
        folder = self._folder_id(box, rest[1])
        if len(rest) == 2:
            count = sum(1 for i in box.items.values() if i.container == folder)
            return 200, {}, {"id": folder, "totalItemCount": count}
        try:
            matches = _received_filter(query.get("$filter"))
        except ValueError as exc:
            return _error(400, "ErrorInvalidUrlQueryFilter", str(exc))
        select = _select(query)
        unknown = set(select or ()) - MESSAGE_FIELDS
        if unknown:
            return _error(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{sorted(unknown)[0]}' on type 'microsoft.graph.message'.",  # noqa: E501  (the real error text)
            )
        if rest[2:] == ["messages"]:
            found = [i for i in box.items.values() if i.container == folder and matches(i)]
            top = int(query.get("$top", DEFAULT_PAGE))
            body: dict[str, Any] = {
                "value": [self._message(i, select, immutable) for i in found[:top]]
            }
            if query.get("$count") == "true":
                body["@odata.count"] = len(found)
            return 200, {}, body
        if rest[2:] != ["messages", "delta"]:
            raise KeyError(rest)
        spec = {
            "kind": "message",
            "container": folder,
            "select": select,
            "filter": query.get("$filter"),
        }
        link = f"{base}/mailFolders/{quote(folder, safe='')}/messages/delta"
        return self._delta(box, link, query, prefer, spec, immutable)

    def _calendar(
        self,
        box: Mailbox,
        base: str,
        rest: list[str],
        query: dict[str, str],
        prefer: str,
        immutable: bool,
    ) -> tuple[int, dict[str, str], Any]:
        if rest == ["calendars"]:
            listed = [{"id": c.id, "name": c.name} for c in box.calendars.values()]
            return 200, {}, {"value": listed}
        if rest[0] == "calendars":
            calendar = box.calendars[rest[1]].id
            link, rest = f"{base}/calendars/{quote(calendar, safe='')}/calendarView", rest[2:]
        else:
            calendar = next(c.id for c in box.calendars.values() if c.well_known)
            link = f"{base}/calendarView"
        if rest == ["calendarView", "delta"]:
            if "$select" in query:
                return _error(
                    400,
                    "ErrorInvalidUrlQuery",
                    "The query parameter '$select' is not supported with delta on calendarView.",
                )
            spec = {"kind": "event", "container": calendar}
            if "$skiptoken" not in query and "$deltatoken" not in query:
                if "startDateTime" not in query or "endDateTime" not in query:
                    return _error(
                        400,
                        "ErrorInvalidParameter",
                        "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",  # noqa: E501  (the real error text)
                    )
                spec.update(start=query["startDateTime"], end=query["endDateTime"])
            return self._delta(box, f"{link}/delta", query, prefer, spec, immutable)
        if rest != ["calendarView"]:
            raise KeyError(rest)
        select = _select(query)
        if select is not None and set(select) - EVENT_FIELDS:
            return _error(400, "RequestBroker--ParseUri", "Could not find a property.")
        start, end = _parse_time(query["startDateTime"]), _parse_time(query["endDateTime"])
        found = sorted(
            (i for i in box.items.values() if i.container == calendar and _overlaps(i, start, end)),
            key=lambda i: i.span or (start, end),
        )
        skip, top = (
            int(query.get("$skip", 0)),
            min(int(query.get("$top", DEFAULT_PAGE)), self.max_page),
        )
        body: dict[str, Any] = {
            "value": [self._event(i, prefer, immutable, select) for i in found[skip : skip + top]]
        }
        if skip + top < len(found):
            rest_query = {k: v for k, v in query.items() if k != "$skip"}
            body["@odata.nextLink"] = f"{link}?" + "&".join(
                f"{k}={quote(v, safe='')}"
                for k, v in {**rest_query, "$skip": str(skip + top)}.items()
            )
        return 200, {}, body

    def _delta(
        self,
        box: Mailbox,
        link: str,
        query: dict[str, str],
        prefer: str,
        spec: dict[str, Any],
        immutable: bool,
    ) -> tuple[int, dict[str, str], Any]:
        if "$skiptoken" in query or "$deltatoken" in query:
            token = query.get("$skiptoken") or query["$deltatoken"]
            found: Any = self.rounds.get(token) if "$skiptoken" in query else self.deltas.get(token)
            state = found[0] if isinstance(found, tuple) else found
            if state is None or state.generation != self._generation(state.query["container"]):
                status, code = self.expiry
                return _error(status, code, "The sync state is not valid or has expired.")
            if isinstance(found, tuple):
                run, position = found
            else:
                run, position = self._changes(box, found), 0
        else:
            try:
                run, position = self._initial(box, spec), 0
            except ValueError as exc:
                return _error(400, "ErrorInvalidUrlQueryFilter", str(exc))
        size = min(_max_page_size(prefer) or DEFAULT_PAGE, self.max_page)
        entries = run.entries[position : position + size]
        value = []
        for item_id, reason in entries:
            if reason is not None:
                kind = (
                    "#microsoft.graph.event"
                    if run.query["kind"] == "event"
                    else "#microsoft.graph.message"
                )
                value.append({"@odata.type": kind, "id": item_id, "@removed": {"reason": reason}})
            elif run.query["kind"] == "event":
                value.append(self._event(box.items[item_id], prefer, immutable, None))
            else:
                value.append(self._message(box.items[item_id], run.query["select"], immutable))
        body: dict[str, Any] = {
            "@odata.context": f"{self.url}/v1.0/$metadata#Collection",
            "value": value,
        }
        done = position + size >= len(run.entries)
        token = self._token(run, "delta" if done else position + size)
        if not done:
            self.rounds[token] = (run, position + size)
            body["@odata.nextLink"] = f"{link}?$skiptoken={token}"
        else:
            self.deltas[token] = _DeltaState(box.address, run.query, run.end_seq, run.generation)
            body["@odata.deltaLink"] = f"{link}?$deltatoken={token}"
        return 200, {}, body

    def _token(self, run: _Round, where: object) -> str:
        """A state token: derived from the sync state (the same state gives the same token, as
        a watermark would), or random when `random_tokens` asks the client to cope with that."""
        if self.random_tokens:
            return secrets.token_urlsafe(12)
        if run.digest is None:  # once per round: a round can hold 100,000 entries
            state = (run.mailbox, sorted(run.query.items(), key=str), run.end_seq, run.entries)
            run.digest = hashlib.sha256(repr((state, run.generation)).encode()).hexdigest()
        return hashlib.sha256(f"{run.digest}|{where}".encode()).hexdigest()[:32]

    def _initial(self, box: Mailbox, spec: dict[str, Any]) -> _Round:
        matches = self._matcher(spec)
        found = [i for i in box.items.values() if i.container == spec["container"] and matches(i)]
        if spec["kind"] == "message":
            found.sort(key=lambda i: i.props["receivedDateTime"], reverse=True)
            if spec.get("filter"):
                # "Applying $filter in a delta query returns only up to 5,000 messages"
                found = found[:FILTER_CAP]
        else:
            found.sort(key=lambda i: i.span[0] if i.span else datetime.min.replace(tzinfo=UTC))
        return _Round(
            box.address,
            spec,
            [(i.id, None) for i in found],
            self.seq,
            self._generation(spec["container"]),
        )

    def _changes(self, box: Mailbox, state: _DeltaState) -> _Round:
        matches = self._matcher(state.query)
        container = state.query["container"]
        latest: dict[str, int] = {}
        for seq, item_id, where in box.changes:
            if seq > state.seq and where == container:
                latest[item_id] = seq
        entries: list[tuple[str, str | None]] = []
        for item_id in sorted(latest, key=latest.__getitem__):
            item = box.items.get(item_id)
            if item is not None and item.container == container and matches(item):
                entries.append((item_id, None))
            else:
                entries.append((item_id, "deleted" if item is None else "changed"))
        return _Round(box.address, state.query, entries, self.seq, state.generation)

    def _matcher(self, spec: dict[str, Any]) -> Any:
        if spec["kind"] == "message":
            return _received_filter(spec.get("filter"))
        start, end = _parse_time(spec["start"]), _parse_time(spec["end"])
        return lambda item: _overlaps(item, start, end)

    def _message(self, item: Item, select: list[str] | None, immutable: bool) -> dict[str, Any]:
        fields = (
            select
            if select is not None
            else [k for k in item.props if k != "internetMessageHeaders"]
        )
        out: dict[str, Any] = {"@odata.type": item.odata_type, "@odata.etag": 'W/"CQAAABYAAAA"'}
        for name in fields:
            if name == "internetMessageHeaders":
                out[name] = list(item.headers)
            elif name in item.props:
                out[name] = item.props[name]
        out["id"] = item.id if immutable else item.regular
        if "body" in out:
            self.bodies_sent += 1
        return out

    def _event(
        self, item: Item, prefer: str, immutable: bool, select: list[str] | None
    ) -> dict[str, Any]:
        props = dict(item.props)
        zone = _preferred_zone(prefer) or "UTC"
        if self.honour_timezone:
            for key in ("start", "end"):
                if props["isAllDay"]:
                    props[key] = {"dateTime": props[key]["dateTime"], "timeZone": zone}
                elif item.span is not None and re.match(r"\d{4}-", str(props[key].get("dateTime"))):
                    props[key] = _local(item.span[0 if key == "start" else 1], zone)
        if select is not None:
            props = {k: v for k, v in props.items() if k in select}
        if "body" in props:
            self.bodies_sent += 1
        return {
            "@odata.type": "#microsoft.graph.event",
            "@odata.etag": 'W/"DwAAABYAAAA"',
            **props,
            "id": item.id if immutable else item.regular,
        }


def _select(query: dict[str, str]) -> list[str] | None:
    return [s.strip() for s in query["$select"].split(",")] if "$select" in query else None


def _display_name(text: str) -> str | None:
    match = re.fullmatch(r"\s*displayName eq '((?:[^']|'')*)'\s*", text)
    return match.group(1).replace("''", "'") if match else None


def _received_filter(text: str | None) -> Any:
    """The one $filter message delta supports: receivedDateTime ge|gt <DateTimeOffset>."""
    if not text:
        return lambda item: True
    parts = text.split()
    if len(parts) != 3 or parts[0] != "receivedDateTime" or parts[1] not in ("ge", "gt"):
        raise ValueError(f"The filter '{text}' is not supported for delta queries on messages.")
    bound = _parse_time(parts[2])
    if parts[1] == "ge":
        return lambda item: _parse_time(item.props["receivedDateTime"]) >= bound
    return lambda item: _parse_time(item.props["receivedDateTime"]) > bound


def _overlaps(item: Item, start: datetime, end: datetime) -> bool:
    return item.span is not None and item.span[0] < end and item.span[1] > start


def _max_page_size(prefer: str) -> int | None:
    match = re.search(r"odata\.maxpagesize=(\d+)", prefer)
    return int(match.group(1)) if match else None


def _preferred_zone(prefer: str) -> str | None:
    match = re.search(r'outlook\.timezone="([^"]+)"', prefer)
    return match.group(1) if match else None


@dataclass
class Emulators:
    """Both servers and the CA file that trusts them."""

    identity: Identity
    graph: Graph
    ca_file: Path

    def reset(self) -> None:
        self.identity.reset()
        self.graph.reset()

    @property
    def graph_root(self) -> str:
        return f"{self.graph.url}/v1.0"

    def authority(self, tenant: str = "contoso.example") -> str:
        return f"{self.identity.url}/{tenant}"


@functools.cache
def emulators() -> Emulators:
    """The process's emulators, started on first use (their threads end with the process)."""
    directory = Path(tempfile.mkdtemp(prefix="keepwarm-ms-emulator-"))
    tls = Tls.create(directory)
    identity = Identity()
    graph = Graph(identity)
    identity.start(tls)
    graph.start(tls)
    return Emulators(identity, graph, tls.cert)


# --- accounts that use them -------------------------------------------------------------------

CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
USER = "me@example.net"  # who signs in (Identity.user)


def outlook_account(em: Emulators, kind: str = "outlook", **changes: Any) -> Any:
    """An account of `kind` pointed at the emulators (authority, Graph root, their CA)."""
    from keepwarm.config.schema import AccountConfig

    fields: dict[str, Any] = {
        "name": "work", "kind": kind, "client_id": CLIENT_ID, "authority": em.authority(),
        "graph_endpoint": em.graph_root, "ca_file": str(em.ca_file),
    }  # fmt: skip
    return AccountConfig(**{**fields, **changes})


def sign_in(account: Any, state_dir: Path) -> None:
    """What `keepwarm auth microsoft` leaves behind, through the real msal device code flow."""
    from keepwarm.connectors.microsoft import auth
    from keepwarm.connectors.microsoft.session import http_session

    em = emulators()
    pending, em.identity.pending_polls = em.identity.pending_polls, 0  # no one-second wait
    try:
        path = auth.cache_path(state_dir, account.name)
        cache = auth.load_cache(path)
        app = auth.public_app(account, http_session(account), cache)
        flow = app.initiate_device_flow(scopes=auth.scopes(account))
        result = app.acquire_token_by_device_flow(flow)
        assert "access_token" in result, result
        auth.save_cache(path, cache)
    finally:
        em.identity.pending_polls = pending
