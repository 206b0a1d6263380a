"""Google's quotas are the physical limit of a sync: count them, stay under them, back off.

Gmail charges quota units per method (the published table below; a batch charges each call in
it) and allows 15,000 units per user per minute (250 a second on average); Calendar allows 600
requests per user per minute. A token bucket per user keeps us under the rate, so that a long
backfill runs at the limit instead of into it. When Google still says "slow down" — 429, or 403
with reason `rateLimitExceeded` / `userRateLimitExceeded` — we wait (exponential backoff with
full jitter, at least the Retry-After it sent) and try again; 5xx and network failures get a few
tries too. Any other 4xx is an answer, not a hiccup: it is never retried.

httplib2 and googleapiclient are imported where a request is answered, not at import: every
command and the daemon import this package (the connector registry), most never call Google.
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from keepwarm.errors import TransientError

if TYPE_CHECKING:
    from googleapiclient.errors import HttpError

# developers.google.com/gmail/api/reference/quota; methods we do not call are left out.
GMAIL_UNITS = {
    "gmail.users.getProfile": 1,
    "gmail.users.messages.list": 5,
    "gmail.users.messages.get": 5,
    "gmail.users.history.list": 2,
    "gmail.users.settings.sendAs.list": 1,
}
# Google's per-user limits are per minute: 15,000 Gmail units, 600 Calendar requests. A bucket
# of rate r and burst b spends at most b + 60 r in any minute, so r sits a little under limit/60.
GMAIL_LIMIT = 15_000 / 60  # quota units per user per second, as Google publishes it
GMAIL_RATE, GMAIL_BURST = 240.0, 250.0  # 250 + 60 * 240 = 14,650 <= 15,000
CALENDAR_RATE, CALENDAR_BURST = 9.5, 10.0  # 10 + 60 * 9.5 = 580 <= 600
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


def network_errors() -> tuple[type[BaseException], ...]:
    """What a request raises when the network, not Google, failed."""
    import httplib2

    return (httplib2.HttpLib2Error, OSError, socket.timeout)


def error_reasons(exc: HttpError) -> list[str]:
    """The `reason`s of Google's JSON error body (`error.errors[].reason`), if any."""
    try:
        body = json.loads(exc.content or b"{}")
        errors = body.get("error", {}).get("errors", [])
        return [str(e.get("reason", "")) for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError):
        return []


def status_of(exc: HttpError) -> int:
    """The HTTP status (0 for a batch answer that could not be parsed)."""
    return int(getattr(exc.resp, "status", 0) or 0)


def is_rate_limit(exc: HttpError) -> bool:
    status = status_of(exc)
    return status == 429 or (status == 403 and bool(RATE_REASONS & set(error_reasons(exc))))


def is_retryable(exc: HttpError) -> bool:
    """Rate limits, server errors and garbled batch answers; never another 4xx."""
    from googleapiclient.errors import BatchError

    return isinstance(exc, BatchError) or is_rate_limit(exc) or status_of(exc) >= 500


def retry_after(exc: HttpError) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    value = exc.resp.get("retry-after") if exc.resp is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass
class TokenBucket:
    """`rate` units a second, bursts up to `capacity`; `take` waits until the units are there."""

    rate: float
    capacity: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _level: float = field(default=-1.0, repr=False)
    _at: float = field(default=0.0, repr=False)

    def take(self, units: float) -> float:
        """Spend `units` (a batch may need more than `capacity`: it waits for the rest)."""
        now = self.clock()
        if self._level < 0:
            self._level, self._at = self.capacity, now
        self._level = min(self.capacity, self._level + (now - self._at) * self.rate)
        self._at = now
        self._level -= units
        if self._level >= 0:
            return 0.0
        wait = -self._level / self.rate
        self.sleep(wait)
        self._at += wait
        self._level = 0.0
        return wait


@dataclass
class Pacer:
    """One user's calls: quota counted, the bucket respected, throttling and 5xx retried."""

    bucket: TokenBucket
    attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 64.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random
    spent: Counter[str] = field(default_factory=Counter)  # quota units by method
    calls: Counter[str] = field(default_factory=Counter)
    throttled: int = 0  # answers that said "slow down"
    waited: float = 0.0  # seconds slept: bucket and backoff

    max_hint: float = 120.0  # a longer Retry-After ends the poll: the daemon waits instead

    @classmethod
    def for_rate(
        cls,
        rate: float,
        burst: float | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> Pacer:
        """A pacer for `rate` units a second, bursts of `burst` (default: one second's)."""
        bucket = TokenBucket(rate, burst or rate, clock=clock, sleep=sleep)
        return cls(bucket, sleep=sleep, **options)

    def execute(self, request: Any, method: str, units: int) -> Any:
        """Run a googleapiclient request (or batch: `units` counts its calls) with retries."""
        from googleapiclient.errors import HttpError

        network = network_errors()
        for attempt in range(self.attempts):
            self.waited += self.bucket.take(units)
            self.spent[method] += units
            self.calls[method] += 1
            try:
                return request.execute()
            except HttpError as exc:
                if not is_retryable(exc) or attempt == self.attempts - 1:
                    raise
                self.backoff(attempt, retry_after(exc), rate_limited=is_rate_limit(exc))
            except ssl.SSLCertVerificationError:
                raise  # a certificate we cannot trust now will not be trusted in a second
            except network as exc:
                if attempt >= 2:  # a dead network is not worth six tries: the daemon retries
                    raise TransientError(f"cannot reach Google: {_short(exc)}") from exc
                self.backoff(attempt, None)
        raise AssertionError("unreachable")  # pragma: no cover

    def backoff(self, attempt: int, hint: float | None, *, rate_limited: bool = True) -> None:
        """Sleep before try `attempt + 1`: full jitter, never less than the server's hint.

        Raises TransientError (with the hint) when the server asks for more than `max_hint`.
        """
        if rate_limited:
            self.throttled += 1
        if hint is not None and hint > self.max_hint:
            raise TransientError(f"Google asks to wait {hint:.0f} s", retry_after=hint)
        delay = self.jitter() * min(self.max_delay, self.base_delay * 2**attempt)
        delay = max(delay, hint or 0.0)
        self.waited += delay
        self.sleep(delay)


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
