"""The event log: idempotent appends, the cursor moving only with its batch, planned meetings,
datetimes, replay order and streaming. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import gc
import random
import tracemalloc
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import create_engine, text

from keepwarm.errors import StoreError
from keepwarm.model import Direction, Kind, Role, Touchpoint
from keepwarm.store import Store

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def tp(
    key: str,
    counterpart: str = "ann@example.org",
    at: datetime = NOW - timedelta(days=1),
    *,
    account: str = "home",
    kind: Kind = Kind.EMAIL,
    subject: str | None = None,
) -> Touchpoint:
    return Touchpoint(
        natural_key=key,
        counterpart=counterpart,
        occurred_at=at,
        kind=kind,
        direction=Direction.OUT,
        role=Role.TO,
        participants=2,
        account=account,
        source="maildir",
        name="Ann",
        thread_key="t1",
        subject=subject,
    )


def meeting(key: str, counterpart: str, at: datetime, account: str = "cal") -> Touchpoint:
    return tp(key, counterpart, at, account=account, kind=Kind.MEETING)


def test_ingest_twice_adds_nothing_the_second_time(store: Store) -> None:
    batch = [tp(f"mid:{i}@x", f"p{i % 3}@example.org") for i in range(20)]
    first = store.ingest("home", batch, [], [], "c1", now=NOW)
    second = store.ingest("home", batch, [], [], "c2", now=NOW)
    assert first == batch
    assert second == []
    assert store.count_touchpoints() == 20
    [state] = store.account_states()
    assert (state.touchpoints, state.cursor) == (20, "c2")


def test_ingest_returns_only_the_new_rows_of_a_mixed_batch(store: Store) -> None:
    old = [tp("mid:1@x"), tp("mid:2@x")]
    store.ingest("home", old, [], [], None, now=NOW)
    fresh = tp("mid:3@x")
    dup_in_batch = tp("mid:4@x")
    new = store.ingest("home", [*old, fresh, dup_in_batch, dup_in_batch], [], [], None, now=NOW)
    assert new == [fresh, dup_in_batch]
    assert store.count_touchpoints() == 4


def test_same_message_in_two_accounts_counts_once(store: Store) -> None:
    home = tp("mid:shared@x", account="home")
    work = tp("mid:shared@x", account="work")
    other_person = tp("mid:shared@x", "bob@example.org", account="work")
    assert store.ingest("home", [home], [], [], None, now=NOW) == [home]
    assert store.ingest("work", [work, other_person], [], [], None, now=NOW) == [other_person]
    counts = {s.name: s.touchpoints for s in store.account_states()}
    assert counts == {"home": 1, "work": 1}
    assert [t.account for t in store.iter_touchpoints()] == ["home", "work"]


def test_a_failing_batch_leaves_the_old_cursor_and_stores_nothing(store: Store) -> None:
    store.ingest("home", [tp("mid:1@x")], [], [], "cursor-1", now=NOW)
    # counterpart is NOT NULL: the database itself rejects this row, mid-transaction.
    broken = tp("mid:3@x", cast(Any, None))
    with pytest.raises(StoreError, match="database error"):
        store.ingest("home", [tp("mid:2@x"), broken], [], [], "cursor-2", now=NOW)
    assert store.cursor("home") == "cursor-1"
    assert store.count_touchpoints() == 1
    [state] = store.account_states()
    assert state.touchpoints == 1


def test_cursor_none_keeps_the_stored_cursor(store: Store) -> None:
    store.ingest("home", [], [], [], "c1", now=NOW)
    store.ingest("home", [tp("mid:1@x")], [], [], None, now=NOW)
    assert store.cursor("home") == "c1"
    assert store.cursor("never-seen") is None


def test_planned_meetings_upsert_replace_and_promote(store: Store) -> None:
    soon = meeting("evt:a:", "ann@example.org", NOW + timedelta(days=1))
    later = meeting("evt:b:", "bob@example.org", NOW + timedelta(days=10))
    store.ingest("cal", [], [later, soon], [], None, now=NOW)
    assert store.planned_meetings() == [soon, later]

    moved = meeting("evt:a:", "ann@example.org", NOW + timedelta(days=2))
    other_account = meeting("evt:c:", "cy@example.org", NOW + timedelta(days=3), account="cal2")
    store.ingest("cal2", [], [other_account], [], None, now=NOW)
    # `later` was cancelled: replace_planned drops it, but only within this account.
    store.ingest("cal", [], [moved], [], None, now=NOW, replace_planned=True)
    assert store.planned_meetings() == [moved, other_account]

    assert store.promote_planned(NOW) == []
    promoted = store.promote_planned(NOW + timedelta(days=2))
    assert promoted == [moved]
    assert store.promote_planned(NOW + timedelta(days=2)) == []
    assert store.planned_meetings() == [other_account]
    assert list(store.iter_touchpoints()) == [moved]
    assert {s.name: s.touchpoints for s in store.account_states()} == {"cal": 1, "cal2": 0}


def test_a_meeting_held_then_deleted_before_the_next_poll_is_kept(store: Store) -> None:
    held = meeting("evt:a:", "ann@example.org", NOW + timedelta(hours=1))
    store.ingest("cal", [], [held], [], None, now=NOW, replace_planned=True)
    # The next poll comes after the meeting, which was deleted from the calendar meanwhile:
    # it happened, so it joins the log rather than vanishing with the planned rows.
    new = store.ingest("cal", [], [], [], None, now=NOW + timedelta(hours=3), replace_planned=True)
    assert new == [held]
    assert store.planned_meetings() == []
    assert list(store.iter_touchpoints()) == [held]


def test_promoting_a_meeting_already_in_the_log_adds_nothing(store: Store) -> None:
    at = NOW + timedelta(hours=1)
    store.ingest("cal", [], [meeting("evt:a:", "ann@example.org", at)], [], None, now=NOW)
    # The connector saw it happen before the daemon promoted it.
    store.ingest("cal", [meeting("evt:a:", "ann@example.org", at)], [], [], None, now=NOW)
    assert store.promote_planned(at) == []
    assert store.planned_meetings() == []
    assert store.count_touchpoints() == 1


def test_datetimes_come_back_aware_utc_and_exact(store: Store) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    stamps = [
        datetime(2024, 3, 31, 1, 59, 59, 999_999, tzinfo=india),
        datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=UTC),  # before the epoch
        datetime(2038, 1, 19, 3, 14, 8, tzinfo=timezone(timedelta(hours=-8))),  # past 32 bits
    ]
    batch = [tp(f"mid:{i}@x", at=at) for i, at in enumerate(stamps)]
    store.ingest("home", batch, [], [], None, now=datetime(2024, 1, 1, 5, tzinfo=india))
    got = sorted(t.occurred_at for t in store.iter_touchpoints())
    assert got == sorted(stamps)
    assert all(at.tzinfo is UTC for at in got)
    [state] = store.account_states()
    assert state.last_sync == datetime(2023, 12, 31, 23, 30, tzinfo=UTC)
    assert state.last_sync is not None
    assert state.last_sync.tzinfo is UTC


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.ingest("home", [tp("mid:1@x", at=datetime(2024, 1, 1))], [], [], None, now=NOW)
    assert store.count_touchpoints() == 0


def test_iter_touchpoints_is_in_replay_order(store: Store) -> None:
    rng = random.Random(7)
    people = ["ab@x.org", "a.b@x.org", "a-b@x.org", "Zed@x.org", "zed@x.org", "émile@x.org"]
    times = [NOW - timedelta(days=rng.randrange(5)) for _ in range(4)]
    batch = [
        tp(f"mid:{rng.randrange(10**6)}@x", rng.choice(people), rng.choice(times))
        for _ in range(300)
    ]
    store.ingest("home", batch, [], [], None, now=NOW)
    expected = sorted(
        {(t.natural_key, t.counterpart): t for t in batch}.values(),
        key=lambda t: (t.counterpart, t.occurred_at, t.natural_key),
    )
    assert list(store.iter_touchpoints(batch_size=7)) == expected


def test_iter_touchpoints_for_some_counterparts(store: Store) -> None:
    # More counterparts than one IN list holds, so the chunks must join up in order.
    batch = [tp(f"mid:{i}@x", f"p{i:04d}@x.org", NOW - timedelta(minutes=i)) for i in range(1200)]
    store.ingest("home", batch, [], [], None, now=NOW)
    wanted = {f"p{i:04d}@x.org" for i in range(0, 1200, 2)} | {"nobody@x.org"}
    got = list(store.iter_touchpoints(wanted))
    assert [t.counterpart for t in got] == sorted(wanted - {"nobody@x.org"})
    assert list(store.iter_touchpoints([])) == []


def test_iter_touchpoints_streams_instead_of_loading_the_log(store: Store, store_url: str) -> None:
    subject = "s" * 200
    batch = [tp(f"mid:{i}@x", f"p{i % 5000}@x.org", subject=subject) for i in range(50_000)]
    assert len(store.ingest("home", batch, [], [], None, now=NOW)) == 50_000
    del batch
    gc.collect()

    if store.dialect == "postgresql":
        rows = store.iter_touchpoints(batch_size=500)
        next(rows)
        # A server-side cursor: the other backend is fetching pages, not sending the whole result.
        fetching = _pg_queries_of_others(store_url)
        assert fetching, "the streaming connection should be idle in its transaction"
        assert all(q.startswith("FETCH FORWARD") for q in fetching), fetching
        rows.close()

    # Traced from before the query runs, so a result loaded whole at the first row counts too.
    tracemalloc.start()
    try:
        seen = Counter(t.counterpart for t in store.iter_touchpoints(batch_size=500))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(seen.values()) == 50_000
    assert len(seen) == 5000
    # The subjects alone, one string each as read back, would take 50,000 x 249 bytes = 12 MB.
    assert peak < 3_000_000, f"{peak / 1e6:.1f} MB held while streaming"


def test_an_abandoned_iterator_releases_its_connection(store: Store) -> None:
    store.ingest("home", [tp(f"mid:{i}@x") for i in range(10)], [], [], None, now=NOW)
    rows = store.iter_touchpoints(batch_size=2)
    next(rows)
    rows.close()
    store.ingest("home", [tp("mid:new@x")], [], [], "c", now=NOW)
    assert store.count_touchpoints() == 11


def _pg_queries_of_others(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state = 'idle in transaction'"
                )
            )
            return [q for (q,) in rows]
    finally:
        engine.dispose()
