"""The service's accounts: which it holds (leases), when each polls, push and parking.

`Polls` is the per-account half of `keepwarm run` (the loop in `loop.py` is the other): each
round it claims this worker's share, keeps the push watchers on what it holds, starts the
polls that are due as jobs and reads their outcomes back into the schedule.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from functools import partial

import structlog

from keepwarm.config.schema import AccountConfig, Config
from keepwarm.connectors.base import ConnectorContext
from keepwarm.daemon.ingest import SyncResult, sync_account
from keepwarm.daemon.jobs import Done, Jobs
from keepwarm.daemon.metrics import Metrics
from keepwarm.daemon.parking import fingerprint
from keepwarm.daemon.push import Watchers, can_push
from keepwarm.daemon.scheduler import Scheduler
from keepwarm.daemon.sync import state_dir
from keepwarm.daemon.team import LeaseKeeper, default_worker_id
from keepwarm.detect.headers import WANTED
from keepwarm.errors import StoreError
from keepwarm.store import Store
from keepwarm.store.leases import Lease

log = structlog.get_logger(__name__)


class Polls:
    """Leases, schedules, push watchers and poll jobs of one worker; see the module docstring."""

    def __init__(
        self,
        store: Store,
        config: Config,
        jobs: Jobs,
        *,
        now: Callable[[], datetime],
        clock: Callable[[], float],
        metrics: Metrics,
        stopping: threading.Event,
        wake: Callable[[], None],
    ) -> None:
        self.store, self.config, self.jobs = store, config, jobs
        self.now, self.clock, self.metrics, self.stopping = now, clock, metrics, stopping
        daemon = config.daemon
        self.scheduler = Scheduler(jitter=daemon.jitter, backoff_min=daemon.backoff_min)
        self.keeper = LeaseKeeper(
            store,
            daemon.worker_id or default_worker_id(),
            timedelta(seconds=daemon.lease_seconds),
            now=now,
        )
        self.watchers = Watchers(self.context, store.cursor, wake)
        self.held: set[str] = set()  # accounts this worker holds a lease on
        self.polled: set[str] = set()  # accounts polled (or failed) since start
        self._next_renew = 0.0

    # -- each round --------------------------------------------------------------------------

    def round(self, now: float) -> None:
        """Claim, unpark, keep watchers, wake what push reported, start what is due."""
        self._claim()
        self.scheduler.keep(self.held, now)
        self._unpark_changed(now)
        self._keep_watchers()
        for name in self.watchers.news():
            self.scheduler.wake(name, now)
        self._dispatch(now)

    def reconfigure(self, config: Config) -> None:
        """A reloaded config: new timings, and every parked account gets another try."""
        self.config = config
        self.scheduler.jitter = config.daemon.jitter
        self.scheduler.backoff_min = config.daemon.backoff_min
        now = self.clock()
        for name in self.scheduler.parked():
            self.scheduler.unpark(name, now)

    def enabled(self) -> list[AccountConfig]:
        return [a for a in self.config.accounts if a.enabled]

    def context(self) -> ConnectorContext:
        return ConnectorContext(
            state_dir=state_dir(self.config.store.url), now=self.now, wanted_headers=WANTED
        )

    def _account(self, name: str) -> AccountConfig | None:
        return next((a for a in self.config.accounts if a.name == name), None)

    def _claim(self) -> None:
        """Take this worker's share of the accounts (alone: all of them), renew what it holds."""
        names = [a.name for a in self.enabled()]
        try:
            if self._next_renew <= self.clock():
                self._next_renew = self.clock() + self.keeper.renew_interval.total_seconds()
                lost = self.keeper.renew()
                if lost:
                    log.warning("leases lost to other workers", accounts=sorted(lost))
            held = self.keeper.claim(names, busy=self.scheduler.running())
        except StoreError as exc:  # leases run out on their own; what is held stays valid
            log.warning("could not renew leases", error=str(exc))
            held = self.keeper.held()
        if set(held) != self.held:
            log.info("accounts held", accounts=sorted(held), worker_id=self.keeper.owner)
        self.held = set(held)

    def _dispatch(self, now: float) -> None:
        free = self.config.daemon.workers - self.jobs.count("poll:")
        for name in self.scheduler.due(now)[: max(free, 0)]:
            account = self._account(name)
            lease = self.keeper.lease(name)
            if account is None or lease is None:
                continue
            self.scheduler.started(name)
            self.jobs.submit(f"poll:{name}", partial(self._poll, account, self.config, lease))

    def _poll(self, account: AccountConfig, config: Config, lease: Lease) -> SyncResult:
        with structlog.contextvars.bound_contextvars(job="poll"):
            return sync_account(
                self.store,
                config,
                account,
                self.context(),
                now=self.now,
                stop=self.stopping.is_set,
                lease=lease,
            )

    # -- outcomes ----------------------------------------------------------------------------

    def finished(self, name: str, done: Done) -> bool:
        """Read a poll's outcome into the schedule; True when it stored new touchpoints."""
        now = self.clock()
        self.polled.add(name)
        account = self._account(name)
        result: SyncResult | None = done.value if done.error is None else None
        if account is None:
            self.scheduler.release(name)
            return False
        if result is None:  # a bug or the store failing: back off like a network failure
            self.scheduler.finished(name, now, ok=False, interval=0, transient=True)
            self.metrics.poll_finished(name, account.kind, False, "error", 0, 0, done.seconds)
            return False
        if not result.stopped and result.error_kind != "lease":
            self.metrics.poll_finished(
                name,
                account.kind,
                result.ok,
                result.error_kind,
                result.new,
                result.items,
                done.seconds,
            )
        if result.stopped:
            self.scheduler.release(name)
        elif result.error_kind == "lease":
            self.scheduler.release(name)
            self.held.discard(name)
        elif result.error_kind == "auth":
            self.scheduler.park(name, self._sign_in(account), result.error or "")
            log.warning(
                "account parked until its sign-in is renewed", account=name, error=result.error
            )
        else:
            self.scheduler.finished(
                name,
                now,
                ok=result.ok,
                interval=self._interval(account),
                transient=result.error_kind == "transient",
            )
        return result.new > 0

    def _interval(self, account: AccountConfig) -> float:
        if account.interval_seconds:
            return float(account.interval_seconds)
        daemon = self.config.daemon
        return float(daemon.mail_interval if account.is_mail else daemon.calendar_interval)

    # -- parking (AuthError) and push ----------------------------------------------------------

    def _sign_in(self, account: AccountConfig) -> Hashable:
        return fingerprint(account, state_dir(self.config.store.url))

    def _unpark_changed(self, now: float) -> None:
        for name, parked_as in self.scheduler.parked().items():
            account = self._account(name)
            if account is not None and self._sign_in(account) != parked_as:
                log.info("account unparked: its config or sign-in changed", account=name)
                self.scheduler.unpark(name, now)

    def _keep_watchers(self) -> None:
        """One watcher per pushing account this worker holds and has not parked."""
        wanted: dict[str, AccountConfig] = {}
        if self.config.daemon.push and not self.stopping.is_set():
            parked = self.scheduler.parked()
            wanted = {
                a.name: a
                for a in self.enabled()
                if can_push(a) and a.name in self.held and a.name not in parked
            }
        self.watchers.keep(wanted)

    # -- the end -----------------------------------------------------------------------------

    def status_line(self) -> str:
        parked = len(self.scheduler.parked())
        running = len(self.scheduler.running())
        due = self.scheduler.next_due()
        wait = "" if due is None else f", next poll in {max(0, round(due - self.clock()))} s"
        count = len(self.held)
        return (
            f"{count} account{'' if count == 1 else 's'}, {running} polling, {parked} parked{wait}"
        )

    def release(self) -> None:
        """At a stop: hand the leases back, unless a stuck poll still runs (then they expire)."""
        self.watchers.stop_all()
        if self.jobs.count("poll:"):
            return
        try:
            self.keeper.release_all()
        except StoreError as exc:
            log.warning("could not hand the leases back; they run out", error=str(exc))
