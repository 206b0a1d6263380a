"""Push: one thread per account whose connector can wait for news (IMAP IDLE).

A watcher keeps its own connector (its own connection) and calls `wait_for_change` with short
timeouts, so it notices the stop signal within `STEP` seconds without a round trip each time
(IDLE stays open between calls). News wakes the account in the scheduler; a failure closes the
connector and retries later with backoff, quietly: the account's regular polls report errors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from functools import partial
from typing import Protocol, runtime_checkable

import structlog

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import Connector, ConnectorContext, create
from keepwarm.errors import KeepwarmError

log = structlog.get_logger(__name__)

STEP = 1.0  # seconds per wait: how soon a watcher notices its stop signal
RETRY_MIN, RETRY_MAX = 5.0, 600.0  # seconds between attempts after a failed watch


@runtime_checkable
class Pushing(Protocol):
    """A connector that can block until its source has news."""

    def wait_for_change(self, timeout: float, cursor: str | None = None) -> bool: ...


class Watcher:
    """Watches one account on a daemon thread until `stop()`."""

    def __init__(
        self,
        account: AccountConfig,
        context: ConnectorContext,
        cursor: Callable[[], str | None],
        on_news: Callable[[str], None],
    ) -> None:
        self.account = account
        self._context = context
        self._cursor = cursor  # the stored cursor, read when a watch (re)starts
        self._on_news = on_news
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"push:{account.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        retry = RETRY_MIN
        while not self._stop.is_set():
            connector: Connector | None = None
            try:
                connector = create(self.account, self._context)
                if not isinstance(connector, Pushing):
                    return
                cursor = self._cursor()
                while not self._stop.is_set():
                    if connector.wait_for_change(STEP, cursor):
                        log.debug("push: news", account=self.account.name)
                        self._on_news(self.account.name)
                    cursor = None  # the watch keeps its own baseline from here on
                    retry = RETRY_MIN
            except (KeepwarmError, OSError) as exc:
                log.debug("push: watch failed", account=self.account.name, error=str(exc))
            except Exception:  # a bug in a watcher must not end the service's push for good
                log.exception("push: watcher crashed", account=self.account.name)
            finally:
                if connector is not None:
                    connector.close()
            self._stop.wait(retry)
            retry = min(retry * 2, RETRY_MAX)


def can_push(account: AccountConfig) -> bool:
    """Whether this account's kind has a push channel (checked without connecting)."""
    return account.kind == "imap" and account.idle


class Watchers:
    """The running watchers, one per account, and the news they reported since last asked."""

    def __init__(
        self,
        context: Callable[[], ConnectorContext],
        cursor: Callable[[str], str | None],
        wake: Callable[[], None],
    ) -> None:
        self._context = context
        self._cursor = cursor
        self._wake = wake  # tells the loop to look now
        self._running: dict[str, tuple[AccountConfig, Watcher]] = {}
        self._lock = threading.Lock()
        self._news: set[str] = set()

    def keep(self, wanted: Mapping[str, AccountConfig]) -> None:
        """Watch exactly these accounts; a changed account config restarts its watcher."""
        for name, (account, watcher) in list(self._running.items()):
            if wanted.get(name) != account:
                watcher.stop()
                del self._running[name]
        for name, account in wanted.items():
            if name not in self._running:
                cursor = partial(self._cursor, name)
                watcher = Watcher(account, self._context(), cursor, self._on_news)
                self._running[name] = (account, watcher)
                watcher.start()

    def news(self) -> set[str]:
        """Accounts with news since the last call."""
        with self._lock:
            news, self._news = self._news, set()
        return news

    def stop_all(self) -> None:
        self.keep({})

    def _on_news(self, name: str) -> None:
        """From a watcher thread: new mail; the loop wakes the account on its next round."""
        with self._lock:
            self._news.add(name)
        self._wake()
