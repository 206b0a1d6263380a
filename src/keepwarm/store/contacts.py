"""What users say about people (contact events) and the projection's per-contact cache."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from itertools import islice
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from keepwarm.model import ContactEvent
from keepwarm.store.schema import EVENTS, STATES
from keepwarm.store.sql import chunks, insert

# States per executemany: bounds memory when a rebuild streams every contact through.
STATE_BATCH = 1000


def append_event(s: Session, event: ContactEvent) -> None:
    s.execute(
        EVENTS.insert().values(
            action=event.action, subject=event.subject, value=event.value, at=event.at
        )
    )


def events(s: Session) -> list[ContactEvent]:
    query = select(EVENTS.c.action, EVENTS.c.subject, EVENTS.c.value, EVENTS.c.at)
    return [ContactEvent(*row) for row in s.execute(query.order_by(EVENTS.c.id))]


def save_states(
    s: Session, dialect: str, states: Iterable[tuple[str, dict[str, Any]]], *, replace_all: bool
) -> None:
    if replace_all:
        # Emptying first and inserting everything is "upsert, then delete all others" without a
        # NOT IN list as long as the whole cache.
        s.execute(delete(STATES))
    stmt = insert(dialect, STATES)
    stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"data": stmt.excluded.data})
    it = iter(states)
    while batch := list(islice(it, STATE_BATCH)):
        # Last write wins within a batch too: one statement may not upsert a key twice.
        rows = {key: json.dumps(data, separators=(",", ":")) for key, data in batch}
        s.execute(stmt, [{"key": k, "data": v} for k, v in rows.items()])


def load_states(s: Session) -> list[dict[str, Any]]:
    query = select(STATES.c.data).order_by(STATES.c.key)
    return [json.loads(data) for data in s.execute(query).scalars()]


def delete_states(s: Session, keys: Collection[str]) -> None:
    for part in chunks(sorted(set(keys))):
        s.execute(delete(STATES).where(STATES.c.key.in_(part)))
