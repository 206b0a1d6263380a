"""Gmail and Calendar clients built offline from the discovery documents google-api-python-client
ships, and one `Api` per user that paces calls and turns failures into keepwarm's errors.

`endpoint` (an account key) replaces Google's API root for both APIs and the batch path: Gmail
at `{endpoint}/gmail/v1/...`, Calendar at `{endpoint}/calendar/v3/...`, batches at
`{endpoint}/batch/gmail/v1`. googleapiclient sends batches to the public host whatever the
`api_endpoint`, so the batch URI is always given explicitly.

The Google libraries (and `auth`, which imports them) are imported when a client is built or
a call fails, not at import: the connector registry imports this module in every process.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import SourceProblem
from keepwarm.connectors.google.quota import (
    Pacer,
    error_reasons,
    is_rate_limit,
    is_retryable,
    retry_after,
    status_of,
)
from keepwarm.errors import AuthError, ConnectorError, TransientError

if TYPE_CHECKING:
    import google_auth_httplib2
    from googleapiclient.errors import HttpError

TIMEOUT = 60.0
GMAIL_ROOT = "https://gmail.googleapis.com"
CALENDAR_ROOT = "https://www.googleapis.com"


def _root(account: AccountConfig, default: str) -> str:
    return (account.endpoint or default).rstrip("/")


def where(account: AccountConfig) -> str:
    """The API host, for messages (an endpoint may carry a path, never worth showing)."""
    return urlsplit(_root(account, GMAIL_ROOT)).netloc


@dataclass
class Api:
    """One user's client: googleapiclient resource, pacer, and error translation."""

    account: AccountConfig
    user: str | None  # the delegated user; None: the authorised user ("me")
    resource: Any
    http: google_auth_httplib2.AuthorizedHttp
    pacer: Pacer
    batch_uri: str = ""

    @property
    def user_id(self) -> str:
        return self.user or "me"

    def call(
        self,
        request: Any,
        method: str,
        units: int = 1,
        *,
        on_status: Mapping[int, ConnectorError] | None = None,
    ) -> Any:
        """Execute with pacing and retries; `on_status` maps an HTTP status to our error."""
        import google.auth.exceptions
        from googleapiclient.errors import BatchError, HttpError

        from keepwarm.connectors.google import auth

        try:
            return self.pacer.execute(request, method, units)
        except ssl.SSLCertVerificationError as exc:
            raise SourceProblem(
                f"the certificate of {where(self.account)} cannot be verified "
                f"({exc.verify_message})",
                "set accounts.ca_file to the CA that signed it",
            ) from None
        except (BatchError, ValueError) as exc:
            # A garbled answer (a proxy's error page, a cut connection): worth another try later.
            raise TransientError(f"unreadable answer from {where(self.account)}: {exc}") from None
        except HttpError as exc:
            if on_status and status_of(exc) in on_status and not is_retryable(exc):
                raise on_status[status_of(exc)] from None
            raise self.failure(exc) from None
        except google.auth.exceptions.GoogleAuthError as exc:
            raise auth.refresh_failure(exc, self.account, self.user) from None

    def failure(self, exc: HttpError) -> ConnectorError:
        """Our error for an API answer that is not a success (inner batch answers too)."""
        from keepwarm.connectors.google import auth

        status, reasons = status_of(exc), error_reasons(exc)
        what = f"Google API at {where(self.account)} answered {status}"
        detail = f" ({', '.join(r for r in reasons if r)})" if any(reasons) else ""
        if is_rate_limit(exc) or status >= 500:
            return TransientError(f"{what}{detail}", retry_after=retry_after(exc))
        if status == 401:
            return AuthError(f"{what}: credentials not accepted", auth.fix_command(self.account))
        if status == 403:
            return AuthError(
                f"{what}{detail}: access denied",
                f"check the API is enabled for the OAuth client's project and the scopes "
                f"({' '.join(auth.scopes_for(self.account.kind))}), then "
                + auth.fix_command(self.account),
            )
        return SourceProblem(f"{what}{detail}", "check the account's settings in the config")

    def close(self) -> None:
        self.http.close()


def _http(account: AccountConfig, state_dir: Path, user: str | None) -> Any:
    import google_auth_httplib2
    import httplib2

    from keepwarm.connectors.google import auth

    credentials = auth.credentials(account, state_dir, user)
    # The system CA bundle through httplib2's own default (HTTPLIB2_CA_CERTS or certifi);
    # `ca_file` wins when set, as for every other connector.
    plain = httplib2.Http(timeout=TIMEOUT, ca_certs=account.ca_file)
    return google_auth_httplib2.AuthorizedHttp(credentials, http=plain)


def gmail(account: AccountConfig, state_dir: Path, user: str | None, pacer: Pacer) -> Api:
    """A Gmail client for `user` (None: the OAuth user)."""
    from googleapiclient.discovery import build

    root = _root(account, GMAIL_ROOT)
    http = _http(account, state_dir, user)
    resource = build(
        "gmail",
        "v1",
        http=http,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": root + "/"},
    )
    return Api(account, user, resource, http, pacer, batch_uri=f"{root}/batch/gmail/v1")


def calendar(account: AccountConfig, state_dir: Path, user: str | None, pacer: Pacer) -> Api:
    """A Calendar client for `user` (None: the OAuth user)."""
    from googleapiclient.discovery import build

    root = _root(account, CALENDAR_ROOT)
    http = _http(account, state_dir, user)
    resource = build(
        "calendar",
        "v3",
        http=http,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": root + "/calendar/v3/"},
    )
    return Api(account, user, resource, http, pacer)


def users_of(account: AccountConfig) -> list[str | None]:
    """The users an account reads: each delegated user, or the one who authorised it."""
    return list(account.users) if account.service_account_file else [None]
