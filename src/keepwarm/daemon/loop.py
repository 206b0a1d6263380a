"""`keepwarm run`: the service. One loop schedules; jobs on threads do the work.

The loop never blocks on a server or a long fold: it collects finished jobs, renews leases,
starts the polls that are due (at most `daemon.workers` at once, one per account), keeps push
watchers on the accounts it holds, and starts the projection, the status check and the digest
as single-flight jobs. So a slow or broken account holds one slot and delays nobody, the
watchdog is pinged on time, and SIGTERM is answered within a second:

- SIGTERM/SIGINT: no new job; polls stop after the batch in flight; the loop waits up to
  `daemon.stop_timeout` seconds, hands its leases back and exits 0. What a killed job left
  undone is redone on the next start (cursors move with their batches; the pending list
  brings the projection up to date).
- SIGHUP: the config is read and validated again; a bad one is refused with its problems and
  the running one kept. A reload also unparks accounts stopped by an AuthError.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import FrameType

import structlog

from keepwarm.config.schema import AccountConfig, Config
from keepwarm.connectors.base import ConnectorContext
from keepwarm.daemon import project
from keepwarm.daemon.digest_due import Outcome, send_if_due
from keepwarm.daemon.ingest import SyncResult, sync_account
from keepwarm.daemon.jobs import Done, Jobs
from keepwarm.daemon.metrics import Metrics
from keepwarm.daemon.notify import Notifier
from keepwarm.daemon.push import Watcher, can_push
from keepwarm.daemon.scheduler import Scheduler
from keepwarm.daemon.status_check import record_status_changes
from keepwarm.daemon.sync import state_dir
from keepwarm.daemon.team import LeaseKeeper, default_worker_id
from keepwarm.detect.headers import WANTED
from keepwarm.errors import ConfigError, StoreError
from keepwarm.store import Store
from keepwarm.store.leases import Lease

log = structlog.get_logger(__name__)

PROMOTE_EVERY = 60.0  # seconds: planned meetings whose time came join the log
DIGEST_EVERY = 30.0  # seconds between cheap "is the digest due?" checks
STATUS_AFTER_NEWS = 60.0  # seconds: soonest status check after the projection changed states
STATUS_LINE_EVERY = 10.0  # seconds between STATUS= updates to systemd
# The digest waits for every account's first poll since start, but no longer than this (an
# account no worker can poll must not hold the week's digest back for good).
DIGEST_WAIT_MAX = timedelta(minutes=30)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Service:
    """The long-running loop over one store and a reloadable config."""

    store: Store
    config: Config
    reload: Callable[[], Config]  # reads the config file again (SIGHUP)
    now: Callable[[], datetime] = _utcnow
    clock: Callable[[], float] = time.monotonic
    notifier: Notifier = field(default_factory=Notifier)
    metrics: Metrics = field(default_factory=Metrics)
    _stop: threading.Event = field(default_factory=threading.Event)
    _wake: threading.Event = field(default_factory=threading.Event)
    _reload_requested: bool = False

    def __post_init__(self) -> None:
        daemon = self.config.daemon
        self._scheduler = Scheduler(jitter=daemon.jitter, backoff_min=daemon.backoff_min)
        self._jobs = Jobs(self._wake)
        self._watchers: dict[str, tuple[AccountConfig, Watcher]] = {}
        self._polled: set[str] = set()  # accounts polled (or failed) since start
        self._projection_due = True  # start by catching up on what a crash left pending
        self._next = dict.fromkeys(("promote", "status", "digest", "line", "dog", "renew"), 0.0)
        self._ready = False
        self._keeper = LeaseKeeper(
            self.store,
            daemon.worker_id or default_worker_id(),
            timedelta(seconds=daemon.lease_seconds),
            now=self.now,
        )
        self._held: set[str] = set()  # accounts this worker holds a lease on
        self._listening = ""  # the metrics address being served
        self._started = self.now()
        self._news_lock = threading.Lock()
        self._news: set[str] = set()  # accounts a push watcher reported news for

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until stopped; returns once the jobs in flight ended or the stop timeout passed."""
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        self._started = self.now()
        self._serve_metrics()  # a bad address is a ConfigError: the service does not start
        log.info(
            "service started",
            accounts=len(self._enabled()),
            workers=self._workers,
            worker_id=self._keeper.owner,
        )
        try:
            while not self._stop.is_set():
                self._round()
                self._wake.wait(self._sleep_seconds())
                self._wake.clear()
        finally:
            self._shutdown()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _round(self) -> None:
        if self._reload_requested:
            self._do_reload()
        for done in self._jobs.finished():
            self._finished(done)
        now = self.clock()
        self._claim()
        self._scheduler.keep(self._held, now)
        self._unpark_changed(now)
        self._keep_watchers()
        self._dispatch(now)
        self._background(now)
        if not self._ready:
            self._ready = True
            self.notifier.ready(self._status_line())
            self.metrics.up()
        self._heartbeat(now)

    # -- polls -------------------------------------------------------------------------------

    @property
    def _workers(self) -> int:
        return self.config.daemon.workers

    def _enabled(self) -> list[AccountConfig]:
        return [a for a in self.config.accounts if a.enabled]

    def _account(self, name: str) -> AccountConfig | None:
        return next((a for a in self.config.accounts if a.name == name), None)

    def _context(self) -> ConnectorContext:
        return ConnectorContext(
            state_dir=state_dir(self.config.store.url), now=self.now, wanted_headers=WANTED
        )

    def _claim(self) -> None:
        """Take this worker's share of the accounts (alone: all of them), renew what it holds."""
        names = [a.name for a in self._enabled()]
        try:
            if self._next["renew"] <= self.clock():
                self._next["renew"] = self.clock() + self._keeper.renew_interval.total_seconds()
                lost = self._keeper.renew()
                if lost:
                    log.warning("leases lost to other workers", accounts=sorted(lost))
            held = self._keeper.claim(names, busy=self._scheduler.running())
        except StoreError as exc:  # leases run out on their own; what is held stays valid
            log.warning("could not renew leases", error=str(exc))
            held = self._keeper.held()
        if set(held) != self._held:
            log.info("accounts held", accounts=sorted(held), worker_id=self._keeper.owner)
        self._held = set(held)

    def _dispatch(self, now: float) -> None:
        free = self._workers - self._jobs.count("poll:")
        for name in self._scheduler.due(now)[: max(free, 0)]:
            account = self._account(name)
            lease = self._keeper.lease(name)
            if account is None or lease is None:
                continue
            self._scheduler.started(name)
            self._jobs.submit(f"poll:{name}", partial(self._poll, account, self.config, lease))

    def _poll(self, account: AccountConfig, config: Config, lease: Lease) -> SyncResult:
        with structlog.contextvars.bound_contextvars(job="poll"):
            return sync_account(
                self.store,
                config,
                account,
                self._context(),
                now=self.now,
                stop=self._stop.is_set,
                lease=lease,
            )

    def _finished(self, done: Done) -> None:
        kind, _, name = done.key.partition(":")
        if done.error is not None:
            log.error(
                "job failed", job=done.key, error=f"{type(done.error).__name__}: {done.error}"
            )
        if kind == "poll":
            self._poll_finished(name, done)
        elif kind == "project":
            if done.error is not None:
                self._projection_due = True  # the pending list still holds the work
            elif done.value:
                self._next["status"] = min(self._next["status"], self.clock() + STATUS_AFTER_NEWS)
        elif kind == "digest" and done.error is None and done.value is not None:
            log.debug("digest checked", status=done.value.status)
            if done.value.status == "sent":
                self.metrics.digest_sent(self.now())

    def _poll_finished(self, name: str, done: Done) -> None:
        now = self.clock()
        self._polled.add(name)
        account = self._account(name)
        result: SyncResult | None = done.value if done.error is None else None
        if account is None:
            self._scheduler.release(name)
            return
        if result is None:  # a bug or the store failing: back off like a network failure
            self._scheduler.finished(name, now, ok=False, interval=0, transient=True)
            self.metrics.poll_finished(name, account.kind, False, "error", 0, 0, done.seconds)
            return
        if result.new:
            self._projection_due = True
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
            self._scheduler.release(name)
        elif result.error_kind == "lease":
            self._scheduler.release(name)
            self._held.discard(name)
        elif result.error_kind == "auth":
            self._scheduler.park(name, self._fingerprint(account), result.error or "")
            log.warning(
                "account parked until its sign-in is renewed", account=name, error=result.error
            )
        else:
            self._scheduler.finished(
                name,
                now,
                ok=result.ok,
                interval=self._interval(account),
                transient=result.error_kind == "transient",
            )

    def _interval(self, account: AccountConfig) -> float:
        if account.interval_seconds:
            return float(account.interval_seconds)
        daemon = self.config.daemon
        return float(daemon.mail_interval if account.is_mail else daemon.calendar_interval)

    # -- parking (AuthError) -----------------------------------------------------------------

    def _fingerprint(self, account: AccountConfig) -> object:
        """What must change before a parked account is worth trying again: its config, or any
        token file (`keepwarm auth` rewrites them) or its password file."""
        files = []
        tokens = state_dir(self.config.store.url) / "tokens"
        paths = sorted(tokens.glob("*")) if tokens.is_dir() else []
        if account.password_file:
            paths.append(Path(account.password_file).expanduser())
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((str(path), stat.st_mtime_ns, stat.st_size))
        return (account, tuple(files))

    def _unpark_changed(self, now: float) -> None:
        for name, fingerprint in self._scheduler.parked().items():
            account = self._account(name)
            if account is not None and self._fingerprint(account) != fingerprint:
                log.info("account unparked: its config or sign-in changed", account=name)
                self._scheduler.unpark(name, now)

    # -- push --------------------------------------------------------------------------------

    def _keep_watchers(self) -> None:
        wanted: dict[str, AccountConfig] = {}
        if self.config.daemon.push and not self._stop.is_set():
            parked = self._scheduler.parked()
            wanted = {
                a.name: a
                for a in self._enabled()
                if can_push(a) and a.name in self._held and a.name not in parked
            }
        for name, (account, watcher) in list(self._watchers.items()):
            if wanted.get(name) != account:
                watcher.stop()
                del self._watchers[name]
        for name, account in wanted.items():
            if name not in self._watchers:
                watcher = Watcher(account, self._context(), partial(self.store.cursor, name),
                                  self._on_news)  # fmt: skip
                self._watchers[name] = (account, watcher)
                watcher.start()

    def _on_news(self, name: str) -> None:
        """From a watcher thread: new mail; the loop wakes the account on its next round."""
        with self._news_lock:
            self._news.add(name)
        self._wake.set()

    # -- projection, status changes, digest ---------------------------------------------------

    def _background(self, now: float) -> None:
        with self._news_lock:
            news, self._news = self._news, set()
        for name in news:
            self._scheduler.wake(name, now)
        if news:
            self._dispatch(now)
        if now >= self._next["promote"]:
            self._next["promote"] = now + PROMOTE_EVERY
            self._projection_due = True
        if self._projection_due and not self._jobs.running("project"):
            self._projection_due = False
            self._jobs.submit("project", self._project)
        if now >= self._next["status"] and not self._jobs.running("status"):
            self._next["status"] = now + self.config.daemon.status_interval
            self._jobs.submit("status", self._status_check)
        if now >= self._next["digest"] and self._digest_may_go():
            self._next["digest"] = now + DIGEST_EVERY
            self._jobs.submit("digest", partial(self._send_digest, self.config))

    def _project(self) -> int:
        self.store.promote_planned(self.now())
        changed = project.catch_up(self.store, self.config)
        self.metrics.touchpoints_total(sum(s.touchpoints for s in self.store.account_states()))
        return changed

    def _status_check(self) -> int:
        return len(record_status_changes(self.store, self.config, self.now()))

    def _send_digest(self, config: Config) -> Outcome | None:
        """Send the digest if due, once the whole team has caught up (None: not yet)."""
        now = self.now()
        if now - self._started < DIGEST_WAIT_MAX and not self._team_caught_up():
            return None
        return send_if_due(self.store, config, now)

    def _team_caught_up(self) -> bool:
        """Every enabled account polled since this worker started (by whichever worker holds
        it; a failure counts) and nothing left for the projection: a digest sent on waking from
        a long sleep must speak of today, and one worker's early send would stand for the week."""
        states = {s.name: s for s in self.store.account_states()}
        for account in self._enabled():
            state = states.get(account.name)
            if state is None:
                return False
            synced = state.last_sync is not None and state.last_sync >= self._started
            failed = state.error_kind is not None and (
                state.last_attempt is not None and state.last_attempt >= self._started
            )
            if not (synced or failed):
                return False
        return self.store.pending_count() == 0

    def _digest_may_go(self) -> bool:
        """After this worker's first polls and the projection that followed."""
        return (
            self._held <= self._polled
            and not self._projection_due
            and not any(self._jobs.running(k) for k in ("project", "digest"))
            and not self._jobs.count("poll:")
        )

    # -- signals, reload, heartbeat, shutdown -------------------------------------------------

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        log.info("stop requested", signal=signal.Signals(signum).name)
        self.stop()

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self._reload_requested = True
        self._wake.set()

    def _do_reload(self) -> None:
        self._reload_requested = False
        self.notifier.reloading()
        try:
            config = self.reload()
        except ConfigError as exc:
            log.error("config reload failed; keeping the running config", problems=exc.problems)
            self.notifier.ready("config reload failed; running on the previous config")
            return
        self.config = config
        self._scheduler.jitter = config.daemon.jitter
        self._scheduler.backoff_min = config.daemon.backoff_min
        now = self.clock()
        for name in self._scheduler.parked():
            self._scheduler.unpark(name, now)
        try:
            self._serve_metrics()
        except ConfigError as exc:  # checked at load already; a port taken meanwhile lands here
            log.error("metrics endpoint not moved", problems=exc.problems)
        log.info("config reloaded", accounts=len(self._enabled()))
        self.notifier.ready(self._status_line())

    def _serve_metrics(self) -> None:
        """Start, move or stop the Prometheus endpoint to match `daemon.metrics_listen`."""
        listen = self.config.daemon.metrics_listen
        if listen == self._listening:
            return
        if not listen:
            self.metrics.stop()
        else:
            host, port = self.metrics.start(listen)
            log.info("metrics endpoint listening", address=f"{host}:{port}")
            if not self._listening:  # seed what the store knows, once
                now = self.now()
                states = self.store.account_states()
                for state in states:
                    if state.last_sync is not None:
                        self.metrics.account_lag(
                            state.name, (now - state.last_sync).total_seconds()
                        )
                self.metrics.touchpoints_total(sum(s.touchpoints for s in states))
        self._listening = listen

    def _heartbeat(self, now: float) -> None:
        interval = self.notifier.watchdog_interval()
        if interval is not None and now >= self._next["dog"]:
            self._next["dog"] = now + interval
            self.notifier.watchdog()
        if now >= self._next["line"]:
            self._next["line"] = now + STATUS_LINE_EVERY
            self.notifier.status(self._status_line())

    def _status_line(self) -> str:
        parked = len(self._scheduler.parked())
        running = len(self._scheduler.running())
        due = self._scheduler.next_due()
        wait = "" if due is None else f", next poll in {max(0, round(due - self.clock()))} s"
        count = len(self._held)
        return (
            f"{count} account{'' if count == 1 else 's'}, {running} polling, {parked} parked{wait}"
        )

    def _sleep_seconds(self) -> float:
        soonest = min(
            [self._scheduler.next_due() or float("inf"), *self._next.values()],
        )
        return max(0.05, min(1.0, soonest - self.clock()))

    def _shutdown(self) -> None:
        self.notifier.stopping("finishing the batches in flight")
        for _, watcher in self._watchers.values():
            watcher.stop()
        timeout = self.config.daemon.stop_timeout
        if not self._jobs.wait_all(timeout):
            log.warning(
                "stopping with jobs still running; they are redone on the next start",
                jobs=self._jobs.keys(),
                stop_timeout=timeout,
            )
        for done in self._jobs.finished():
            self._finished(done)
        if not self._jobs.count("poll:"):  # a stuck poll keeps its lease until it runs out
            try:
                self._keeper.release_all()
            except StoreError as exc:
                log.warning("could not hand the leases back; they run out", error=str(exc))
        self.metrics.stop()
        log.info("service stopped")
