"""A small Microsoft Graph client: GET with paging, throttling and our error families.

- Paging follows `@odata.nextLink` until `@odata.deltaLink` (delta) or the end (lists). Links
  are followed only on the configured Graph host: the bearer token never goes anywhere else.
- Throttling: 429 and 503 wait for `Retry-After` when the server gives one (a wait longer than
  MAX_WAIT ends the poll with a TransientError carrying it, so the daemon's scheduler waits
  instead of a blocked thread); other 5xx, timeouts and dropped connections back off
  exponentially with jitter. At most MAX_ATTEMPTS tries per request.
- At most MAX_CONCURRENT requests in flight per mailbox, process-wide (Outlook's documented
  limit is four concurrent requests per app and mailbox; more only buys 429s).
- Errors: 401 (after one forced token refresh) and 403 -> AuthError; 410, syncStateNotFound,
  resyncRequired and kin -> CursorExpired; 404 -> SourceProblem; 5xx after retries ->
  TransientError.

requests and `auth` (msal) are imported when a client is built, not at import: the connector
registry imports this module in every process, Outlook account or not.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import structlog

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import SourceProblem
from keepwarm.errors import AuthError, ConnectorError, CursorExpired, TransientError

if TYPE_CHECKING:
    import requests

    from keepwarm.connectors.microsoft.auth import TokenSource

log = structlog.get_logger(__name__)

PAGE_SIZE = 1000  # the most messages or events Outlook serves in one page
MAX_ATTEMPTS = 5
MAX_WAIT = 60.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
MAX_CONCURRENT = 4
RETRIED = frozenset({429, 500, 502, 503, 504})
# Error codes Graph uses for a delta token it no longer has (case differs between services).
EXPIRED_CODES = frozenset(
    {"syncstatenotfound", "resyncrequired", "syncstateinvalid", "fullsyncrequired"}
)
IMMUTABLE_IDS = 'IdType="ImmutableId"'

_slots: dict[str, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def mailbox_slots(key: str) -> threading.BoundedSemaphore:
    """The process-wide semaphore of one mailbox (shared by its mail and calendar accounts)."""
    with _slots_lock:
        return _slots.setdefault(key, threading.BoundedSemaphore(MAX_CONCURRENT))


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a collection: its entries and where the round goes next."""

    items: list[dict[str, Any]]
    next_link: str | None
    delta_link: str | None


class GraphClient:
    """GETs against one mailbox (`/me`, or `/users/{mailbox}` for app-only access)."""

    def __init__(
        self,
        account: AccountConfig,
        tokens: TokenSource,
        session: requests.Session,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from keepwarm.connectors.microsoft.auth import graph_root, is_app_only

        self.account = account
        self.tokens = tokens
        self.session = session
        self.root = graph_root(account)
        user = f"/users/{quote(account.mailbox or '', safe='@')}" if is_app_only(account) else "/me"
        self.base = self.root + user
        parts = urlsplit(self.root)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self._slots = mailbox_slots(self.base.lower())
        self._sleep = sleep
        self._count_lock = threading.Lock()
        self.requests = 0  # HTTP requests sent, for logs and tests

    def owns(self, url: str) -> bool:
        """Whether `url` is on this client's Graph root (a stored link from another is stale)."""
        return url.startswith(self.root + "/")

    def get(
        self, url: str, params: dict[str, str] | None = None, prefer: Sequence[str] = ()
    ) -> dict[str, Any]:
        """GET `url` (absolute, on the Graph root) and return the JSON object it answered."""
        import requests

        if not self.owns(url):
            raise SourceProblem(
                "Graph returned a link outside the configured Graph endpoint; refused",
                "check accounts.graph_endpoint",
            )
        headers = {"Accept": "application/json"}
        if prefer:
            headers["Prefer"] = ", ".join(prefer)
        refreshed = False
        wait_hint: float | None = None
        last = "no answer"
        pause = 0.0
        for attempt in range(MAX_ATTEMPTS):
            if pause:  # waits come between attempts, never after the last one
                self._sleep(pause)
            headers["Authorization"] = f"Bearer {self._bearer(force=False)}"
            try:
                with self._slots:
                    with self._count_lock:
                        self.requests += 1
                    response = self.session.get(url, params=params, headers=headers)
            except requests.exceptions.SSLError as exc:
                raise SourceProblem(
                    f"the certificate of {self.origin} cannot be verified",
                    "set accounts.ca_file to the CA bundle that signed it",
                ) from exc
            except requests.RequestException as exc:
                last, wait_hint, pause = type(exc).__name__, None, _backoff(attempt)
                continue
            if response.status_code == 200:
                return _json(response)
            if response.status_code == 401 and not refreshed:
                refreshed, pause = True, 0.0
                self._bearer(force=True)
                continue
            if response.status_code not in RETRIED:
                raise _error(response, self.account)
            wait_hint = _retry_after(response)
            last = f"HTTP {response.status_code} ({_code(response)})"
            if wait_hint is not None and wait_hint > MAX_WAIT:
                break
            log.info(
                "graph throttled or failing", status=response.status_code, retry_after=wait_hint
            )
            pause = wait_hint if wait_hint is not None else _backoff(attempt)
        raise TransientError(f"Graph at {self.origin} keeps failing: {last}", wait_hint)

    def pages(
        self, url: str, params: dict[str, str] | None = None, prefer: Sequence[str] = ()
    ) -> Iterator[Page]:
        """The pages of a collection from `url`; the query applies to the first request only
        (Graph encodes it into the links it returns)."""
        query = params
        while True:
            body = self.get(url, query, prefer)
            value = body.get("value")
            if not isinstance(value, list):
                raise TransientError(f"Graph at {self.origin} answered a page without a value")
            next_link = body.get("@odata.nextLink")
            delta_link = body.get("@odata.deltaLink")
            items = [item for item in value if isinstance(item, dict)]
            yield Page(
                items,
                next_link if isinstance(next_link, str) else None,
                delta_link if isinstance(delta_link, str) else None,
            )
            if not isinstance(next_link, str):
                return
            url, query = next_link, None

    def _bearer(self, *, force: bool) -> str:
        return self.tokens.token(force_refresh=force)


def _backoff(attempt: int) -> float:
    """Exponential backoff with equal jitter: half the step fixed, half random."""
    step = min(BACKOFF_CAP, BACKOFF_BASE * 2.0**attempt)
    return step / 2 + random.uniform(0, step / 2)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:  # a proxy's HTML error page, a cut-off answer
        raise TransientError(f"Graph answered something that is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise TransientError("Graph answered JSON that is not an object")
    return body


def _code(response: requests.Response) -> str:
    return _error_fields(response)[0]


def _error_fields(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
        return str(error.get("code") or "unknown"), str(error.get("message") or "")[:200]
    except (ValueError, AttributeError):
        return "unknown", ""


def _error(response: requests.Response, account: AccountConfig) -> ConnectorError:
    status = response.status_code
    code, message = _error_fields(response)
    said = f"HTTP {status}, {code}" + (f": {message}" if message else "")
    if status == 410 or code.lower() in EXPIRED_CODES:
        return CursorExpired(f"Graph no longer has the delta state ({said})")
    if status == 401:
        from keepwarm.connectors.microsoft.auth import sign_in_fix

        return AuthError(
            f"Graph refused the sign-in of account {account.name!r} ({said})", sign_in_fix(account)
        )
    if status == 403:
        return AuthError(
            f"Graph denied account {account.name!r} access ({said})",
            "grant the app the permissions in docs/microsoft.md (admin consent for app-only"
            f" access), then `keepwarm auth microsoft {account.name}`",
        )
    if status == 404:
        return SourceProblem(
            f"Graph found no such mailbox, folder or calendar ({said})",
            "check accounts.mailbox, accounts.folders and accounts.calendars",
        )
    return SourceProblem(
        f"Graph refused a request ({said})",
        "check the account's settings; if they are right, report this line",
    )
