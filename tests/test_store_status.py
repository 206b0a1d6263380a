"""Recorded statuses and status events (`store/status.py`), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from keepwarm.store import Store, engine
from keepwarm.store.schema import CONTACT_STATUS, STATUS_EVENTS
from keepwarm.store.status import (
    RECONNECTED,
    STATUS_LOCK,
    RecordedStatus,
    StatusChange,
    StatusLog,
)

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_the_first_record_is_a_baseline_and_the_same_record_again_adds_nothing(
    store: Store,
) -> None:
    log = StatusLog.of(store)
    first = log.record({"b@x": "cold", "a@x": "warm"}, {}, now=NOW)
    assert first == [StatusChange("a@x", NOW, None, "warm"), StatusChange("b@x", NOW, None, "cold")]
    assert all(c.baseline for c in first)
    assert log.record({"b@x": "cold", "a@x": "warm"}, {}, now=NOW) == []
    assert log.record({"b@x": "cold", "a@x": "warm"}, {}, now=NOW + HOUR) == []
    assert log.current() == {
        "a@x": RecordedStatus("warm", NOW),
        "b@x": RecordedStatus("cold", NOW),
    }
    assert len(log.changes(NOW - HOUR)) == 2


def test_a_change_appends_an_event_and_moves_the_recorded_status(store: Store) -> None:
    log = StatusLog.of(store)
    log.record({"a@x": "warm", "b@x": "warm"}, {}, now=NOW)
    later = NOW + timedelta(days=9)
    changed = log.record({"a@x": "cooling", "b@x": "warm", "c@x": "new"}, {}, now=later)
    assert changed == [
        StatusChange("a@x", later, "warm", "cooling"),
        StatusChange("c@x", later, None, "new"),  # first seen now: a baseline of its own
    ]
    assert log.current()["a@x"] == RecordedStatus("cooling", later)
    assert log.current()["b@x"] == RecordedStatus("warm", NOW)  # unchanged: since stays
    coldest = later + timedelta(days=7)
    log.record({"a@x": "cold"}, {}, now=coldest)  # contacts left out are left alone
    assert [(c.old, c.new, c.at) for c in log.history(["a@x"])] == [
        (None, "warm", NOW),
        ("warm", "cooling", later),
        ("cooling", "cold", coldest),
    ]
    assert log.current()["b@x"] == RecordedStatus("warm", NOW)


def test_a_check_older_than_the_recorded_status_does_not_overwrite_it(store: Store) -> None:
    log = StatusLog.of(store)
    log.record({"a@x": "warm"}, {}, now=NOW)
    log.record({"a@x": "cold"}, {}, now=NOW + timedelta(days=30))
    # A slow check that assessed at an earlier moment commits after the newer one.
    assert log.record({"a@x": "cooling"}, {}, now=NOW + timedelta(days=20)) == []
    assert log.current()["a@x"].status == "cold"


def test_changes_are_the_events_after_since_up_to_until_oldest_first(store: Store) -> None:
    log = StatusLog.of(store)
    times = [NOW + timedelta(days=d) for d in range(4)]
    for i, at in enumerate(times):
        log.record({"a@x": ("warm", "cooling", "cold", "warm")[i]}, {}, now=at)
    window = log.changes(times[0], until=times[2])
    assert [(c.old, c.new) for c in window] == [("warm", "cooling"), ("cooling", "cold")]
    assert [c.at for c in log.changes(times[1])] == times[2:]
    assert log.changes(times[3]) == []
    before = times[0] - HOUR
    assert [c.old for c in log.changes(before)] == [None, "warm", "cooling", "cold"]
    assert [c.old for c in log.changes(before, baseline=False)] == ["warm", "cooling", "cold"]


def test_a_reconnection_is_recorded_once_beside_the_status(store: Store) -> None:
    log = StatusLog.of(store)
    log.record({"a@x": "cold"}, {}, now=NOW)
    answered = NOW + timedelta(days=2)
    check = answered + HOUR
    recorded = log.record({"a@x": "warm"}, {"a@x": answered}, now=check)
    assert recorded == [
        StatusChange("a@x", check, "cold", "warm"),
        StatusChange("a@x", check, "warm", RECONNECTED),
    ]
    assert recorded[1].reconnection
    # The assessment says "reconnected" for 30 days: each later check records nothing.
    assert log.record({"a@x": "warm"}, {"a@x": answered}, now=check) == []
    assert log.record({"a@x": "warm"}, {"a@x": answered}, now=check + timedelta(days=3)) == []
    assert log.current()["a@x"] == RecordedStatus("warm", check)  # not a status
    # A later reach-out answered again is a new reconnection.
    again = check + timedelta(days=90)
    assert log.record({"a@x": "warm"}, {"a@x": again - HOUR}, now=again) == [
        StatusChange("a@x", again, "warm", RECONNECTED)
    ]


def test_a_reconnection_seen_at_the_first_check_is_part_of_the_baseline(store: Store) -> None:
    log = StatusLog.of(store)
    answered = NOW - timedelta(days=5)
    assert log.record({"a@x": "warm"}, {"a@x": answered}, now=NOW) == [
        StatusChange("a@x", NOW, None, "warm"),
        StatusChange("a@x", NOW, None, RECONNECTED),
    ]
    assert log.record({"a@x": "warm"}, {"a@x": answered}, now=NOW + HOUR) == []
    # An answer stamped after the check (clock skew) waits for a check that has reached it.
    future = NOW + timedelta(days=1)
    assert log.record({"a@x": "warm"}, {"a@x": future}, now=NOW + HOUR) == []


def test_history_covers_several_keys_of_one_person(store: Store) -> None:
    log = StatusLog.of(store)
    log.record({"ana@work.example": "warm"}, {}, now=NOW)
    log.record({"ana@home.example": "cold"}, {}, now=NOW + HOUR)
    log.record({"bo@x.example": "cold"}, {}, now=NOW + HOUR)
    found = log.history(["ana@home.example", "ana@work.example"])
    assert [(c.contact, c.new) for c in found] == [
        ("ana@work.example", "warm"),
        ("ana@home.example", "cold"),
    ]


def test_many_contacts_in_one_record(store: Store) -> None:
    log = StatusLog.of(store)
    statuses = {f"p{i:05d}@x.example": "warm" for i in range(1200)}
    assert len(log.record(statuses, {}, now=NOW)) == 1200
    cooled = {k: ("cooling" if i % 3 == 0 else "warm") for i, k in enumerate(statuses)}
    answered = {k: NOW for i, k in enumerate(statuses) if i % 600 == 1}
    changed = log.record(cooled, answered, now=NOW + HOUR)
    assert len(changed) == 400 + 2
    assert len(log.current()) == 1200
    assert len(log.history(list(statuses))) == 1200 + 402


def test_a_check_waits_for_one_in_progress_and_sees_what_it_recorded(store_url: str) -> None:
    """Two checks at once record each change once: the second reads after the first commits."""
    bound = engine.create(store_url)
    with Store.open(store_url) as store:
        conn = bound.connect().execution_options(**{engine.IMMEDIATE: True})
        transaction = conn.begin()
        try:
            # Another checker, mid-transaction: it holds the lock and has recorded a@x.
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": STATUS_LOCK})
            conn.execute(CONTACT_STATUS.insert().values(contact="a@x", status="warm", since=NOW))
            conn.execute(STATUS_EVENTS.insert().values(contact="a@x", at=NOW, old=None, new="warm"))
            found: list[list[StatusChange]] = []
            second = threading.Thread(
                target=lambda: found.append(
                    StatusLog.of(store).record({"a@x": "warm"}, {}, now=NOW)
                )
            )
            second.start()
            time.sleep(0.5)
            assert second.is_alive(), "the second check did not wait for the first"
            transaction.commit()
            second.join(timeout=20)
        finally:
            if transaction.is_active:
                transaction.rollback()
            conn.close()
            bound.dispose()
        assert found == [[]]
        assert StatusLog.of(store).history(["a@x"]) == [StatusChange("a@x", NOW, None, "warm")]
