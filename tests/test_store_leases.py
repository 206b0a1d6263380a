"""Team-mode leases and fencing in the store, on SQLite and PostgreSQL; the races on PostgreSQL
with real concurrent connections (a Store per thread).

What a team would check: no two workers ever poll one account, a lease that runs out or is
handed back passes on with a new token, and a worker that lost its lease writes nothing.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from keepwarm.errors import LeaseLost, StoreError
from keepwarm.model import Direction, Kind, Role, Skip, Touchpoint
from keepwarm.store import Store
from keepwarm.store.leases import WORKER_KEY, Lease

# The races need real row locks and concurrent connections: PostgreSQL only.
pg_only = pytest.mark.parametrize(
    "store_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
D = timedelta(minutes=2)
ACCOUNTS = ["alice", "bob", "carol", "dave"]


def tp(
    key: str, *, at: datetime = NOW - timedelta(days=1), subject: str | None = None
) -> Touchpoint:
    return Touchpoint(
        natural_key=key,
        counterpart="ann@example.org",
        occurred_at=at,
        kind=Kind.EMAIL,
        direction=Direction.OUT,
        role=Role.TO,
        participants=2,
        account="home",
        source="maildir",
        subject=subject,
    )


def tokens(leases: list[Lease]) -> dict[str, int]:
    return {lease.account: lease.token for lease in leases}


def test_free_accounts_are_granted_once_with_token_one(store: Store) -> None:
    got = store.leases.acquire("w1", ACCOUNTS, limit=10, duration=D, now=NOW)
    assert got == [Lease(a, "w1", 1, NOW + D) for a in sorted(ACCOUNTS)]
    assert store.leases.acquire("w2", ACCOUNTS, limit=10, duration=D, now=NOW + D / 2) == []
    assert {(h.account, h.owner) for h in store.leases.holders()} == {(a, "w1") for a in ACCOUNTS}


def test_the_limit_bounds_new_grants_but_never_drops_a_held_lease(store: Store) -> None:
    assert tokens(store.leases.acquire("w1", ACCOUNTS, limit=2, duration=D, now=NOW)) == {
        "alice": 1,
        "bob": 1,
    }
    again = store.leases.acquire("w1", ACCOUNTS, limit=1, duration=D, now=NOW + D / 2)
    assert [(x.account, x.expires_at) for x in again] == [
        ("alice", NOW + D / 2 + D),
        ("bob", NOW + D / 2 + D),
    ]
    rest = store.leases.acquire("w2", ACCOUNTS, limit=10, duration=D, now=NOW + D / 2)
    assert sorted(tokens(rest)) == ["carol", "dave"]


def test_renewal_keeps_the_token_and_the_account(store: Store) -> None:
    (lease,) = store.leases.acquire("w1", ["alice"], limit=1, duration=D, now=NOW)
    later = NOW + D * 0.9
    (renewed,) = store.leases.renew("w1", [lease], duration=D, now=later)
    assert renewed == Lease("alice", "w1", 1, later + D)
    # Past the first expiry the renewed lease still holds: nobody else may take it.
    assert store.leases.acquire("w2", ["alice"], limit=1, duration=D, now=NOW + D * 1.5) == []
    (kept,) = store.leases.acquire("w1", ["alice"], limit=1, duration=D, now=NOW + D * 1.5)
    assert kept.token == 1


def test_a_lease_that_ran_out_passes_on_with_the_next_token(store: Store) -> None:
    (first,) = store.leases.acquire("w1", ["alice"], limit=1, duration=D, now=NOW)
    (second,) = store.leases.acquire("w2", ["alice"], limit=1, duration=D, now=NOW + D)
    assert (second.owner, second.token) == ("w2", 2)
    assert store.leases.renew("w1", [first], duration=D, now=NOW + D) == []
    (back,) = store.leases.acquire("w1", ["alice"], limit=1, duration=D, now=NOW + 2 * D)
    assert (back.owner, back.token) == ("w1", 3)


def test_a_holders_own_lapsed_lease_is_granted_anew_under_a_new_token(store: Store) -> None:
    (first,) = store.leases.acquire("w1", ["alice"], limit=1, duration=D, now=NOW)
    (again,) = store.leases.acquire("w1", ["alice"], limit=1, duration=D, now=NOW + D)
    assert again.token == 2  # a write still carrying token 1 (from before a pause) is refused
    assert store.leases.renew("w1", [first], duration=D, now=NOW + D) == []


def test_release_hands_over_at_once_and_only_the_owners_leases(store: Store) -> None:
    store.leases.acquire("w1", ["alice", "bob"], limit=2, duration=D, now=NOW)
    store.leases.acquire("w2", ["carol"], limit=1, duration=D, now=NOW)
    store.leases.release("w1", ["alice", "carol"])
    got = store.leases.acquire("w3", ACCOUNTS, limit=10, duration=D, now=NOW)
    assert tokens(got) == {"alice": 2, "dave": 1}
    store.leases.release("w1")  # all of w1's
    assert tokens(store.leases.acquire("w3", ["bob"], limit=1, duration=D, now=NOW)) == {"bob": 2}
    holders = {h.account: (h.owner, h.expires_at > NOW) for h in store.leases.holders()}
    assert holders["carol"] == ("w2", True)


def test_a_dead_owners_leases_can_be_taken_over_before_they_run_out(store: Store) -> None:
    store.leases.acquire("host:1", ["alice", "bob"], limit=2, duration=D, now=NOW)
    got = store.leases.acquire(
        "host:2", ["alice", "bob"], limit=1, duration=D, now=NOW + D / 4, takeover=["host:1"]
    )
    assert [(x.account, x.owner, x.token) for x in got] == [("alice", "host:2", 2)]


def test_a_reserved_name_is_not_an_account(store: Store) -> None:
    with pytest.raises(ValueError, match="reserved"):
        store.leases.acquire("w1", [WORKER_KEY + "w2"], limit=1, duration=D, now=NOW)


def test_workers_are_live_while_their_presence_holds(store: Store) -> None:
    assert store.leases.heartbeat("w1", 11, duration=D, now=NOW)
    assert store.leases.heartbeat("w2", 22, duration=D, now=NOW + D / 2)
    store.leases.acquire("w1", ["alice"], limit=1, duration=D, now=NOW)
    assert store.leases.workers(NOW + D / 2) == ["w1", "w2"]
    assert store.leases.workers(NOW + D) == ["w2"]
    assert [h.account for h in store.leases.holders()] == ["alice"]  # presence is no account
    # A second process under w2's id is refused while the first one lives, not after.
    assert not store.leases.heartbeat("w2", 23, duration=D, now=NOW + D)
    assert store.leases.heartbeat("w2", 23, duration=D, now=NOW + D * 1.5)
    store.leases.retire("w2", 22)  # the old process's goodbye leaves the new one alone
    assert store.leases.workers(NOW + D * 1.5) == ["w2"]
    store.leases.retire("w2", 23)
    assert store.leases.workers(NOW + D * 1.5) == []


# -- fencing -----------------------------------------------------------------------------------


def test_a_paused_worker_writes_nothing_once_its_lease_passed_on(store: Store) -> None:
    (old,) = store.leases.acquire("w1", ["home"], limit=1, duration=D, now=NOW)
    store.ingest("home", [tp("mid:1@x")], [], [], "c1", now=NOW, lease=old)
    # w1 pauses (GC, a suspended VM); its lease runs out and w2 takes the account.
    (new,) = store.leases.acquire("w2", ["home"], limit=1, duration=D, now=NOW + D)
    assert new.token == old.token + 1
    before = store.account_states()
    # w1 wakes up believing it is still early: its clock reading is from before the pause.
    with pytest.raises(LeaseLost, match="w2 holds it now") as lost:
        store.ingest(
            "home",
            [tp("mid:2@x")],
            [tp("evt:u1:", at=NOW + timedelta(days=3))],
            [Skip("42", "no-date")],
            "c-from-w1",
            now=NOW + timedelta(seconds=5),
            identities={"me@other.example"},
            replace_planned=True,
            filtered={"mailing-list": 3},
            lease=old,
        )
    assert lost.value.account == "home"
    assert [t.natural_key for t in store.iter_touchpoints()] == ["mid:1@x"]
    assert store.cursor("home") == "c1"
    assert store.account_states() == before  # no skip, filter count, error or last_sync moved
    assert store.identities() == frozenset()
    assert store.planned_meetings() == []
    assert store.pending.take(10) == {"ann@example.org": 1}  # only w1's first, valid batch
    with pytest.raises(LeaseLost):
        store.reset_cursor("home", lease=old, now=NOW + timedelta(seconds=5))
    assert store.cursor("home") == "c1"
    store.ingest("home", [tp("mid:3@x")], [], [], "c-from-w2", now=NOW + D, lease=new)
    assert store.cursor("home") == "c-from-w2"
    store.reset_cursor("home", lease=new, now=NOW + D)
    assert store.cursor("home") is None


def test_a_lease_that_ran_out_refuses_writes_even_if_nobody_took_it(store: Store) -> None:
    (lease,) = store.leases.acquire("w1", ["home"], limit=1, duration=D, now=NOW)
    with pytest.raises(LeaseLost, match="ran out"):
        store.ingest("home", [tp("mid:1@x")], [], [], "c1", now=NOW + D, lease=lease)
    assert store.count_touchpoints() == 0
    assert store.cursor("home") is None


def test_a_renewed_lease_writes_with_the_object_it_was_granted_as(store: Store) -> None:
    (granted,) = store.leases.acquire("w1", ["home"], limit=1, duration=D, now=NOW)
    store.leases.renew("w1", [granted], duration=D, now=NOW + D / 2)
    # Past the first expiry, before the renewed one: the token is what counts.
    store.ingest("home", [tp("mid:1@x")], [], [], "c1", now=NOW + D * 1.2, lease=granted)
    assert store.cursor("home") == "c1"


def test_a_released_lease_refuses_writes(store: Store) -> None:
    (lease,) = store.leases.acquire("w1", ["home"], limit=1, duration=D, now=NOW)
    store.leases.release("w1", ["home"])
    with pytest.raises(LeaseLost, match="ran out"):
        store.ingest("home", [tp("mid:1@x")], [], [], "c1", now=NOW, lease=lease)


def test_a_lease_never_granted_or_for_another_account_is_refused(store: Store) -> None:
    invented = Lease("home", "w1", 1, NOW + D)
    with pytest.raises(LeaseLost, match="was ever granted"):
        store.ingest("home", [tp("mid:1@x")], [], [], "c1", now=NOW, lease=invented)
    with pytest.raises(ValueError, match="not 'work'"):
        store.ingest("work", [tp("mid:1@x")], [], [], "c1", now=NOW, lease=invented)
    assert store.count_touchpoints() == 0


# -- real concurrency (PostgreSQL) ---------------------------------------------------------------


def _threads(n: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    if errors:
        raise errors[0]


def _race(stores: list[Store], names: list[str], share: int) -> dict[int, list[Lease]]:
    """Every store's worker acquires at the same instant; what each got."""
    start = threading.Barrier(len(stores))
    got: dict[int, list[Lease]] = {}

    def race(i: int) -> None:
        start.wait()
        got[i] = stores[i].leases.acquire(f"w{i}", names, limit=share, duration=D, now=NOW)

    _threads(len(stores), race)
    return got


@pg_only
def test_workers_racing_for_new_accounts_split_them_without_overlap(store_url: str) -> None:
    workers, accounts = 6, [f"acct-{i:02d}" for i in range(40)]
    share = math.ceil(len(accounts) / workers)
    stores = [Store.open(store_url) for _ in range(workers)]
    try:
        for round_ in range(6):
            names = [f"r{round_}-{a}" for a in accounts]
            if round_ % 2:  # the rows exist, all free: only the row locks decide
                assert stores[0].leases.acquire("-", names, limit=0, duration=D, now=NOW) == []
            # else the rows are created in the race too
            got = _race(stores, names, share)
            taken = [lease.account for leases in got.values() for lease in leases]
            assert len(taken) == len(set(taken)), "an account was granted twice"
            assert sorted(taken) == sorted(names)
            assert all(len(leases) <= share for leases in got.values())
            assert {lease.token for leases in got.values() for lease in leases} == {1}
    finally:
        for s in stores:
            s.close()


@pg_only
def test_acquire_skips_an_account_whose_write_is_in_flight(store: Store, store_url: str) -> None:
    (held,) = store.leases.acquire("w1", ["alice"], limit=1, duration=D, now=NOW)
    store.leases.acquire("w1", ["bob"], limit=1, duration=D, now=NOW)
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn, conn.begin():
            # w1's batch for alice is being written (its fence holds the row) as alice's lease
            # runs out: w2 must neither wait for that write nor take alice under it.
            conn.execute(sa.text("SELECT 1 FROM leases WHERE account = 'alice' FOR UPDATE"))
            got: list[Lease] = []
            worker = threading.Thread(
                target=lambda: got.extend(
                    store.leases.acquire("w2", ["alice", "bob"], limit=2, duration=D, now=NOW + D)
                )
            )
            worker.start()
            worker.join(10)
            assert not worker.is_alive(), "acquire waited for a row another worker had locked"
            assert tokens(got) == {"bob": 2}
        (alice,) = store.leases.acquire("w2", ["alice"], limit=1, duration=D, now=NOW + D)
        assert (alice.owner, alice.token) == ("w2", held.token + 1)
    finally:
        engine.dispose()


@pg_only
def test_a_write_in_flight_keeps_its_account_until_it_commits(store: Store, store_url: str) -> None:
    (lease,) = store.leases.acquire("w1", ["home"], limit=1, duration=D, now=NOW)
    checked, resume = threading.Event(), threading.Event()
    writer: list[threading.Thread] = []

    def pause_after_the_fence(conn: object, cursor: object, statement: str, *args: object) -> None:
        if threading.current_thread() in writer and "FOR UPDATE" in statement:
            checked.set()
            resume.wait(10)

    def write() -> None:
        # w1 checked its lease just before it ran out and is still writing when it does.
        store.ingest("home", [tp("mid:1@x")], [], [], "c-w1", now=NOW + D * 0.99, lease=lease)

    writer.append(threading.Thread(target=write))
    sa.event.listen(sa.Engine, "after_cursor_execute", pause_after_the_fence)
    try:
        with Store.open(store_url) as other:
            writer[0].start()
            assert checked.wait(10)
            got: list[Lease] = []
            taker = threading.Thread(
                target=lambda: got.extend(
                    other.leases.acquire("w2", ["home"], limit=1, duration=D, now=NOW + D)
                )
            )
            taker.start()
            taker.join(10)
            assert not taker.is_alive(), "acquire waited for the write in flight"
            assert got == [], "the account was granted while its holder was still writing"
            resume.set()
            writer[0].join(10)
            assert store.cursor("home") == "c-w1"
            (taken,) = other.leases.acquire("w2", ["home"], limit=1, duration=D, now=NOW + D)
            assert taken.token == lease.token + 1
    finally:
        resume.set()
        sa.event.remove(sa.Engine, "after_cursor_execute", pause_after_the_fence)


@pg_only
def test_fencing_holds_under_contention(store_url: str) -> None:
    """Workers grab short leases, 'pause' for random times and write what they can. In each
    account's log, in commit order, tokens never go back and each token has one writer."""
    workers, rounds, accounts = 4, 40, ["alice", "bob"]
    short = timedelta(milliseconds=15)
    stores = [Store.open(store_url) for _ in range(workers)]
    refused = [0] * workers

    def work(i: int) -> None:
        rng = random.Random(i)
        for n in range(rounds):
            at = datetime.now(UTC)
            for lease in stores[i].leases.acquire(
                f"w{i}", accounts, limit=1, duration=short, now=at
            ):
                time.sleep(rng.uniform(0, 0.03))  # a pause that may outlive the lease
                key = f"mid:{i}-{n}@x"
                try:
                    stores[i].ingest(
                        lease.account,
                        [tp(key, subject=f"{lease.account}|{lease.owner}|{lease.token}")],
                        [],
                        [],
                        f"{lease.owner}-{n}",
                        now=at,
                        lease=lease,
                    )
                except LeaseLost:
                    refused[i] += 1

    try:
        _threads(workers, work)
    finally:
        for s in stores:
            s.close()
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT subject FROM touchpoints ORDER BY id")).all()
    finally:
        engine.dispose()
    written: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for (subject,) in rows:
        account, owner, token = subject.split("|")
        written[account].append((int(token), owner))
    for account in accounts:
        seq = written[account]
        assert [t for t, _ in seq] == sorted(t for t, _ in seq), f"{account}: token went back"
        writers: dict[int, set[str]] = defaultdict(set)
        for token, owner in seq:
            writers[token].add(owner)
        assert all(len(w) == 1 for w in writers.values()), f"{account}: two writers, one token"
        assert len(writers) > 1, f"{account} never changed hands"
    assert sum(refused) > 0, "no lease was ever lost: the test exercised nothing"


@contextmanager
def _stopped_after(statement: str, work: Callable[[], object]) -> Iterator[list[BaseException]]:
    """Run `work` on a thread that stops right after its first `statement`, inside that
    transaction, as a process stopped by SIGSTOP or a suspended VM would, until the block ends.
    Yields the list of what `work` raised once resumed (filled when the block has ended)."""
    paused, resume = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hook(conn: object, cursor: object, sql: str, *args: object) -> None:
        if threading.current_thread() is thread and statement in sql and not paused.is_set():
            paused.set()
            resume.wait(30)

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # looked at by the test after the block
            errors.append(exc)

    thread = threading.Thread(target=run)
    sa.event.listen(sa.Engine, "after_cursor_execute", hook)
    try:
        thread.start()
        assert paused.wait(10), f"{statement!r} never ran"
        yield errors
    finally:
        resume.set()
        thread.join(30)
        sa.event.remove(sa.Engine, "after_cursor_execute", hook)


def _take(store: Store, owner: str, accounts: list[str], timeout: float) -> list[Lease]:
    """Acquire `accounts` for `owner` again and again (real clock) until all are granted."""
    deadline = time.monotonic() + timeout
    got: list[Lease] = []
    while len(got) < len(accounts) and time.monotonic() < deadline:
        got += store.leases.acquire(
            owner, accounts, limit=len(accounts), duration=D, now=datetime.now(UTC)
        )
        got = list({lease.account: lease for lease in got}.values())
        time.sleep(0.1)
    return sorted(got, key=lambda lease: lease.account)


@pg_only
def test_a_writer_stopped_inside_its_write_loses_the_account_when_its_lease_runs_out(
    store: Store, store_url: str
) -> None:
    # The fence locks the lease row until the batch commits; a writer stopped in between must
    # not keep it (SKIP LOCKED passes over it) for as long as it sleeps: the account moves once
    # the lease ran out, and the stopped write, resumed, stores nothing.
    short = timedelta(seconds=1.5)
    (lease,) = store.leases.acquire("w1", ["home"], limit=1, duration=short, now=datetime.now(UTC))

    def write() -> None:
        store.ingest("home", [tp("mid:1@x")], [], [], "c-w1", now=datetime.now(UTC), lease=lease)

    with Store.open(store_url) as other, _stopped_after("FOR UPDATE", write) as errors:
        got = _take(other, "w2", ["home"], timeout=10)
        assert [(x.owner, x.token) for x in got] == [("w2", lease.token + 1)], (
            "a writer stopped inside its write kept the account past its lease"
        )
    assert [type(e) for e in errors] == [StoreError]
    assert "idle-in-transaction" in str(errors[0])  # what a stopped worker logs once resumed
    assert store.cursor("home") is None
    assert store.count_touchpoints() == 0


@pg_only
def test_a_worker_stopped_inside_a_renewal_does_not_keep_its_accounts(
    store: Store, store_url: str
) -> None:
    short = timedelta(seconds=1.5)
    held = store.leases.acquire("w1", ACCOUNTS, limit=4, duration=short, now=datetime.now(UTC))

    def renew() -> None:  # stops after renewing the first: that row stays locked meanwhile
        store.leases.renew("w1", held, duration=short, now=datetime.now(UTC))

    with Store.open(store_url) as other, _stopped_after("UPDATE leases", renew) as errors:
        got = _take(other, "w2", ACCOUNTS, timeout=10)
        assert [x.account for x in got] == sorted(ACCOUNTS), "a stopped renewal kept accounts"
    assert [type(e) for e in errors] == [StoreError]
