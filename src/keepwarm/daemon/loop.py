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
from types import FrameType

import structlog

from keepwarm.config.schema import Config
from keepwarm.daemon import project
from keepwarm.daemon.digest_due import Outcome, send_if_due
from keepwarm.daemon.jobs import Done, Jobs
from keepwarm.daemon.metrics import Metrics
from keepwarm.daemon.notify import Notifier
from keepwarm.daemon.polls import Polls
from keepwarm.daemon.status_check import record_status_changes
from keepwarm.daemon.team import caught_up
from keepwarm.errors import ConfigError
from keepwarm.store import Store

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
        self._jobs = Jobs(self._wake)
        self._polls = Polls(
            self.store,
            self.config,
            self._jobs,
            now=self.now,
            clock=self.clock,
            metrics=self.metrics,
            stopping=self._stop,
            wake=self._wake.set,
        )
        self._projection_due = True  # start by catching up on what a crash left pending
        self._next = dict.fromkeys(("promote", "status", "digest", "line", "dog"), 0.0)
        self._ready = False
        self._listening = ""  # the metrics address being served
        self._started = self.now()  # set again when run() starts

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
            accounts=len(self._polls.enabled()),
            workers=self.config.daemon.workers,
            worker_id=self._polls.keeper.owner,
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
        self._polls.round(now)
        self._background(now)
        if not self._ready:
            self._ready = True
            self.notifier.ready(self._polls.status_line())
            self.metrics.up()
        self._heartbeat(now)

    def _finished(self, done: Done) -> None:
        kind, _, name = done.key.partition(":")
        if done.error is not None:
            log.error(
                "job failed", job=done.key, error=f"{type(done.error).__name__}: {done.error}"
            )
        if kind == "poll":
            if self._polls.finished(name, done):
                self._projection_due = True
        elif kind == "project":
            if done.error is not None:
                self._projection_due = True  # the pending list still holds the work
            elif done.value:
                self._next["status"] = min(self._next["status"], self.clock() + STATUS_AFTER_NEWS)
        elif kind == "digest" and done.error is None and done.value is not None:
            log.debug("digest checked", status=done.value.status)
            if done.value.status == "sent":
                self.metrics.digest_sent(self.now())

    # -- projection, status changes, digest ---------------------------------------------------

    def _background(self, now: float) -> None:
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
        enabled = [a.name for a in self._polls.enabled()]
        waited = now - self._started >= DIGEST_WAIT_MAX
        if not waited and not caught_up(self.store, enabled, self._started):
            return None
        return send_if_due(self.store, config, now)

    def _digest_may_go(self) -> bool:
        """After this worker's first polls and the projection that followed."""
        return (
            self._polls.held <= self._polls.polled
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
        self._polls.reconfigure(config)
        try:
            self._serve_metrics()
        except ConfigError as exc:  # checked at load already; a port taken meanwhile lands here
            log.error("metrics endpoint not moved", problems=exc.problems)
        log.info("config reloaded", accounts=len(self._polls.enabled()))
        self.notifier.ready(self._polls.status_line())

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
                self.metrics.seed(self.store.account_states(), self.now())
        self._listening = listen

    def _heartbeat(self, now: float) -> None:
        interval = self.notifier.watchdog_interval()
        if interval is not None and now >= self._next["dog"]:
            self._next["dog"] = now + interval
            self.notifier.watchdog()
        if now >= self._next["line"]:
            self._next["line"] = now + STATUS_LINE_EVERY
            self.notifier.status(self._polls.status_line())

    def _sleep_seconds(self) -> float:
        soonest = min(self._polls.scheduler.next_due() or float("inf"), *self._next.values())
        return max(0.05, min(1.0, soonest - self.clock()))

    def _shutdown(self) -> None:
        self.notifier.stopping("finishing the batches in flight")
        self._polls.watchers.stop_all()
        timeout = self.config.daemon.stop_timeout
        if not self._jobs.wait_all(timeout):
            log.warning(
                "stopping with jobs still running; they are redone on the next start",
                jobs=self._jobs.keys(),
                stop_timeout=timeout,
            )
        for done in self._jobs.finished():
            self._finished(done)
        self._polls.release()  # a stuck poll keeps its lease until it runs out
        self.metrics.stop()
        log.info("service stopped")
