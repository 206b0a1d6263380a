"""Team mode: which accounts this worker polls, through leases in the shared store.

Several `keepwarm run` processes, on one machine or many, share one store (PostgreSQL for a
team). Each polls only the accounts it holds a lease on, and writes each batch with that lease,
so the store refuses the batch (`LeaseLost`) once the account has passed to another worker.
The leases and their fencing tokens are in store/leases.py; this module decides how many
accounts a worker takes and keeps them renewed:

- Fair share: with N live workers (those whose presence row has not run out), a worker holds
  at most ceil(accounts / N). A newcomer is counted as soon as it says it is there, before it
  holds anything; at their next claim the others hand back what exceeds their new share (never
  an account they are polling right now) and the newcomer takes it at its own next claim.
  Rebalancing therefore takes about two claim periods (`refresh_interval`).
- A worker of this host that died (its `host:pid` no longer runs) loses its leases at once;
  one elsewhere keeps them until they run out (`daemon.lease_seconds`).
- A worker id is one process's at a time. A new process releases every lease still carrying its
  id, so each account it takes gets a new token and an earlier process with that id (paused, not
  dead) can write nothing; while another live process has the id, this one holds nothing.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta

import structlog

from keepwarm.digest.outbox import holder_is_dead
from keepwarm.store import Store
from keepwarm.store.leases import Lease

log = structlog.get_logger(__name__)


def caught_up(store: Store, accounts: Collection[str], since: datetime) -> bool:
    """Every one of `accounts` polled since `since` (by whichever worker holds it; a failure
    counts) and nothing left for the projection: what the digest waits for, so that a digest
    sent on waking speaks of today and one worker's early send cannot stand for the team's."""
    states = {s.name: s for s in store.account_states()}
    for name in accounts:
        state = states.get(name)
        if state is None:
            return False
        synced = state.last_sync is not None and state.last_sync >= since
        failed = state.error_kind is not None and (
            state.last_attempt is not None and state.last_attempt >= since
        )
        if not (synced or failed):
            return False
    return store.pending.count() == 0


def default_worker_id() -> str:
    """This process's worker id when `daemon.worker_id` is empty: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaseKeeper:
    """This worker's leases: claims its share of the accounts, renews them, hands them back.

    Thread-safe: the service loop claims and asks for leases while a timer renews them.
    Database errors (`StoreError`) pass through and change nothing held; a lease the store could
    not renew runs out on its own, and `lease()` stops returning it then.
    """

    def __init__(
        self,
        store: Store,
        owner: str,
        duration: timedelta,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not owner:
            raise ValueError("a worker id must not be empty")
        if duration <= timedelta(0):
            raise ValueError("a lease must last some time")
        self.store = store
        self.owner = owner
        self.duration = duration
        self._now = now
        self._instance = secrets.randbits(62)  # tells two processes with one worker id apart
        self._lock = threading.Lock()
        self._held: dict[str, Lease] = {}
        self._present = False  # the store counts this process as worker `owner`
        self._claimed: tuple[datetime, tuple[str, ...]] | None = None  # last claim: when, what
        self._told_in_use = False

    @property
    def renew_interval(self) -> timedelta:
        """How often `renew` should run: a third of a lease, so two can fail before it runs out."""
        return self.duration / 3

    @property
    def refresh_interval(self) -> timedelta:
        """How long `claim` answers from memory before it asks the store again."""
        return self.duration / 4

    def claim(
        self, accounts: Sequence[str], limit: int | None = None, *, busy: Collection[str] = ()
    ) -> dict[str, Lease]:
        """The leases this worker may poll with now, account -> lease, after taking its share.

        `accounts` are every account the team polls (the enabled ones of the config), `limit`
        an upper bound of this worker's own, and `busy` the accounts it is polling right now:
        those are kept even beyond its share, since handing them back would refuse the batch in
        flight. Asks the store at most every `refresh_interval` unless `accounts` changed.
        """
        wanted = tuple(dict.fromkeys(accounts))
        with self._lock:
            now = self._now()
            if self._claimed is not None:
                at, asked = self._claimed
                if asked == wanted and at <= now < at + self.refresh_interval:
                    return self._valid(now)
            if not self._announce(now):
                self._claimed = (now, wanted)  # asks again after a refresh, not every tick
                return {}
            live = self.store.leases.workers(now)
            dead = [w for w in live if w != self.owner and holder_is_dead(w)]
            share = math.ceil(len(wanted) / max(1, len(live) - len(dead)))
            cap = share if limit is None else max(0, min(share, limit))
            surplus = self._surplus(wanted, cap, busy)
            if surplus:
                self.store.leases.release(self.owner, surplus)
            kept_busy = [a for a in busy if a in self._held and a not in wanted]
            asking = [a for a in wanted if a not in surplus] + kept_busy
            got = self.store.leases.acquire(
                self.owner, asking, limit=cap, duration=self.duration, now=now, takeover=dead
            )
            self._replace(got, released=surplus)
            self._claimed = (now, wanted)
            return self._valid(now)

    def lease(self, account: str) -> Lease | None:
        """The lease to write `account`'s batches with, or None when this worker does not hold
        it (or it ran out): pass it to `Store.ingest(..., lease=...)`."""
        with self._lock:
            lease = self._held.get(account)
            return lease if lease is not None and lease.expires_at > self._now() else None

    def held(self) -> dict[str, Lease]:
        """The leases held now, account -> lease, without asking the store."""
        with self._lock:
            return self._valid(self._now())

    def renew(self) -> set[str]:
        """Extend every lease held (and this worker's presence); return the accounts lost."""
        with self._lock:
            now = self._now()
            before = set(self._held)
            if not self._announce(now):
                return before
            if not self._held:
                return set()
            kept = self.store.leases.renew(
                self.owner, list(self._held.values()), duration=self.duration, now=now
            )
            self._replace(kept, released=())
            return before - set(self._held)

    def release_all(self) -> None:
        """Hand every lease back at once and leave the team (a clean stop, once no poll runs)."""
        with self._lock:
            if self._present:
                self.store.leases.release(self.owner)
                self.store.leases.retire(self.owner, self._instance)
                if self._held:
                    log.info("leases released", worker=self.owner, accounts=sorted(self._held))
            self._held.clear()
            self._present = False
            self._claimed = None

    # -- inside the lock ---------------------------------------------------------------------

    def _announce(self, now: datetime) -> bool:
        """Keep this process's presence; False (holding nothing) while another has our id."""
        if not self.store.leases.heartbeat(
            self.owner, self._instance, duration=self.duration, now=now
        ):
            if self._held:
                log.warning("leases lost", worker=self.owner, accounts=sorted(self._held))
            if not self._told_in_use:
                log.error(
                    "another running worker uses this worker id; waiting until it stops",
                    worker=self.owner,
                    fix="give each worker its own daemon.worker_id (empty = host:pid)",
                )
                self._told_in_use = True
            self._held.clear()
            self._present = False
            return False
        if not self._present:
            # Leases under this id belong to an earlier process, which may be paused rather than
            # dead: ended now, each is granted anew with a new token that fences that one out.
            self.store.leases.release(self.owner)
            self._present = True
            self._told_in_use = False
            log.info("worker joined the team", worker=self.owner)
        return True

    def _surplus(self, wanted: Sequence[str], cap: int, busy: Collection[str]) -> list[str]:
        """Held accounts to hand back: beyond the share (the last of `wanted` first) or no
        longer wanted, except those being polled."""
        keep = [a for a in self._held if a in busy]
        for account in wanted:
            if account in self._held and account not in busy and len(keep) < cap:
                keep.append(account)
        return sorted(set(self._held) - set(keep))

    def _replace(self, leases: Iterable[Lease], *, released: Collection[str]) -> None:
        before = self._held
        self._held = {lease.account: lease for lease in leases}
        # A lease granted again under a new token is lost too: a batch in flight is refused.
        lost = sorted(
            a
            for a, old in before.items()
            if a not in released and (a not in self._held or self._held[a].token != old.token)
        )
        gained = sorted(a for a in self._held if a not in before or a in lost)
        if lost:
            log.warning("leases lost", worker=self.owner, accounts=lost)
        if gained or released:
            log.info(
                "leases changed",
                worker=self.owner,
                gained=gained,
                released=sorted(released),
                held=len(self._held),
            )

    def _valid(self, now: datetime) -> dict[str, Lease]:
        return {a: lease for a, lease in self._held.items() if lease.expires_at > now}
