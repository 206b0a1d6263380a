"""Push: one thread per account whose connector can wait for news (IMAP IDLE).

A watcher keeps its own connector (its own connection) and calls `wait_for_change` with short
timeouts, so it notices the stop signal within `STEP` seconds without a round trip each time
(IDLE stays open between calls). News wakes the account in the scheduler; a failure closes the
connector and retries later with backoff, quietly: the account's regular polls report errors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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
