"""Google credentials for an account, from one of three places, and what their failures mean.

- `credentials_file`: google-auth's "authorized user" JSON (client_id, client_secret,
  refresh_token, token_uri). Built by hand: `Credentials.from_authorized_user_file` replaces the
  file's token_uri with Google's, and a token_uri is how tests and proxies point elsewhere.
- `client_secrets_file`: the account was authorised with `keepwarm auth google NAME`, which
  stored the same authorized-user JSON, 0600, at `token_path(state_dir, NAME)`.
- `service_account_file`: a Workspace service account with domain-wide delegation, acting as
  each of the account's `users` in turn (the JWT-bearer grant at the key's token_uri).

An `imap` account with `oauth_provider = "google"` takes its XOAUTH2 access tokens from the same
three places with the scope `https://mail.google.com/` (`ImapAccessToken`); a token file that
says it was granted other scopes is refused before Google is asked.

A refresh that Google refuses with `invalid_grant` (revoked, expired, or a 7-day token of an app
whose consent screen is still "in testing") needs the user: AuthError with the command to run.
"""

from __future__ import annotations

import json
import ssl
import threading
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.oauth2.credentials
import google.oauth2.service_account
import google_auth_httplib2
import httplib2
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
GMAIL_IMAP = "https://mail.google.com/"  # the only scope Gmail's IMAP (XOAUTH2) accepts
TOKEN_TIMEOUT = 60.0


def scopes_for(kind: str, *, send_as: bool = False) -> tuple[str, ...]:
    """The narrowest scopes that work for a kind (gmail.metadata forbids bodies and `q`)."""
    if kind == "imap":
        return (GMAIL_IMAP,)
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
        return _user_credentials(account, _read_json(path, "accounts.credentials_file"), path)
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
    return _user_credentials(account, info, path)


def _user_credentials(
    account: AccountConfig, info: Any, where: Path
) -> google.oauth2.credentials.Credentials:
    """IMAP asks for its scope at each refresh (so Google's answer says whether it was granted),
    after checking the scopes the file says were granted; the APIs take what was granted."""
    if account.kind != "imap":
        return authorized_user(info, where)
    granted = info.get("scopes") if isinstance(info, dict) else None
    if isinstance(granted, list) and GMAIL_IMAP not in granted:
        raise scope_refused(account, f"{where} was authorised for {' '.join(map(str, granted))}")
    return authorized_user(info, where, scopes_for(account.kind))


def scope_refused(account: AccountConfig, what: str) -> AuthError:
    """The error for credentials without the scope Gmail's IMAP needs."""
    return AuthError(
        f"{what}, without {GMAIL_IMAP}: the only scope Gmail's IMAP accepts",
        fix_command(account),
    )


def authorized_user(
    info: Any, where: Path, scopes: tuple[str, ...] | None = None
) -> google.oauth2.credentials.Credentials:
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
        scopes=list(scopes) if scopes else None,
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
        users = "accounts.username is" if account.kind == "imap" else "accounts.users are"
        return AuthError(
            f"Google refused the service account{who} ({error or 'refused'})",
            "in the Admin console (Security > API controls > Domain-wide delegation) allow the "
            f"service account's client id the scopes {' '.join(scopes_for(account.kind))}, "
            f"and check that {users} in the domain",
        )
    if error == "invalid_grant":
        return AuthError(
            "Google refused the refresh token (invalid_grant): revoked, expired, or a 7-day "
            "token of an app still in testing",
            fix_command(account),
        )
    if error == "invalid_scope":
        return scope_refused(account, "Google refused to refresh the token for that scope")
    if error in ("invalid_client", "unauthorized_client"):
        return AuthError(
            f"Google does not know this OAuth client ({error})",
            "check client_id/client_secret, then " + fix_command(account),
        )
    return AuthError(f"Google refused the credentials ({error or 'refresh failed'})",
                     fix_command(account))  # fmt: skip


# Access tokens of IMAP accounts, kept in memory across connectors: the daemon builds a
# connector per poll, and an hour-long token should serve every poll of that hour. The key holds
# the refresh token (or the service account and user), so a new authorisation never gets an old
# token.
_ACCESS: dict[tuple[str, ...], tuple[str, Any]] = {}
_ACCESS_LOCK = threading.Lock()


class ImapAccessToken:
    """XOAUTH2 access tokens for an `imap` account with `oauth_provider = "google"`.

    Called once per IMAP login: returns the current access token, refreshing it first when it
    has expired or expires within google-auth's margin (3 min 45 s). A failed refresh drops the
    credentials, so the next login reads the token file again (a new `keepwarm auth google`
    takes effect without a restart). The token is only ever returned, never logged or written.
    """

    def __init__(self, account: AccountConfig, state_dir: Path) -> None:
        self.account = account
        self.state_dir = state_dir
        # Delegation acts as the IMAP user; an authorised user is whoever consented.
        self.user = account.username if account.service_account_file else None
        self._credentials: Credentials | None = None
        self._key: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._credentials is None:
                found = credentials(self.account, self.state_dir, self.user)
                self._key = (
                    self.account.name,
                    str(getattr(found, "refresh_token", None) or ""),
                    str(getattr(found, "service_account_email", None) or ""),
                    self.user or "",
                )
                with _ACCESS_LOCK:
                    kept = _ACCESS.get(self._key)
                if kept is not None:
                    found.token, found.expiry = kept
                self._credentials = found
            found = self._credentials
            if not found.valid:
                try:
                    self._refresh(found)
                except BaseException:
                    self._credentials = None
                    with _ACCESS_LOCK:
                        _ACCESS.pop(self._key, None)
                    raise
                with _ACCESS_LOCK:
                    _ACCESS[self._key] = (str(found.token), found.expiry)
            return str(found.token)

    def _refresh(self, found: Credentials) -> None:
        # httplib2 as for the APIs: `ca_file` wins, else the system's bundle.
        http = httplib2.Http(timeout=TOKEN_TIMEOUT, ca_certs=self.account.ca_file)
        try:
            found.refresh(google_auth_httplib2.Request(http))  # type: ignore[no-untyped-call]
        except google.auth.exceptions.GoogleAuthError as exc:
            raise refresh_failure(exc, self.account, self.user) from None
        except ssl.SSLCertVerificationError as exc:
            raise SourceProblem(
                f"the certificate of Google's token endpoint cannot be verified "
                f"({exc.verify_message})",
                "set accounts.ca_file to the CA that signed it (or unset it)",
            ) from None
        except OSError as exc:
            raise TransientError(f"cannot reach Google's token endpoint: {exc}") from None
        finally:
            http.close()
        granted = getattr(found, "granted_scopes", None)  # what Google's answer says
        if granted is not None and GMAIL_IMAP not in granted:
            raise scope_refused(account=self.account, what=f"Google granted {' '.join(granted)}")


def _read_json(path: Path, key: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SourceProblem(f"{path} does not exist", f"check {key}") from exc
    except (OSError, ValueError) as exc:
        raise SourceProblem(f"{path} cannot be read as JSON: {exc}", f"check {key}") from exc
