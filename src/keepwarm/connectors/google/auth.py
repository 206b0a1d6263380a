"""Google credentials for an account, from one of three places, and what their failures mean.

- `credentials_file`: google-auth's "authorized user" JSON (client_id, client_secret,
  refresh_token, token_uri). Built by hand: `Credentials.from_authorized_user_file` replaces the
  file's token_uri with Google's, and a token_uri is how tests and proxies point elsewhere.
- `client_secrets_file`: the account was authorised with `keepwarm auth google NAME`, which
  stored the same authorized-user JSON, 0600, at `token_path(state_dir, NAME)`.
- `service_account_file`: a Workspace service account with domain-wide delegation, acting as
  each of the account's `users` in turn (the JWT-bearer grant at the key's token_uri).

A refresh that Google refuses with `invalid_grant` (revoked, expired, or a 7-day token of an app
whose consent screen is still "in testing") needs the user: AuthError with the command to run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.oauth2.credentials
import google.oauth2.service_account
from google.auth.credentials import Credentials

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.auth.files import read_private
from keepwarm.connectors.base import SourceProblem
from keepwarm.errors import AuthError, ConnectorError, TransientError

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
GMAIL_METADATA = "https://www.googleapis.com/auth/gmail.metadata"
GMAIL_SETTINGS = "https://www.googleapis.com/auth/gmail.settings.basic"  # send-as addresses
CALENDAR_READONLY = "https://www.googleapis.com/auth/calendar.readonly"
CALENDAR_EVENTS_READONLY = "https://www.googleapis.com/auth/calendar.events.readonly"


def scopes_for(kind: str, *, send_as: bool = False) -> tuple[str, ...]:
    """The narrowest scopes that work for a kind (gmail.metadata forbids bodies and `q`)."""
    if kind == "gmail":
        return (GMAIL_METADATA, GMAIL_SETTINGS) if send_as else (GMAIL_METADATA,)
    return (CALENDAR_READONLY,)


def token_path(state_dir: Path, account_name: str) -> Path:
    """Where `keepwarm auth google NAME` keeps the account's refresh token."""
    return state_dir / "tokens" / f"google-{account_name}.json"


def fix_command(account: AccountConfig) -> str:
    return f"keepwarm auth google {account.name}"


def credentials(account: AccountConfig, state_dir: Path, user: str | None) -> Credentials:
    """The account's credentials (for `user` when delegating); nothing is fetched yet."""
    if account.service_account_file:
        path = Path(account.service_account_file).expanduser()
        info = _read_json(path, "accounts.service_account_file")
        try:
            factory = google.oauth2.service_account.Credentials.from_service_account_info
            delegated: Credentials = factory(  # type: ignore[no-untyped-call]
                info, scopes=scopes_for(account.kind), subject=user
            )
        except (ValueError, KeyError) as exc:
            raise SourceProblem(
                f"{path} is not a service-account key: {exc}",
                "download a JSON key of the service account from Google Cloud",
            ) from exc
        return delegated
    if account.credentials_file:
        path = Path(account.credentials_file).expanduser()
        return authorized_user(_read_json(path, "accounts.credentials_file"), path)
    path = token_path(state_dir, account.name)
    data = read_private(path)
    if data is None:
        raise AuthError(
            f"account {account.name!r} is not authorised with Google yet",
            fix_command(account),
        )
    try:
        info = json.loads(data)
    except ValueError as exc:
        raise AuthError(f"{path} is not valid JSON", fix_command(account)) from exc
    return authorized_user(info, path)


def authorized_user(info: Any, where: Path) -> google.oauth2.credentials.Credentials:
    """Credentials from authorized-user JSON, honouring its token_uri."""
    missing = [
        key
        for key in ("client_id", "client_secret", "refresh_token")
        if not isinstance(info, dict) or not info.get(key)
    ]
    if missing:
        raise AuthError(
            f"{where} lacks {', '.join(missing)} (not google-auth authorized-user JSON)",
            "run `keepwarm auth google ACCOUNT`, or give such a file",
        )
    return google.oauth2.credentials.Credentials(  # type: ignore[no-untyped-call]
        None,
        refresh_token=info["refresh_token"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        token_uri=info.get("token_uri") or GOOGLE_TOKEN_URI,
    )


def refresh_failure(
    exc: google.auth.exceptions.GoogleAuthError, account: AccountConfig, user: str | None
) -> ConnectorError:
    """Our error for a token refresh that failed. Messages carry Google's error code, never
    a token."""
    if isinstance(exc, google.auth.exceptions.TransportError):
        return TransientError("cannot reach Google's token endpoint")
    data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
    error = str(data.get("error") or "")
    if getattr(exc, "retryable", False):
        return TransientError(f"Google's token endpoint failed ({error or 'server error'})")
    who = f" for {user}" if user else ""
    if account.service_account_file:
        return AuthError(
            f"Google refused the service account{who} ({error or 'refused'})",
            "in the Admin console (Security > API controls > Domain-wide delegation) allow the "
            f"service account's client id the scopes {' '.join(scopes_for(account.kind))}, "
            "and check that accounts.users are users of the domain",
        )
    if error == "invalid_grant":
        return AuthError(
            "Google refused the refresh token (invalid_grant): revoked, expired, or a 7-day "
            "token of an app still in testing",
            fix_command(account),
        )
    if error in ("invalid_client", "unauthorized_client"):
        return AuthError(
            f"Google does not know this OAuth client ({error})",
            "check client_id/client_secret, then " + fix_command(account),
        )
    return AuthError(f"Google refused the credentials ({error or 'refresh failed'})",
                     fix_command(account))  # fmt: skip


def _read_json(path: Path, key: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SourceProblem(f"{path} does not exist", f"check {key}") from exc
    except (OSError, ValueError) as exc:
        raise SourceProblem(f"{path} cannot be read as JSON: {exc}", f"check {key}") from exc
