"""Keep the relationship projection (the state cache) in step with the event log.

Incremental projection recomputes every touched contact from its whole history, so it equals a
full replay by construction; `rebuild` is that replay.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from itertools import groupby, islice
from operator import attrgetter
from pathlib import Path

from keepwarm.config.schema import Config
from keepwarm.model import Touchpoint
from keepwarm.relationship.assess import assess
from keepwarm.relationship.directory import Directory, read_vcards
from keepwarm.relationship.fold import canonical_order, fold
from keepwarm.relationship.state import Assessment, ContactState
from keepwarm.store import Store

# Contact states per save transaction in `update`: a few MB of rows, milliseconds of write lock.
UPDATE_BATCH = 2000
_counterpart = attrgetter("counterpart")


def read_batch(dialect: str) -> int:
    """Rows per fetch when replaying the log on `dialect`.

    Each row becomes a Touchpoint that the fold reads at once, so a small batch keeps the rows
    and their objects in the CPU cache: rebuilding 1M rows on SQLite took 0.5-1 s more CPU with
    10,000 rows per fetch than with 1,000, and 256 saved a further 0.1-0.3 s (a bare SELECT
    runs as fast at any of these sizes). On PostgreSQL each batch is a round trip to a
    server-side cursor: there 1,000 was as fast as 10,000, and 256 a little slower.
    """
    return 256 if dialect == "sqlite" else 1000


def directory(store: Store, config: Config) -> Directory:
    """Who is who: config rules, vCards named in config, and the contact events of the CLI."""
    people: list[tuple[str | None, tuple[str, ...]]] = []
    for path in config.contacts.vcards:
        # Old exports are often Latin-1: a stray byte must not stop every command.
        text = Path(path).expanduser().read_text(encoding="utf-8", errors="replace")
        people.extend(read_vcards(text))
    return Directory.build(config.contacts, config.model, store.contact_events(), people)


def _fold(
    people: Directory,
    config: Config,
    key: str,
    addresses: tuple[str, ...],
    touchpoints: Iterable[Touchpoint],
) -> ContactState:
    return fold(
        key,
        addresses,
        touchpoints,
        config.model,
        people.tier(key),
        extra_free_mail=config.detect.free_mail_domains,
    )


def _fold_stream(
    people: Directory, config: Config, stream: Iterable[Touchpoint]
) -> Iterator[tuple[str, ContactState]]:
    """Fold a log stream ordered by counterpart (`Store.iter_touchpoints`), one state per contact.

    A contact with one address folds as its run of the stream passes, so memory holds one
    contact's touchpoints, not the log. Contacts with several addresses (merged, few) wait for
    all their runs; so does a counterpart that is not its own key, which the log's normalised
    addresses make rare but which must not give one contact two states.
    """
    pending: dict[str, list[Touchpoint]] = defaultdict(list)
    for counterpart, group in groupby(stream, key=_counterpart):
        key = people.key(counterpart)
        addresses = people.addresses(key)
        if len(addresses) > 1 or key != counterpart:
            pending[key].extend(group)
            continue
        yield key, _fold(people, config, key, addresses, list(group))
    for key, touchpoints in pending.items():
        touchpoints.sort(key=canonical_order)
        yield key, _fold(people, config, key, people.addresses(key), touchpoints)


def rebuild(store: Store, config: Config) -> int:
    """Replay the whole log into a fresh state cache; returns the number of contacts."""
    people = directory(store, config)
    count = 0

    def states() -> Iterator[tuple[str, dict[str, object]]]:
        nonlocal count
        stream = store.iter_touchpoints(batch_size=read_batch(store.dialect))
        for key, state in _fold_stream(people, config, stream):
            count += 1
            yield key, state.to_dict()

    # One transaction: the cache is replaced whole or not at all.
    store.save_states(states(), replace_all=True)
    return count


def update(store: Store, config: Config, counterparts: Iterable[str]) -> int:
    """Recompute the contacts these addresses belong to; returns how many were recomputed."""
    people = directory(store, config)
    keys = {people.key(address) for address in counterparts}
    if not keys:
        return 0
    addresses = {address for key in keys for address in people.addresses(key)}

    def states() -> Iterator[tuple[str, dict[str, object]]]:
        unseen = set(keys)
        stream = store.iter_touchpoints(addresses, batch_size=read_batch(store.dialect))
        for key, state in _fold_stream(people, config, stream):
            unseen.discard(key)
            yield key, state.to_dict()
        for key in sorted(unseen):  # no touchpoint in the log (yet): an empty state
            yield key, _fold(people, config, key, people.addresses(key), []).to_dict()

    # Streamed and saved in batches, each its own short transaction: a first sync touches every
    # contact, and holding the write lock for the whole fold would stall other writers (the
    # CLI) past their busy timeout. Each contact's state is whole in its batch, and a crash
    # part-way leaves the rest as stale as a crash before any write would.
    rows = states()
    while batch := list(islice(rows, UPDATE_BATCH)):
        store.save_states(batch)
    return len(keys)


def assessments(store: Store, config: Config, now: datetime) -> list[Assessment]:
    """Every contact's status at `now`, with planned meetings and the directory's rules applied."""
    people = directory(store, config)
    next_meeting: dict[str, datetime] = {}
    for meeting in store.planned_meetings():
        key = people.key(meeting.counterpart)
        if meeting.occurred_at > now and (
            key not in next_meeting or meeting.occurred_at < next_meeting[key]
        ):
            next_meeting[key] = meeting.occurred_at
    found = []
    for row in store.load_states():
        state = ContactState.from_dict(row)
        key = state.key
        if (name := people.name(key)) is not None:
            state = replace(state, name=name)
        found.append(
            assess(
                state,
                now,
                config.model,
                tier=people.tier(key),
                tags=people.tags(key),
                pinned=people.pinned(key),
                ignored=people.ignored(key),
                snoozed_until=people.snoozed_until(key),
                next_meeting=next_meeting.get(key),
            )
        )
    return found


# Pending contacts taken per round of `catch_up`.
PENDING_BATCH = 5000


def catch_up(store: Store, config: Config) -> int:
    """Recompute every contact with touchpoints its state does not reflect yet.

    The list of such contacts is written with the touchpoints themselves (Store.ingest), so
    this repairs whatever a crash between append and projection left behind. It runs under the
    store-wide projection lock: two projections overlapping could save an older fold after a
    newer one, and the lock makes the last to start the last to write. Returns how many
    contacts were recomputed.
    """
    total = 0
    with store.exclusive("projection"):
        while seen := store.pending.take(PENDING_BATCH):
            total += update(store, config, seen)
            store.pending.done(seen)
    return total
