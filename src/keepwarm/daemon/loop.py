"""`keepwarm run`: poll each account on its own schedule until SIGTERM.

A first service loop: per-account intervals with jitter, exponential backoff on failures,
SIGTERM/SIGINT stop after the account being polled, SIGHUP reloads the config (keeping the old
one if the new one is invalid). Leases, systemd notify and push sources build on this.
"""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType

import structlog

from keepwarm.config.schema import AccountConfig, Config
from keepwarm.daemon.digest_due import send_if_due
from keepwarm.daemon.sync import sync_all
from keepwarm.errors import ConfigError
from keepwarm.store import Store

log = structlog.get_logger(__name__)

MAX_BACKOFF = timedelta(hours=1)


@dataclass(slots=True)
class _Schedule:
    due: datetime
    failures: int = 0


@dataclass
class Service:
    """The long-running loop over one store and a reloadable config."""

    store: Store
    config: Config
    reload: Callable[[], Config]  # reads the config file again (SIGHUP)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    _stop: threading.Event = field(default_factory=threading.Event)
    _reload_requested: bool = False
    _schedules: dict[str, _Schedule] = field(default_factory=dict)

    def run(self) -> None:
        """Poll until stopped; returns after the current account finishes."""
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        log.info("service started", accounts=len(self.config.accounts))
        while not self._stop.is_set():
            if self._reload_requested:
                self._do_reload()
            for account in self._due():
                if self._stop.is_set():
                    break
                self._poll(account)
            if not self._stop.is_set():  # after the polls, so a digest sent on wake is fresh
                send_if_due(self.store, self.config, self.now())
            self._stop.wait(self._sleep_seconds())
        log.info("service stopped")

    def stop(self) -> None:
        self._stop.set()

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        log.info("stop requested", signal=signal.Signals(signum).name)
        self._stop.set()

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        # The loop sleeps in steps of at most a second, so it picks the flag up promptly.
        self._reload_requested = True

    def _do_reload(self) -> None:
        self._reload_requested = False
        try:
            self.config = self.reload()
        except ConfigError as exc:
            log.error("config reload failed; keeping the running config", problems=exc.problems)
            return
        log.info("config reloaded", accounts=len(self.config.accounts))

    def _due(self) -> list[AccountConfig]:
        now = self.now()
        due = []
        for account in self.config.accounts:
            if not account.enabled:
                continue
            schedule = self._schedules.setdefault(account.name, _Schedule(due=now))
            if schedule.due <= now:
                due.append(account)
        return due

    def _poll(self, account: AccountConfig) -> None:
        (result,) = sync_all(self.store, self.config, names=[account.name], now=self.now)
        schedule = self._schedules[account.name]
        interval = timedelta(seconds=self._interval(account))
        if result.ok:
            if schedule.failures:
                log.info("account recovered", account=account.name)
            schedule.failures = 0
            wait = interval
        else:
            schedule.failures += 1
            # Transient failures back off exponentially from a minute; others wait an interval.
            base = timedelta(minutes=1) * 2 ** (schedule.failures - 1)
            wait = min(base, MAX_BACKOFF) if result.error_kind == "transient" else interval
        jitter = wait * self.config.daemon.jitter * random.random()
        schedule.due = self.now() + wait + jitter

    def _interval(self, account: AccountConfig) -> int:
        if account.interval_seconds:
            return account.interval_seconds
        daemon = self.config.daemon
        return daemon.mail_interval if account.is_mail else daemon.calendar_interval

    def _sleep_seconds(self) -> float:
        if not self._schedules:
            return 1.0
        soonest = min(s.due for s in self._schedules.values())
        return max(0.0, min(1.0, (soonest - self.now()).total_seconds()))
