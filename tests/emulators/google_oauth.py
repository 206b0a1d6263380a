"""Google's OAuth 2.0 endpoints as an installed app and a service account meet them.

- `GET /o/oauth2/auth`: the consent page. The emulated user (`consent_user`) consents at once;
  the answer is the redirect to the app's loopback `redirect_uri` with `code` and `state`
  (or `error=access_denied` when `deny` is set). Granular consent: `unticked` scopes are left out.
- `POST /token`: `authorization_code` (PKCE S256 checked), `refresh_token` (`invalid_grant` once
  revoked or expired; a `scope` asking for more than was granted is `invalid_scope`, RFC 6749
  section 6), and the JWT-bearer grant of service accounts (RS256 signature checked against the
  key's public half; the `sub` user must exist and the client be delegated).
- `imap_user(token)`: whom Gmail's IMAP would let in with an access token (XOAUTH2).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import google.auth.exceptions
import google.auth.jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

if TYPE_CHECKING:
    from tests.emulators.google import GoogleEmulator

GMAIL_METADATA = "https://www.googleapis.com/auth/gmail.metadata"
GMAIL_IMAP = "https://mail.google.com/"
CALENDAR_READONLY = "https://www.googleapis.com/auth/calendar.readonly"
DEFAULT_SCOPES = (GMAIL_METADATA, CALENDAR_READONLY)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_ENDPOINT = "https://oauth2.googleapis.com/token"
Answer = tuple[int, dict[str, str], bytes]


@dataclass
class _Grant:
    client_id: str
    user: str
    scopes: frozenset[str]


@dataclass
class _Code(_Grant):
    redirect_uri: str = ""
    challenge: str = ""


@dataclass
class _ServiceAccount:
    client_id: str
    public_pem: str
    delegated: frozenset[str]  # scopes the Workspace admin allowed for domain-wide delegation


@dataclass
class OAuth:
    emulator: GoogleEmulator
    clients: dict[str, str] = field(default_factory=lambda: {"client-1.apps": "secret-1"})
    refresh_tokens: dict[str, _Grant] = field(default_factory=dict)
    access_tokens: dict[str, tuple[str, frozenset[str], float]] = field(default_factory=dict)
    codes: dict[str, _Code] = field(default_factory=dict)
    service_accounts: dict[str, _ServiceAccount] = field(default_factory=dict)
    consent_user: str = "me@example.net"
    unticked: frozenset[str] = frozenset()
    deny: bool = False
    lifetime: int = 3599
    grants: list[str] = field(default_factory=list)  # grant types seen at the token endpoint

    # --- set-up helpers for tests ----------------------------------------------------------

    def authorized_user_info(
        self, email: str, scopes: tuple[str, ...] = DEFAULT_SCOPES
    ) -> dict[str, str]:
        """google-auth's authorized-user JSON for `email`, with a fresh refresh token."""
        self.emulator.user(email)
        token = f"1//rt-{secrets.token_urlsafe(12)}"
        self.refresh_tokens[token] = _Grant("client-1.apps", email, frozenset(scopes))
        return {
            "type": "authorized_user",
            "client_id": "client-1.apps",
            "client_secret": self.clients["client-1.apps"],
            "refresh_token": token,
            "token_uri": f"{self.emulator.base}/token",
        }

    def client_secrets(self) -> dict[str, Any]:
        """The OAuth client JSON Google Cloud's console lets a Desktop-app owner download."""
        return {
            "installed": {
                "client_id": "client-1.apps",
                "project_id": "keepwarm-test",
                "auth_uri": f"{self.emulator.base}/o/oauth2/auth",
                "token_uri": f"{self.emulator.base}/token",
                "client_secret": self.clients["client-1.apps"],
                "redirect_uris": ["http://localhost"],
            }
        }

    def service_account_info(self, delegated: tuple[str, ...] = DEFAULT_SCOPES) -> dict[str, str]:
        """A service-account key file whose client may impersonate users for `delegated`."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        number = len(self.service_accounts) + 1
        email = f"keepwarm-{number}@keepwarm-test.iam.gserviceaccount.com"
        client_id = f"10000000000000000000{number}"
        self.service_accounts[email] = _ServiceAccount(
            client_id, public.decode(), frozenset(delegated)
        )
        return {
            "type": "service_account",
            "project_id": "keepwarm-test",
            "private_key_id": f"kid{number}",
            "private_key": private,
            "client_email": email,
            "client_id": client_id,
            "auth_uri": f"{self.emulator.base}/o/oauth2/auth",
            "token_uri": f"{self.emulator.base}/token",
        }

    def revoke(self, refresh_token: str) -> None:
        self.refresh_tokens.pop(refresh_token, None)

    def expire_access_tokens(self) -> None:
        self.access_tokens = {k: (u, s, 0.0) for k, (u, s, _) in self.access_tokens.items()}

    def access(self, authorization: str) -> tuple[str, frozenset[str]] | None:
        """The (user, scopes) a `Bearer` access token stands for, if valid."""
        scheme, _, token = authorization.partition(" ")
        found = self.access_tokens.get(token) if scheme.lower() == "bearer" else None
        if found is None or found[2] < time.time():
            return None
        return found[0], found[1]

    def imap_user(self, token: str) -> str | None:
        """The user whose mail Gmail's IMAP opens for this access token: a current token with
        the scope https://mail.google.com/ (the only one IMAP accepts); else None."""
        with self.emulator.lock:
            granted = self.access(f"Bearer {token}")
        return granted[0] if granted and GMAIL_IMAP in granted[1] else None

    # --- endpoints -------------------------------------------------------------------------

    def authorize(self, params: dict[str, list[str]]) -> Answer:
        one = {k: v[-1] for k, v in params.items()}
        redirect = one.get("redirect_uri", "")
        host = urlsplit(redirect).hostname
        if one.get("client_id") not in self.clients or host not in ("127.0.0.1", "localhost"):
            return 400, {"Content-Type": "text/html"}, b"Error 400: invalid_request"
        if one.get("code_challenge_method") != "S256" or not one.get("code_challenge"):
            return 400, {"Content-Type": "text/html"}, b"Error 400: PKCE required"
        if self.deny:
            query = urlencode({"error": "access_denied", "state": one.get("state", "")})
            return 302, {"Location": f"{redirect}?{query}"}, b""
        scopes = frozenset(one.get("scope", "").split()) - self.unticked
        code = f"4/0A{secrets.token_urlsafe(16)}"
        self.codes[code] = _Code(
            one["client_id"], self.consent_user, scopes, redirect, one["code_challenge"]
        )
        query = urlencode({"state": one.get("state", ""), "code": code, "scope": " ".join(scopes)})
        return 302, {"Location": f"{redirect}?{query}"}, b""

    def token(self, body: bytes) -> Answer:
        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        grant = form.get("grant_type", "")
        self.grants.append(grant)
        if grant == JWT_BEARER:
            return self._jwt(form.get("assertion", ""))
        if self.clients.get(form.get("client_id", "")) != form.get("client_secret"):
            return _error(401, "invalid_client", "The OAuth client was not found.")
        if grant == "refresh_token":
            found = self.refresh_tokens.get(form.get("refresh_token", ""))
            if found is None or found.client_id != form["client_id"]:
                return _error(400, "invalid_grant", "Token has been expired or revoked.")
            asked = frozenset(form.get("scope", "").split()) or found.scopes
            if not asked <= found.scopes:
                return _error(400, "invalid_scope", "Bad Request")
            return self._issue(found.user, asked)
        if grant == "authorization_code":
            code = self.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
            if (
                code is None
                or code.redirect_uri != form.get("redirect_uri")
                or code.challenge != challenge
            ):
                return _error(400, "invalid_grant", "Malformed auth code.")
            refresh = f"1//rt-{secrets.token_urlsafe(12)}"
            self.refresh_tokens[refresh] = _Grant(code.client_id, code.user, code.scopes)
            return self._issue(code.user, code.scopes, refresh_token=refresh)
        return _error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")

    def _jwt(self, assertion: str) -> Answer:
        try:
            unverified = google.auth.jwt.decode(assertion, verify=False)
            account = self.service_accounts.get(unverified.get("iss", ""))
            if account is None:
                return _error(400, "invalid_grant", "Invalid JWT Signature.")
            # google-auth signs for Google's token endpoint whatever token_uri it posts to,
            # and that is the audience Google checks.
            claims = google.auth.jwt.decode(
                assertion, certs=account.public_pem, audience=GOOGLE_TOKEN_ENDPOINT
            )
        except (ValueError, google.auth.exceptions.GoogleAuthError):
            return _error(400, "invalid_grant", "Invalid JWT Signature.")
        subject = claims.get("sub")
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not subject:
            return _error(400, "invalid_scope", "Service accounts read users' data by delegation.")
        if not scopes or not scopes <= account.delegated:
            return _error(
                401,
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or client"
                " not authorized for any of the scopes requested.",
            )
        if subject not in self.emulator.users:
            return _error(400, "invalid_grant", "Invalid email or User ID")
        return self._issue(str(subject), scopes)

    def _issue(self, user: str, scopes: frozenset[str], **extra: str) -> Answer:
        self.emulator.user(user)
        token = f"ya29.{secrets.token_urlsafe(24)}"
        self.access_tokens[token] = (user, scopes, time.time() + self.lifetime)
        body = {
            "access_token": token,
            "expires_in": self.lifetime,
            "scope": " ".join(sorted(scopes)),
            "token_type": "Bearer",
            **extra,
        }
        return 200, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body).encode()


def _error(status: int, error: str, description: str) -> Answer:
    body = json.dumps({"error": error, "error_description": description}).encode()
    return status, {"Content-Type": "application/json; charset=utf-8"}, body
