"""The optional Prometheus endpoint (`daemon.metrics_listen`): what the service does, per account.

prometheus-client's own threaded HTTP server serves `/metrics` on a loopback address only (it has
no authentication). The metrics live in a registry of their own, not the library's global one,
so nothing else in the process adds to them and every `Metrics` starts from zero. The service
records; nothing here reads the store. Names follow Prometheus conventions: counters end in
`_total`, durations in `_seconds`, instants in `_timestamp_seconds` (Unix time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from keepwarm.config.checks import parse_listen
from keepwarm.errors import ConfigError
from keepwarm.store.accounts import AccountState

log = structlog.get_logger(__name__)

KEY = "daemon.metrics_listen"
ERROR_KINDS = ("auth", "transient", "error")  # SyncResult.error_kind
# From a quiet Maildir (well under a second) to an IMAP backfill of a large mailbox (an hour).
SYNC_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0)
_ACCOUNT = ("account", "kind")


class Metrics:
    """Recorded by the service loop, scraped over HTTP once `start` has run."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.registry = r = CollectorRegistry()
        self._syncs = Counter(
            "keepwarm_syncs",
            "Polls of an account that finished, failed or not",
            _ACCOUNT,
            registry=r,
        )
        self._errors = Counter(
            "keepwarm_sync_errors",
            "Polls that failed, by kind: auth (needs the user), "
            "transient (retried with backoff), error",
            (*_ACCOUNT, "error_kind"),
            registry=r,
        )
        self._items = Counter(
            "keepwarm_items_read",
            "Messages and events read from the source",
            _ACCOUNT,
            registry=r,
        )
        self._new = Counter(
            "keepwarm_touchpoints_new",
            "Touchpoints the event log did not hold yet",
            _ACCOUNT,
            registry=r,
        )
        self._duration = Histogram(
            "keepwarm_sync_duration_seconds",
            "How long one poll of an account took",
            _ACCOUNT,
            buckets=SYNC_BUCKETS,
            registry=r,
        )
        self._failing = Gauge(
            "keepwarm_account_failing",
            "1 while the account's last poll failed",
            _ACCOUNT,
            registry=r,
        )
        self._touchpoints = Gauge(
            "keepwarm_touchpoints", "Touchpoints in the event log", registry=r
        )
        self._up = Gauge("keepwarm_up", "1 once the service has done its first round", registry=r)
        Info("keepwarm_build", "The running keepwarm", registry=r).info({"version": _version()})
        self._times = _Times(clock)
        r.register(self._times)
        ProcessMetrics(registry=r)  # memory, CPU time, open files and start of this process
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- what the loop records -----------------------------------------------------------------

    def poll_finished(
        self,
        account: str,
        kind: str,
        ok: bool,
        error_kind: str | None,
        new: int,
        items: int,
        seconds: float,
    ) -> None:
        """One poll of `account` ended: `new` touchpoints stored from `items` read."""
        labels = (account, kind)
        self._syncs.labels(*labels).inc()
        for each in ERROR_KINDS:  # present at 0 from the first poll, so rate() sees the first one
            self._errors.labels(*labels, each)
        if not ok:
            self._errors.labels(*labels, error_kind or "error").inc()
        self._items.labels(*labels).inc(items)
        self._new.labels(*labels).inc(new)
        self._duration.labels(*labels).observe(seconds)
        self._failing.labels(*labels).set(0 if ok else 1)
        if ok:
            self._times.synced(account, self._times.clock())

    def account_lag(self, account: str, seconds: float) -> None:
        """The account's last good sync was `seconds` ago (e.g. from the store at start)."""
        self._times.synced(account, self._times.clock() - seconds)

    def digest_sent(self, at: datetime) -> None:
        self._times.digest = at.timestamp()

    def touchpoints_total(self, n: int) -> None:
        """The event log's size: the sum of the accounts' touchpoint counts (no log scan)."""
        self._touchpoints.set(n)

    def seed(self, states: Iterable[AccountState], now: datetime) -> None:
        """What the store already knows: each account's last good sync and the log's size."""
        total = 0
        for state in states:
            total += state.touchpoints
            if state.last_sync is not None:
                self.account_lag(state.name, (now - state.last_sync).total_seconds())
        self.touchpoints_total(total)

    def up(self) -> None:
        self._up.set(1)

    # -- the endpoint --------------------------------------------------------------------------

    def start(self, listen: str) -> tuple[str, int]:
        """Serve `/metrics` on `listen` ("127.0.0.1:9464"); returns the address bound.

        Raises `ConfigError` naming `daemon.metrics_listen` for a non-loopback or malformed
        address, or one that cannot be bound (in use, no such address). Starting again moves
        the endpoint.
        """
        try:
            host, port = parse_listen(listen)
        except ValueError as exc:
            raise ConfigError([f"{KEY}: {exc}"]) from None
        self.stop()
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise ConfigError([f"{KEY}: cannot listen on {listen}: {why}"]) from None
        bound = int(self._server.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        log.info("metrics endpoint listening", url=f"http://{shown}:{bound}/metrics")
        return host, bound

    def stop(self) -> None:
        """Stop serving (the metrics are kept)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None


class _Times:
    """Instants, exposed only once known: an absent series says "never" better than a 0 would.

    The lag is computed at scrape time, so it grows while an account is stuck.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.digest: float | None = None
        self._synced: dict[str, float] = {}
        self._lock = threading.Lock()

    def synced(self, account: str, at: float) -> None:
        with self._lock:
            self._synced[account] = at

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            synced = sorted(self._synced.items())
        now = self.clock()
        last = GaugeMetricFamily(
            "keepwarm_account_last_sync_timestamp_seconds",
            "When the account last synced without error (Unix time)",
            labels=["account"],
        )
        lag = GaugeMetricFamily(
            "keepwarm_account_lag_seconds",
            "Seconds since the account last synced without error",
            labels=["account"],
        )
        for account, at in synced:
            last.add_metric([account], at)
            lag.add_metric([account], max(0.0, now - at))
        yield last
        yield lag
        if self.digest is not None:
            yield GaugeMetricFamily(
                "keepwarm_digest_last_sent_timestamp_seconds",
                "When the service last sent the digest (Unix time)",
                value=self.digest,
            )


class ProcessMetrics(ProcessCollector):
    """The library's process metrics, with the boot time from the clocks: the unit's
    ProcSubset=pid hides /proc/stat, where the library reads it, and without it reports none."""

    def _boot_time(self) -> float:
        return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def _version() -> str:
    try:
        return version("keepwarm")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"
