"""Keep the relationship projection (the state cache) in step with the event log.

Incremental projection recomputes every touched contact from its whole history, so it equals a
full replay by construction; `rebuild` is that replay.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from itertools import groupby
from operator import attrgetter
from pathlib import Path

from keepwarm.config.schema import Config
from keepwarm.model import Touchpoint
from keepwarm.relationship.assess import assess
from keepwarm.relationship.directory import Directory, read_vcards
from keepwarm.relationship.fold import fold
from keepwarm.relationship.state import Assessment, ContactState
from keepwarm.store import Store


def directory(store: Store, config: Config) -> Directory:
    """Who is who: config rules, vCards named in config, and the contact events of the CLI."""
    people: list[tuple[str | None, tuple[str, ...]]] = []
    for path in config.contacts.vcards:
        people.extend(read_vcards(Path(path).expanduser().read_text(encoding="utf-8")))
    return Directory.build(config.contacts, config.model, store.contact_events(), people)


def _fold(
    people: Directory, config: Config, key: str, touchpoints: Iterable[Touchpoint]
) -> ContactState:
    return fold(
        key,
        people.addresses(key),
        touchpoints,
        config.model,
        people.tier(key),
        extra_free_mail=config.detect.free_mail_domains,
    )


def rebuild(store: Store, config: Config) -> int:
    """Replay the whole log into a fresh state cache; returns the number of contacts."""
    people = directory(store, config)
    count = 0

    def states() -> Iterator[tuple[str, dict[str, object]]]:
        nonlocal count
        # Contacts with one address fold as the sorted stream passes; merged ones wait for all
        # their addresses (they are few).
        pending: dict[str, list[Touchpoint]] = defaultdict(list)
        for counterpart, group in groupby(store.iter_touchpoints(), key=attrgetter("counterpart")):
            key = people.key(counterpart)
            if len(people.addresses(key)) > 1:
                pending[key].extend(group)
                continue
            count += 1
            yield key, _fold(people, config, key, group).to_dict()
        for key, touchpoints in pending.items():
            touchpoints.sort(key=lambda t: (t.occurred_at, t.natural_key))
            count += 1
            yield key, _fold(people, config, key, touchpoints).to_dict()

    store.save_states(states(), replace_all=True)
    return count


def update(store: Store, config: Config, counterparts: Iterable[str]) -> int:
    """Recompute the contacts these addresses belong to; returns how many were recomputed."""
    people = directory(store, config)
    keys = {people.key(address) for address in counterparts}
    if not keys:
        return 0
    by_key: dict[str, list[Touchpoint]] = defaultdict(list)
    addresses = {address for key in keys for address in people.addresses(key)}
    for touchpoint in store.iter_touchpoints(addresses):
        by_key[people.key(touchpoint.counterpart)].append(touchpoint)
    rows = []
    for key in keys:
        touchpoints = sorted(by_key[key], key=lambda t: (t.occurred_at, t.natural_key))
        rows.append((key, _fold(people, config, key, touchpoints).to_dict()))
    store.save_states(rows)
    return len(rows)


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
