"""Background jobs for the service loop: a poll, the projection, a status check, the digest.

Each job runs on a daemon thread of its own, at most `limit` per group at once, one per key. The
loop stays free to schedule, answer signals and ping the watchdog however long a job takes, and
a job stuck on a dead server holds its own slot only. Daemon threads let the process exit after
the stop timeout even if one is stuck; the database rolls back whatever it left open, which is
the crash case the store is built for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Done:
    """A finished job: its value, or the exception that escaped it."""

    key: str
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0


@dataclass
class Jobs:
    """Runs jobs on threads and hands back `Done` records; see the module docstring."""

    wake: threading.Event  # set whenever a job finishes, so the loop looks at once
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: dict[str, threading.Thread] = field(default_factory=dict)
    _done: list[Done] = field(default_factory=list)

    def running(self, key: str) -> bool:
        with self._lock:
            return key in self._running

    def count(self, prefix: str) -> int:
        with self._lock:
            return sum(1 for key in self._running if key.startswith(prefix))

    def submit(self, key: str, fn: Callable[[], Any]) -> bool:
        """Start `fn` as job `key`; False when a job of that key still runs."""
        with self._lock:
            if key in self._running:
                return False
            thread = threading.Thread(target=self._run, args=(key, fn), name=key, daemon=True)
            self._running[key] = thread
        thread.start()
        return True

    def _run(self, key: str, fn: Callable[[], Any]) -> None:
        started = time.monotonic()
        done = Done(key)
        try:
            done.value = fn()
        except BaseException as exc:  # reported to the loop; a job never kills the service
            done.error = exc
        done.seconds = time.monotonic() - started
        with self._lock:
            del self._running[key]
            self._done.append(done)
        self.wake.set()

    def finished(self) -> list[Done]:
        """Jobs that ended since the last call."""
        with self._lock:
            done, self._done = self._done, []
        return done

    def wait_all(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every job to end; True when none is left."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._running.values())
            if not threads:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            threads[0].join(min(left, 0.5))

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._running)
