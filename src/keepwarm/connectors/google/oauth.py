"""Google's installed-app OAuth flow, for a server without a browser (RFC 8252 + PKCE, RFC 7636).

The user opens the printed URL in any browser and consents; Google redirects the browser to
`http://127.0.0.1:PORT/?state=...&code=...`. Two ways for that code to reach us, whichever comes
first: the browser's machine forwards the port to the server (`ssh -L PORT:127.0.0.1:PORT`) and
our loopback listener receives the redirect, or the user copies the URL the browser could not
open from its address bar and pastes it here. Google retired the copy-the-code ("oob") flow in
2022; the loopback redirect is what remains for installed apps.

google-auth-oauthlib's `InstalledAppFlow` runs the listener but cannot take a pasted URL at the
same time, so this is a small flow of our own on the standard library: PKCE S256, a random
`state` checked on return, `access_type=offline` and `prompt=consent` (so that a refresh token
comes back even for an account that consented before).
"""

from __future__ import annotations

import base64
import hashlib
import json
import queue
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlencode, urlsplit

from keepwarm.connectors.google.auth import GOOGLE_AUTH_URI, GOOGLE_TOKEN_URI
from keepwarm.errors import UserError

TIMEOUT = 600.0  # seconds to finish consenting
_DONE_PAGE = (
    b"<!DOCTYPE html><html><body><h1>keepwarm is authorised</h1>"
    b"<p>You can close this tab and go back to the terminal.</p></body></html>"
)


@dataclass(frozen=True)
class Client:
    """An OAuth client of type "Desktop app"."""

    client_id: str
    client_secret: str
    auth_uri: str = GOOGLE_AUTH_URI
    token_uri: str = GOOGLE_TOKEN_URI


def client_from_secrets(path: Path) -> Client:
    """The client in the JSON Google Cloud's console downloads for an OAuth client."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the OAuth client JSON ({exc})") from exc
    if not isinstance(data, dict) or "installed" not in data:
        kind = next(iter(data), "?") if isinstance(data, dict) and data else "?"
        raise UserError(
            f"{path}: not a Desktop-app OAuth client (found {kind!r}); create one of type "
            '"Desktop app" in Google Cloud (APIs & Services > Credentials)'
        )
    return client_from_info(data["installed"], path)


def client_from_info(info: Any, where: Path) -> Client:
    """The client of a client-secrets "installed" block or of authorized-user JSON."""
    if not isinstance(info, dict) or not info.get("client_id") or not info.get("client_secret"):
        raise UserError(f"{where}: no client_id and client_secret")
    return Client(
        str(info["client_id"]),
        str(info["client_secret"]),
        str(info.get("auth_uri") or GOOGLE_AUTH_URI),
        str(info.get("token_uri") or GOOGLE_TOKEN_URI),
    )


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def authorization_url(
    client: Client, scopes: tuple[str, ...], redirect_uri: str, state: str, challenge: str
) -> str:
    query = {
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": " ".join(scopes),
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "access_type": "offline",
        "prompt": "consent",
    }
    return f"{client.auth_uri}?{urlencode(query)}"


def code_from_redirect(text: str, state: str) -> str:
    """The authorization code in a redirected URL (or its query string) whose state matches."""
    text = text.strip()
    query = urlsplit(text).query if "://" in text else text.lstrip("?")
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    if "error" in params:
        raise UserError(f"Google did not authorise keepwarm: {params['error']}")
    if params.get("state") != state:
        raise UserError("that URL does not belong to this authorisation (state differs)")
    if not params.get("code"):
        raise UserError("no code in that URL: paste the whole address the browser went to")
    return params["code"]


def exchange(client: Client, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
    """Trade the code for tokens at the token endpoint; returns Google's JSON answer."""
    form = urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": redirect_uri,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        }
    ).encode()
    request = urllib.request.Request(client.token_uri, data=form, method="POST")  # noqa: S310
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 (https/tests)
            data: dict[str, Any] = json.load(answer)
    except urllib.error.HTTPError as exc:
        try:
            error = json.load(exc).get("error", exc.code)
        except ValueError:
            error = exc.code
        raise UserError(f"Google refused the authorisation code ({error}); try again") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"cannot reach Google's token endpoint: {exc}") from exc
    if not data.get("refresh_token"):
        raise UserError("Google sent no refresh token; revoke keepwarm's access and try again")
    return data


class _Receiver(BaseHTTPRequestHandler):
    """Answers the browser's redirect and hands its query to the waiting flow."""

    server: _Loopback

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        query = urlsplit(self.path).query
        if not query:  # a favicon or a stray request: not the redirect
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(_DONE_PAGE)))
        self.end_headers()
        self.wfile.write(_DONE_PAGE)
        self.server.answers.put(query)


class _Loopback(HTTPServer):
    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Receiver)
        self.answers: queue.Queue[str] = queue.Queue()


def run_flow(
    client: Client,
    scopes: tuple[str, ...],
    *,
    port: int,
    say: Callable[[str], None],
    stdin: TextIO,
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """Print the URL, wait for the redirect (loopback or pasted), return the token answer."""
    try:
        server = _Loopback(port)
    except OSError as exc:
        raise UserError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}): use --port") from exc
    port = server.server_address[1]
    redirect_uri = f"http://127.0.0.1:{port}/"
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
    threading.Thread(target=_read_pastes, args=(stdin, server.answers), daemon=True).start()
    try:
        say(
            "Open this URL in a browser on any machine and allow access:\n\n"
            f"  {authorization_url(client, scopes, redirect_uri, state, challenge)}\n\n"
            f"Google then sends the browser to {redirect_uri}. Either forward that port first\n"
            f"(on the browser's machine: ssh -L {port}:127.0.0.1:{port} THIS-SERVER), or copy\n"
            "the address the browser could not open and paste it here:"
        )
        while True:
            try:
                answer = server.answers.get(timeout=timeout)
            except queue.Empty:
                raise UserError(
                    f"no answer within {timeout:.0f} s; run the command again"
                ) from None
            try:
                code = code_from_redirect(answer, state)
            except UserError as exc:
                if "state differs" in str(exc) or "no code" in str(exc):
                    say(f"{exc}; waiting for the right one")
                    continue
                raise
            return exchange(client, code, verifier, redirect_uri)
    finally:
        server.shutdown()
        server.server_close()


def _read_pastes(stdin: TextIO, answers: queue.Queue[str]) -> None:
    """Pasted lines go to the same queue as loopback redirects; EOF just stops reading."""
    try:
        for line in stdin:
            if line.strip():
                answers.put(line.strip())
    except (OSError, ValueError):
        pass
