"""The projection's to-do list: contacts with touchpoints their cached state does not reflect.

Marked inside the append's transaction (so it survives any crash that the append survives),
taken by the projection, cleared by (counterpart, version) once their states are saved.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.orm import Session

from keepwarm.store.schema import PENDING
from keepwarm.store.sql import Transactions, chunks, insert


def mark(s: Session, dialect: str, counterparts: Iterable[str]) -> None:
    """Add these contacts to the list, or bump their version if they are on it already."""
    rows = [{"counterpart": c, "version": 1} for c in sorted(set(counterparts))]
    if not rows:
        return
    stmt = insert(dialect, PENDING)
    stmt = stmt.on_conflict_do_update(
        index_elements=["counterpart"], set_={"version": PENDING.c.version + 1}
    )
    for part in chunks(rows):
        s.execute(stmt, list(part))


def take(s: Session, limit: int) -> dict[str, int]:
    """Up to `limit` pending contacts and the version each was seen at."""
    query = select(PENDING.c.counterpart, PENDING.c.version).order_by(PENDING.c.counterpart)
    return {str(c): int(v) for c, v in s.execute(query.limit(limit))}


def clear(s: Session, seen: dict[str, int]) -> None:
    """Drop the contacts whose version is still the one seen; a newer mark stays."""
    items = sorted(seen.items())
    for part in chunks(items):
        where = tuple_(PENDING.c.counterpart, PENDING.c.version).in_(list(part))
        s.execute(delete(PENDING).where(where))


def count(s: Session) -> int:
    return int(s.execute(select(func.count()).select_from(PENDING)).scalar_one())


class Pending:
    """The list through the store's transactions, as `store.pending`."""

    def __init__(self, read: Transactions, write: Transactions) -> None:
        self._read = read
        self._write = write

    def take(self, limit: int) -> dict[str, int]:
        """Contacts the projection has yet to recompute (up to `limit`), with their versions."""
        with self._read() as s:
            return take(s, limit)

    def done(self, seen: dict[str, int]) -> None:
        """The projection saved these contacts' states: clear the marks it saw."""
        with self._write() as s:
            clear(s, seen)

    def count(self) -> int:
        with self._read() as s:
            return count(s)
