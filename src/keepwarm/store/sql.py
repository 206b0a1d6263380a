"""Dialect-neutral statement helpers shared by the store's query modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

T = TypeVar("T")

# A source of transactions (the store's read or write session factory), for the sub-APIs
# (`store.outbox`, `store.leases`, `store.status`, `store.pending`).
Transactions = Callable[[], AbstractContextManager[Session]]

# Both dialects spell "INSERT ... ON CONFLICT" the same way; SQLAlchemy has one class for each.
Insert = sqlite.Insert | postgresql.Insert

# Rows per IN (...) list: far below SQLite's and PostgreSQL's bound-parameter limits.
IN_CHUNK = 500


def insert(dialect: str, table: Table) -> Insert:
    """An INSERT that can take ON CONFLICT clauses on `dialect` (sqlite or postgresql)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
