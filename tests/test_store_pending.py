"""The projection's pending list: written with the touchpoints, so no crash leaves a state stale."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from keepwarm.config.schema import Config
from keepwarm.daemon import project
from keepwarm.model import Direction, Kind, Role, Touchpoint
from keepwarm.store import Store

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
CONFIG = Config()


def email(n: int, who: str, days_ago: int = 1) -> Touchpoint:
    return Touchpoint(
        f"mid:{n}@x",
        who,
        NOW - timedelta(days=days_ago),
        Kind.EMAIL,
        Direction.IN,
        Role.FROM,
        2,
        "home",
        f"test:{n}",
    )


def states(store: Store) -> dict[str, object]:
    return {row["key"]: row for row in store.load_states()}


def test_an_append_marks_its_contacts_once_and_a_repeat_marks_nothing(store: Store) -> None:
    store.ingest("home", [email(1, "ann@x"), email(2, "bob@x")], [], [], None, now=NOW)
    assert set(store.pending.take(10)) == {"ann@x", "bob@x"}
    project.catch_up(store, CONFIG)
    assert store.pending.count() == 0
    store.ingest("home", [email(1, "ann@x")], [], [], None, now=NOW)  # nothing new
    assert store.pending.count() == 0


def test_a_crash_between_append_and_projection_is_repaired_by_the_next_catch_up(
    store_url: str,
) -> None:
    with Store.open(store_url) as first:
        first.ingest("home", [email(1, "ann@x", 30)], [], [], None, now=NOW)
        project.catch_up(first, CONFIG)
        # The process dies after this append commits and before any projection runs.
        first.ingest("home", [email(2, "ann@x"), email(3, "cy@x")], [], [], None, now=NOW)
    with Store.open(store_url) as second:
        assert project.catch_up(second, CONFIG) == 2
        repaired = states(second)
        project.rebuild(second, CONFIG)
        assert repaired == states(second)
        assert set(repaired) == {"ann@x", "cy@x"}


def test_a_contact_marked_again_while_it_was_folded_stays_pending(store: Store) -> None:
    store.ingest("home", [email(1, "ann@x")], [], [], None, now=NOW)
    seen = store.pending.take(10)
    store.ingest("home", [email(2, "ann@x")], [], [], None, now=NOW)  # lands mid-fold
    store.pending.done(seen)
    assert set(store.pending.take(10)) == {"ann@x"}  # the newer mark survives the clear


def test_promoted_meetings_are_marked_too(store: Store) -> None:
    meeting = Touchpoint(
        "evt:1|x",
        "dee@x",
        NOW + timedelta(days=1),
        Kind.MEETING,
        Direction.MUTUAL,
        Role.ATTENDEE,
        2,
        "cal",
        "test:evt1",
    )
    store.ingest("cal", [], [meeting], [], None, now=NOW)
    assert store.pending.count() == 0
    store.promote_planned(NOW + timedelta(days=2))
    assert set(store.pending.take(10)) == {"dee@x"}


def test_the_projection_lock_holds_across_stores(store_url: str) -> None:
    """Two processes' stores (two engines) never run a projection at the same time."""
    Store.open(store_url).close()  # migrated once, as a running team's store is
    inside: list[str] = []
    entered: list[str] = []
    overlap = threading.Event()

    def hold(name: str) -> None:
        with Store.open(store_url) as store, store.exclusive("projection"):
            entered.append(name)
            inside.append(name)
            if len(inside) > 1:
                overlap.set()
            time.sleep(0.3)
            inside.remove(name)

    threads = [threading.Thread(target=hold, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not overlap.is_set()
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(entered) == ["w0", "w1", "w2"]  # each held the lock in turn
