"""Microsoft identity platform through msal: delegated sign-in (device code flow, refresh from a
token cache file) and app-only access (client credentials).

Delegated accounts keep msal's token cache in `STATE_DIR/tokens/microsoft-NAME.json`, mode 0600,
replaced atomically (`connectors/auth/files.py`) whenever msal changed it. msal-extensions is not
used: its value is OS keyrings (absent on a headless server) and file locking, and one account
is only ever polled by one worker at a time.

An `imap` account with `oauth_provider = "microsoft"` signs in the same way (delegated only) for
the one scope Outlook's IMAP accepts, `OUTLOOK_IMAP`; `TokenSource.token` is then its XOAUTH2
token provider.

Errors: a refused refresh (revoked or expired refresh token, consent withdrawn, AADSTS65001 …)
is an `AuthError` whose fix is `keepwarm auth microsoft NAME`; network trouble and identity
platform outages are `TransientError`; an authority that cannot be discovered is a
`SourceProblem`. Messages carry the AADSTS code and its first sentence, never a token.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from keepwarm.config.schema import AccountConfig
from keepwarm.config.secrets import read_secret
from keepwarm.connectors.auth.files import read_private, write_private
from keepwarm.connectors.base import SourceProblem
from keepwarm.errors import AuthError, ConnectorError, TransientError, UserError

LOGIN_HOST = "https://login.microsoftonline.com"
GRAPH_ROOT = "https://graph.microsoft.com/v1.0"
GLOBAL_GRAPH_HOST = "graph.microsoft.com"
# The narrowest delegated permissions that read what keepwarm needs; msal adds offline_access
# (a refresh token), openid and profile (who signed in) to every request itself.
DELEGATED_PERMISSIONS = ("Mail.ReadBasic", "Calendars.Read")
# IMAP belongs to Exchange Online, not Graph: a token for it cannot be had with Graph's scopes.
OUTLOOK_IMAP = "https://outlook.office.com/IMAP.AccessAsUser.All"
MULTI_TENANT = frozenset({"common", "consumers", "organizations"})
_FIRST_SENTENCE = re.compile(r"^(AADSTS\d+:)?[^\r\n]*?(?:\.(?=\s)|$)")


def is_app_only(account: AccountConfig) -> bool:
    """App-only (client credentials) when a client secret is configured, else delegated."""
    return any(
        (account.client_secret_file, account.client_secret_env, account.client_secret_command)
    )


def authority_url(account: AccountConfig) -> str:
    """The `authority` override as given, else the global cloud's endpoint for `tenant`."""
    if account.authority:
        return account.authority.rstrip("/")
    return f"{LOGIN_HOST}/{account.tenant}"


def graph_root(account: AccountConfig) -> str:
    """Graph's versioned root, e.g. https://graph.microsoft.com/v1.0 (no trailing slash)."""
    return (account.graph_endpoint or GRAPH_ROOT).rstrip("/")


def scopes(account: AccountConfig) -> list[str]:
    """Scopes to ask for. Outside the global cloud a scope must name its Graph host
    (https://graph.microsoft.us/Mail.ReadBasic); in it the short names are the usual form, and
    the form the identity platform echoes back, so msal's cache matches them. IMAP accounts
    ask for Outlook's IMAP scope alone (one resource per token)."""
    if account.kind == "imap":
        return [OUTLOOK_IMAP]
    parts = urlsplit(graph_root(account))
    prefix = "" if parts.hostname == GLOBAL_GRAPH_HOST else f"{parts.scheme}://{parts.netloc}/"
    if is_app_only(account):
        return [f"{prefix or 'https://' + GLOBAL_GRAPH_HOST + '/'}.default"]
    return [prefix + permission for permission in DELEGATED_PERMISSIONS]


def cache_path(state_dir: Path, account_name: str) -> Path:
    """Where the account's msal token cache lives (any character unsafe in a file name is
    replaced, so an account named "work/mail" cannot escape the directory)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", account_name).lstrip(".") or "account"
    return state_dir / "tokens" / f"microsoft-{safe}.json"


def sign_in_fix(account: AccountConfig) -> str:
    """What the user runs (or changes) when the account's credentials stopped working."""
    if is_app_only(account):
        return (
            f"check the client secret of account {account.name!r} (client_secret_file / _env /"
            " _command) and that an administrator granted the app Mail.ReadBasic.All and"
            f" Calendars.Read; `keepwarm auth microsoft {account.name}` tests it"
        )
    return f"keepwarm auth microsoft {account.name}"


def public_app(account: AccountConfig, session: requests.Session, cache: Any) -> Any:
    """An msal PublicClientApplication for delegated sign-in (device code flow, refresh)."""
    return _build(msal.PublicClientApplication, account, session, token_cache=cache)


def load_cache(path: Path) -> Any:
    """msal's cache, filled from `path` when it exists."""
    cache = msal.SerializableTokenCache()
    data = read_private(path)
    if data:
        try:
            cache.deserialize(data.decode("utf-8"))
        except ValueError as exc:  # a damaged file: as good as no sign-in
            raise AuthError(f"the token cache {path} is unreadable: {exc}") from exc
    return cache


def save_cache(path: Path, cache: Any) -> None:
    """Write the cache (0600, atomically) if msal changed it since it was loaded or saved."""
    if cache.has_state_changed:
        write_private(path, cache.serialize().encode("utf-8"))


def token_error(result: dict[str, Any], account: AccountConfig) -> ConnectorError:
    """The error for an msal result dict carrying "error" (msal returns, not raises, those)."""
    code = str(result.get("error", "error"))
    said = describe(result)
    if code in ("temporarily_unavailable", "server_error", "service_unavailable"):
        return TransientError(f"the Microsoft identity platform is unavailable: {said}")
    return AuthError(f"Microsoft refused account {account.name!r}: {said}", sign_in_fix(account))


def describe(result: dict[str, Any]) -> str:
    """The error code and the first sentence of its description: no trace ids, no tokens."""
    code = str(result.get("error", "error"))
    text = str(result.get("error_description") or "").strip()
    match = _FIRST_SENTENCE.match(text)
    sentence = (match.group(0) if match else text)[:300]
    return f"{code} ({sentence})" if sentence else code


def call_msal(what: str, account: AccountConfig, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run an msal call, turning its exceptions into ours (msal raises on network trouble and on
    an authority it cannot discover, and returns dicts for protocol errors)."""
    try:
        return fn(*args, **kwargs)
    except requests.exceptions.SSLError as exc:
        raise SourceProblem(
            f"{what}: the identity platform's certificate cannot be verified",
            "set accounts.ca_file to the CA bundle that signed it",
        ) from exc
    except requests.RequestException as exc:
        raise TransientError(f"{what}: cannot reach the identity platform: {exc!r}") from exc
    except ValueError as exc:  # tenant discovery answered 4xx: a wrong tenant or authority
        raise SourceProblem(
            f"{what}: the authority {authority_url(account)} cannot be used: {str(exc)[:300]}",
            "check accounts.tenant (or accounts.authority) and accounts.client_id",
        ) from exc
    except (msal.exceptions.MsalServiceError, RuntimeError) as exc:  # discovery answered 5xx
        raise TransientError(f"{what}: the identity platform failed: {exc}") from exc


class TokenSource:
    """Access tokens for one account; refreshes through msal and persists its cache."""

    def __init__(self, account: AccountConfig, state_dir: Path, session: requests.Session) -> None:
        self.account = account
        self.session = session
        self.path = cache_path(state_dir, account.name)
        self._app: Any = None
        self._cache: Any = None
        self._lock = threading.Lock()
        self._cached: tuple[str, float] | None = None
        self.owner: str | None = account.mailbox  # who signed in (delegated) or whose mailbox

    def token(self, *, force_refresh: bool = False) -> str:
        """A bearer token, kept until a minute before it expires (msal refreshes it then)."""
        with self._lock:
            if not force_refresh and self._cached and time.monotonic() < self._cached[1]:
                return self._cached[0]
            if is_app_only(self.account):
                result = self._app_only(force_refresh)
            else:
                result = self._delegated(force_refresh)
            if "access_token" not in result:
                raise token_error(result, self.account)
            lifetime = float(result.get("expires_in", 300))
            self._cached = (str(result["access_token"]), time.monotonic() + lifetime - 60.0)
            return self._cached[0]

    def _delegated(self, force_refresh: bool) -> dict[str, Any]:
        name, fix = self.account.name, sign_in_fix(self.account)
        if self._app is None:
            self._cache = load_cache(self.path)
            if next(self._cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN), None) is None:
                raise AuthError(f"account {name!r} is not signed in to Microsoft yet", fix)
            self._app = call_msal(
                "sign-in", self.account, public_app, self.account, self.session, self._cache
            )
        accounts = self._app.get_accounts()
        if not accounts:
            raise AuthError(f"account {name!r} is not signed in to Microsoft yet", fix)
        self.owner = self.owner or accounts[0].get("username") or None
        result = call_msal(
            "token refresh",
            self.account,
            self._app.acquire_token_silent_with_error,
            scopes(self.account),
            account=accounts[0],
            force_refresh=force_refresh,
        )
        save_cache(self.path, self._cache)
        if result is None:  # no refresh token that fits: as good as never signed in
            raise AuthError(f"account {name!r} has no usable Microsoft sign-in", fix)
        return dict(result)

    def _app_only(self, force_refresh: bool) -> dict[str, Any]:
        if self._app is None:
            secret = read_secret(
                file=self.account.client_secret_file,
                env=self.account.client_secret_env,
                command=self.account.client_secret_command,
                key=f"account {self.account.name!r}: client_secret",
            )
            self._app = call_msal(
                "client credentials",
                self.account,
                _build,
                msal.ConfidentialClientApplication,
                self.account,
                self.session,
                client_credential=secret,
            )
        if force_refresh:  # msal serves a cached app token unless it is removed first
            for entry in list(
                self._app.token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)
            ):
                self._app.token_cache.remove_at(entry)
        return dict(
            call_msal(
                "client credentials",
                self.account,
                self._app.acquire_token_for_client,
                scopes(self.account),
            )
        )


def _build(cls: Any, account: AccountConfig, session: requests.Session, **kwargs: Any) -> Any:
    if not account.client_id:
        raise UserError(f"account {account.name!r}: client_id is required for Microsoft accounts")
    return cls(
        account.client_id,
        authority=authority_url(account),
        http_client=session,
        # Without this msal asks Microsoft's public discovery endpoint about a custom authority.
        instance_discovery=False if account.authority else None,
        **kwargs,
    )
