"""The projection is a pure fold: incremental updates equal a full replay, whatever the order.

Batches of touchpoints are appended in any order (with repeats) through the real store; after
each one the touched contacts are recomputed, as `keepwarm sync` does. The state cache must then
equal what `keepwarm rebuild` computes from the log, and re-appending a batch changes nothing.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from keepwarm.config.schema import Config, ContactsConfig, StoreConfig
from keepwarm.daemon import project
from keepwarm.model import Direction, Kind, Role, Touchpoint
from keepwarm.store import Store

START = datetime(2024, 1, 1, tzinfo=UTC)
ADDRESSES = ("ana@a.example", "ana.home@b.example", "bo@c.example", "cy@d.example")
# Ana writes from two addresses: one person by config alias, folded from both streams.
CONFIG = Config(contacts=ContactsConfig(aliases=(("ana@a.example", "ana.home@b.example"),)))


@st.composite
def touchpoints(draw: st.DrawFn) -> Touchpoint:
    meeting = draw(st.booleans())
    direction = (
        draw(st.sampled_from(Direction))
        if meeting
        else draw(st.sampled_from((Direction.OUT, Direction.IN)))
    )
    role = (
        Role.ATTENDEE
        if meeting
        else draw(st.sampled_from((Role.CC, Role.FROM if direction is Direction.IN else Role.TO)))
    )
    n = draw(st.integers(0, 40))
    return Touchpoint(
        natural_key=f"mid:{n}@x.example",
        counterpart=draw(st.sampled_from(ADDRESSES)),
        occurred_at=START + timedelta(hours=draw(st.integers(0, 24 * 700))),
        kind=Kind.MEETING if meeting else Kind.EMAIL,
        direction=direction,
        role=role,
        participants=draw(st.integers(2, 6)),
        account=draw(st.sampled_from(("home", "work"))),
        source=f"test:{n}",
    )


def apply_incrementally(store: Store, config: Config, batches: list[list[Touchpoint]]) -> None:
    now = START + timedelta(days=800)
    for batch in batches:
        new = store.ingest(batch[0].account if batch else "home", batch, [], [], None, now=now)
        project.update(store, config, {t.counterpart for t in new})


def states(store: Store) -> dict[str, dict[str, object]]:
    return {row["key"]: row for row in store.load_states()}


@st.composite
def histories(draw: st.DrawFn) -> list[list[Touchpoint]]:
    """Batches drawn from one set of touchpoints: an item seen again is the same item."""
    pool = draw(
        st.lists(
            touchpoints(),
            min_size=1,
            max_size=30,
            unique_by=lambda t: (t.natural_key, t.counterpart),
        )
    )
    return draw(st.lists(st.lists(st.sampled_from(pool), max_size=12), min_size=1, max_size=6))


@settings(max_examples=60, deadline=None)
@given(batches=histories())
def test_incremental_equals_replay_for_any_order(batches: list[list[Touchpoint]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'kw.db'}"
        config = Config(store=StoreConfig(url=url), contacts=CONFIG.contacts)
        with Store.open(url) as store:
            apply_incrementally(store, config, batches)
            incremental = states(store)
            # Appending every batch again, in reverse order, is a no-op.
            apply_incrementally(store, config, batches[::-1])
            assert states(store) == incremental
            project.rebuild(store, config)
            assert states(store) == incremental
        # A store that saw the same touchpoints in the opposite order agrees too.
        url2 = f"sqlite:///{Path(tmp) / 'kw2.db'}"
        with Store.open(url2) as other:
            apply_incrementally(other, config, [b[::-1] for b in batches[::-1]])
            assert states(other) == incremental


def test_incremental_equals_replay_on_postgresql(store_url: str) -> None:
    """One fixed shuffled history on both dialects (the property above runs on SQLite)."""
    history = [
        Touchpoint(
            natural_key=f"mid:{i}@x.example",
            counterpart=ADDRESSES[i % 4],
            occurred_at=START + timedelta(days=(i * 37) % 500, hours=i),
            kind=Kind.EMAIL,
            direction=Direction.OUT if i % 3 else Direction.IN,
            role=Role.TO if i % 3 else Role.FROM,
            participants=2,
            account="home",
            source=f"test:{i}",
        )
        for i in range(120)
    ]
    batches = [history[i::5] for i in range(5)][::-1]
    config = Config(store=StoreConfig(url=store_url), contacts=CONFIG.contacts)
    with Store.open(store_url) as store:
        apply_incrementally(store, config, batches)
        incremental = states(store)
        assert set(incremental) == {"ana@a.example", "bo@c.example", "cy@d.example"}
        assert incremental["ana@a.example"]["touchpoints"] == 60
        project.rebuild(store, config)
        assert states(store) == incremental
