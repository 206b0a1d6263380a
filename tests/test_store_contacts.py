"""Contact events (append order) and the projection's state cache (save, replace, delete)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from keepwarm.model import ContactEvent
from keepwarm.store import Store

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def state(key: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    return key, {"key": key, "addresses": [key], **extra}


def test_contact_events_come_back_in_append_order(store: Store) -> None:
    # Times deliberately out of order: the append order, not the timestamp, is the replay order.
    events = [
        ContactEvent("tier", "ann@example.org", "inner", NOW),
        ContactEvent("merge", "ann@example.org", "ann@work.example", NOW - timedelta(days=1)),
        ContactEvent("ignore", "@newsletters.example", None, NOW - timedelta(days=2)),
        ContactEvent("tier", "ann@example.org", "close", NOW),
    ]
    for event in events:
        store.append_contact_event(event)
    got = store.contact_events()
    assert got == events
    assert all(e.at.tzinfo is UTC for e in got)


def test_states_upsert_and_load(store: Store) -> None:
    assert store.load_states() == []
    store.save_states([state("b@x.org", warmth=1.5), state("a@x.org", monthly={"2024-05": 2})])
    store.save_states([state("b@x.org", warmth=2.5, name="Bé")])
    assert store.load_states() == [
        {"key": "a@x.org", "addresses": ["a@x.org"], "monthly": {"2024-05": 2}},
        {"key": "b@x.org", "addresses": ["b@x.org"], "warmth": 2.5, "name": "Bé"},
    ]


def test_replace_all_keeps_only_the_given_states(store: Store) -> None:
    store.save_states(state(f"p{i}@x.org") for i in range(5))
    # A generator larger than one write batch, as a full rebuild streams them.
    store.save_states((state(f"q{i:05d}@x.org") for i in range(2500)), replace_all=True)
    keys = [s["key"] for s in store.load_states()]
    assert keys == [f"q{i:05d}@x.org" for i in range(2500)]
    store.save_states([], replace_all=True)
    assert store.load_states() == []


def test_delete_states(store: Store) -> None:
    store.save_states(state(f"p{i:04d}@x.org") for i in range(1200))
    store.delete_states({f"p{i:04d}@x.org" for i in range(0, 1200, 2)} | {"nobody@x.org"})
    keys = [s["key"] for s in store.load_states()]
    assert keys == [f"p{i:04d}@x.org" for i in range(1, 1200, 2)]
    store.delete_states([])
    assert len(store.load_states()) == 600
