"""The lease keeper of team mode: each worker's share of the accounts, newcomers, workers that
stop or die, and one worker id per process. On SQLite and PostgreSQL; keepers racing in threads
with their own connections on PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from keepwarm.daemon.team import LeaseKeeper, default_worker_id
from keepwarm.errors import LeaseLost
from keepwarm.model import Direction, Kind, Role, Touchpoint
from keepwarm.store import Store
from keepwarm.store.leases import Lease

START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
D = timedelta(minutes=2)
TEN = [f"acct-{i}" for i in range(10)]


@dataclass
class Clock:
    at: datetime = START

    def __call__(self) -> datetime:
        return self.at

    def advance(self, by: timedelta) -> None:
        self.at += by


@pytest.fixture
def clock() -> Clock:
    return Clock()


def keeper(store: Store, clock: Clock, owner: str) -> LeaseKeeper:
    return LeaseKeeper(store, owner, D, clock)


def touch(key: str) -> Touchpoint:
    return Touchpoint(
        natural_key=key,
        counterpart="ann@example.org",
        occurred_at=START - timedelta(days=1),
        kind=Kind.EMAIL,
        direction=Direction.OUT,
        role=Role.TO,
        participants=2,
        account="acct-0",
        source="maildir",
    )


def overlap(*held: Collection[str]) -> set[str]:
    seen: set[str] = set()
    twice: set[str] = set()
    for accounts in held:
        twice |= seen & set(accounts)
        seen |= set(accounts)
    return twice


def test_a_lone_worker_polls_every_account_and_renewal_keeps_its_tokens(
    store: Store, clock: Clock
) -> None:
    one = keeper(store, clock, "w1")
    held = one.claim(TEN)
    assert sorted(held) == TEN
    assert {lease.token for lease in held.values()} == {1}
    clock.advance(one.renew_interval)
    assert one.renew() == set()
    lease = one.lease("acct-0")
    assert lease is not None
    assert (lease.token, lease.expires_at) == (1, clock() + D)
    clock.advance(D * 0.9)  # past the first grant's expiry, within the renewed one
    store.ingest("acct-0", [touch("mid:1@x")], [], [], "c1", now=clock(), lease=lease)
    assert store.cursor("acct-0") == "c1"


def test_a_newcomer_gets_its_share_within_two_claim_periods(store: Store, clock: Clock) -> None:
    one, two = keeper(store, clock, "w1"), keeper(store, clock, "w2")
    assert len(one.claim(TEN)) == 10
    assert two.claim(TEN) == {}  # all taken, but w2 now counts as a live worker
    clock.advance(one.refresh_interval)
    kept = one.claim(TEN)
    assert sorted(kept) == TEN[:5]  # the rest handed back
    got = two.claim(TEN)
    assert sorted(got) == TEN[5:]
    assert {lease.token for lease in got.values()} == {2}
    assert overlap(kept, got) == set()
    # Stable from then on: neither takes from the other.
    for _ in range(3):
        clock.advance(one.refresh_interval)
        assert (sorted(one.claim(TEN)), sorted(two.claim(TEN))) == (TEN[:5], TEN[5:])


def test_accounts_being_polled_are_not_handed_back(store: Store, clock: Clock) -> None:
    one, two = keeper(store, clock, "w1"), keeper(store, clock, "w2")
    one.claim(TEN)
    two.claim(TEN)
    clock.advance(one.refresh_interval)
    kept = one.claim(TEN, busy={"acct-9"})
    assert sorted(kept) == ["acct-0", "acct-1", "acct-2", "acct-3", "acct-9"]
    assert sorted(two.claim(TEN)) == ["acct-4", "acct-5", "acct-6", "acct-7", "acct-8"]


def test_a_worker_that_stops_hands_over_at_once(store: Store, clock: Clock) -> None:
    one, two = keeper(store, clock, "w1"), keeper(store, clock, "w2")
    one.claim(TEN)
    two.claim(TEN)
    clock.advance(one.refresh_interval)
    one.claim(TEN)
    two.claim(TEN)
    one.release_all()
    assert one.held() == {}
    clock.advance(two.refresh_interval)
    assert sorted(two.claim(TEN)) == TEN  # its share is everything again, no waiting


def test_a_worker_that_vanishes_is_outlived_and_fenced_out(store: Store, clock: Clock) -> None:
    one, two = keeper(store, clock, "w1"), keeper(store, clock, "w2")
    one.claim(TEN)
    two.claim(TEN)
    clock.advance(one.refresh_interval)
    one.claim(TEN)
    two.claim(TEN)
    stale = two.lease("acct-9")
    assert stale is not None
    clock.advance(D)  # w2 hangs: no renewals, its presence and leases run out
    assert sorted(one.claim(TEN)) == TEN
    taken = one.lease("acct-9")
    assert taken is not None
    assert taken.token == stale.token + 1
    assert two.lease("acct-9") is None  # w2 itself knows its lease ran out
    with pytest.raises(LeaseLost):
        store.ingest("acct-9", [touch("mid:1@x")], [], [], "c", now=clock(), lease=stale)
    assert two.renew() == set(TEN[5:])  # w2 wakes up: renewal tells it what it lost


def test_a_dead_worker_of_this_host_is_taken_over_without_waiting(
    store: Store, clock: Clock
) -> None:
    child = subprocess.Popen(["true"])  # a process of this host that has ended
    child.wait()
    dead = LeaseKeeper(store, f"{socket.gethostname()}:{child.pid}", D, clock)
    dead.claim(TEN)
    one = keeper(store, clock, "w1")
    clock.advance(timedelta(seconds=1))
    got = one.claim(TEN)
    assert sorted(got) == TEN
    assert {lease.token for lease in got.values()} == {2}


def test_two_processes_with_one_worker_id_never_both_hold_accounts(
    store: Store, clock: Clock
) -> None:
    first, second = keeper(store, clock, "w1"), keeper(store, clock, "w1")
    first.claim(TEN)
    old = first.lease("acct-0")
    assert old is not None
    with capture_logs() as logs:
        assert second.claim(TEN) == {}
        clock.advance(second.refresh_interval)
        assert second.claim(TEN) == {}
    told = [e for e in logs if e["log_level"] == "error"]
    assert len(told) == 1  # said once, not on every claim
    assert "worker_id" in told[0]["fix"]
    # The first process is paused past its lease; the second one takes over under new tokens.
    clock.advance(D)
    got = second.claim(TEN)
    assert sorted(got) == TEN
    assert got["acct-0"].token == old.token + 1
    with pytest.raises(LeaseLost):
        store.ingest("acct-0", [touch("mid:1@x")], [], [], "c", now=START, lease=old)
    assert first.renew() == set(TEN)  # the id is the other process's now: nothing is held
    assert first.held() == {}


def test_leases_left_under_this_worker_id_are_granted_anew(store: Store, clock: Clock) -> None:
    # Leases carrying w1's id with no live w1 process behind them (its presence is gone): that
    # process may be paused, not dead, so the new w1 must not simply renew them.
    (old,) = store.leases.acquire("w1", ["acct-0"], limit=1, duration=D, now=START)
    got = keeper(store, clock, "w1").claim(["acct-0"])
    assert got["acct-0"].token == old.token + 1
    with pytest.raises(LeaseLost):
        store.ingest("acct-0", [touch("mid:1@x")], [], [], "c", now=START, lease=old)


def test_the_limit_caps_a_workers_share(store: Store, clock: Clock) -> None:
    one, two = keeper(store, clock, "w1"), keeper(store, clock, "w2")
    assert len(one.claim(TEN, limit=3)) == 3
    assert len(two.claim(TEN)) == 5  # ceil(10 / 2): w1 left the rest free


def test_an_account_gone_from_the_config_is_handed_back(store: Store, clock: Clock) -> None:
    one, two = keeper(store, clock, "w1"), keeper(store, clock, "w2")
    one.claim(TEN)
    assert sorted(one.claim(TEN[:9])) == TEN[:9]  # a new list is claimed at once
    assert sorted(two.claim(["acct-9"])) == ["acct-9"]


def test_claim_answers_from_memory_within_its_refresh_interval(store: Store, clock: Clock) -> None:
    one = keeper(store, clock, "w1")
    one.claim(TEN[:5])
    store.leases.release("w1", ["acct-0"])  # behind the keeper's back
    clock.advance(one.refresh_interval / 2)
    assert "acct-0" in one.claim(TEN[:5])
    clock.advance(one.refresh_interval / 2)
    renewed = one.claim(TEN[:5])
    assert renewed["acct-0"].token == 2  # asked the store: granted anew
    assert renewed["acct-1"].token == 1


def test_the_default_worker_id_is_host_and_pid() -> None:
    assert default_worker_id() == f"{socket.gethostname()}:{os.getpid()}"


def _race(keepers: list[LeaseKeeper], accounts: list[str]) -> list[dict[str, Lease]]:
    """Every keeper claims at the same instant, on its own connection; what each holds."""
    start = threading.Barrier(len(keepers))
    held: list[dict[str, Lease]] = [{} for _ in keepers]

    def claim(i: int) -> None:
        start.wait()
        held[i] = dict(keepers[i].claim(accounts))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(keepers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a claim hung"
    return held


@pytest.mark.parametrize(
    "store_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_keepers_racing_on_their_own_connections_share_without_overlap(
    store_url: str, clock: Clock
) -> None:
    accounts = [f"acct-{i:02d}" for i in range(30)]
    stores = [Store.open(store_url) for _ in range(5)]
    keepers = [LeaseKeeper(s, f"w{i}", D, clock) for i, s in enumerate(stores)]
    try:
        for _ in range(4):
            held = _race(keepers, accounts)
            assert overlap(*held) == set()
            clock.advance(keepers[0].refresh_interval)
        assert sorted(a for h in held for a in h) == accounts
        assert [len(h) for h in held] == [6] * 5
    finally:
        for s in stores:
            s.close()
