"""When each account polls next: intervals with jitter, backoff, parking and push wake-ups.

Pure bookkeeping on a monotonic clock (wall-clock jumps never bunch or starve polls); the service
loop asks `due()` and reports back with `finished()`. An account is in one of four states:

- waiting for its due time (interval after a good poll, plus up to `jitter` of it);
- running (never twice at once);
- backing off after a TransientError: 2^n x `backoff_min`, capped at an hour, with jitter;
- parked after an AuthError or a source problem the user must fix: no polls until the account's
  fingerprint (its config and the files it reads credentials from) changes, or a SIGHUP.

`wake()` (push: IMAP IDLE saw new mail) makes a waiting account due at once; it never cuts a
backoff short, so a flapping server cannot turn push into a retry storm.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

MAX_BACKOFF = 3600.0  # seconds


@dataclass(slots=True)
class _Entry:
    due: float
    failures: int = 0
    running: bool = False
    parked: Hashable | None = None  # the fingerprint the account was parked under
    parked_why: str = ""


class Scheduler:
    """Per-account due times; see the module docstring."""

    def __init__(
        self,
        *,
        jitter: float,
        backoff_min: float = 60.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.jitter = jitter
        self.backoff_min = backoff_min
        self._rand = rand
        self._entries: dict[str, _Entry] = {}

    def keep(self, names: Iterable[str], now: float) -> None:
        """Track exactly these accounts; a new one is due at once, a dropped one forgotten."""
        wanted = set(names)
        for name in list(self._entries):
            if name not in wanted and not self._entries[name].running:
                del self._entries[name]
        for name in wanted:
            self._entries.setdefault(name, _Entry(due=now))

    def due(self, now: float) -> list[str]:
        """Accounts whose time has come, not running and not parked, soonest first."""
        ready = [
            (entry.due, name)
            for name, entry in self._entries.items()
            if not entry.running and entry.parked is None and entry.due <= now
        ]
        return [name for _, name in sorted(ready)]

    def started(self, name: str) -> None:
        self._entries[name].running = True

    def finished(
        self, name: str, now: float, *, ok: bool, interval: float, transient: bool
    ) -> float:
        """Record a poll's outcome; returns the seconds until the next one."""
        entry = self._entries.get(name)
        if entry is None:  # dropped from the config while it ran
            return 0.0
        entry.running = False
        if ok:
            entry.failures, wait = 0, interval
        elif transient:
            entry.failures += 1
            wait = min(self.backoff_min * 2 ** (entry.failures - 1), MAX_BACKOFF)
        else:
            entry.failures += 1
            wait = interval
        wait += wait * self.jitter * self._rand()
        entry.due = now + wait
        return wait

    def release(self, name: str) -> None:
        """The poll ended without an outcome (stopped, lease lost): due again at once."""
        entry = self._entries.get(name)
        if entry is not None:
            entry.running = False

    def park(self, name: str, fingerprint: Hashable, why: str) -> None:
        entry = self._entries.get(name)
        if entry is not None:
            entry.running, entry.parked, entry.parked_why = False, fingerprint, why

    def parked(self) -> dict[str, Hashable]:
        """Parked accounts and the fingerprint each was parked under."""
        return {n: e.parked for n, e in self._entries.items() if e.parked is not None}

    def unpark(self, name: str, now: float) -> None:
        entry = self._entries.get(name)
        if entry is not None and entry.parked is not None:
            entry.parked, entry.parked_why, entry.failures, entry.due = None, "", 0, now

    def wake(self, name: str, now: float) -> bool:
        """Push says there is news: due now unless running, parked or backing off."""
        entry = self._entries.get(name)
        if entry is None or entry.running or entry.parked is not None or entry.failures:
            return False
        entry.due = min(entry.due, now)
        return True

    def running(self) -> list[str]:
        return [name for name, entry in self._entries.items() if entry.running]

    def next_due(self) -> float | None:
        """The soonest due time among accounts that can run, None if there is none."""
        times = [e.due for e in self._entries.values() if not e.running and e.parked is None]
        return min(times, default=None)
