"""Touchpoint <-> row conversion, written for the hot replay loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, type_coerce
from sqlalchemy.types import BigInteger, Integer

from keepwarm.model import Direction, Kind, Role, Touchpoint
from keepwarm.store.schema import EPOCH, to_micros

# Dict lookups: calling an Enum class to find a member costs several times more per row.
_KINDS = {m.value: m for m in Kind}
_DIRECTIONS = {m.value: m for m in Direction}
_ROLES = {m.value: m for m in Role}

FIELDS = (
    "natural_key",
    "counterpart",
    "occurred_at",
    "kind",
    "direction",
    "role",
    "participants",
    "account",
    "source",
    "name",
    "thread_key",
    "subject",
)

COLUMNS = (*FIELDS, "recorded_at")
# Element types of the per-column arrays of `encode_columns`; text for the rest.
ARRAY_TYPES: dict[str, type[Integer]] = {
    "occurred_at": BigInteger,
    "participants": Integer,
    "recorded_at": BigInteger,
}


def columns(table: Table) -> list[ColumnElement[Any]]:
    """The touchpoint columns of `table`, occurred_at as raw microseconds for `decode`."""
    return [
        type_coerce(table.c[f], BigInteger()).label(f) if f == "occurred_at" else table.c[f]
        for f in FIELDS
    ]


def decode(rows: Iterable[Sequence[Any]]) -> Iterator[Touchpoint]:
    """Rows selected with `columns` -> Touchpoints, at replay speed.

    Building a frozen dataclass through __init__ costs as much as SQLite reading the row, so
    this fills the slots the way the generated __init__ does (object.__setattr__ semantics)
    without its per-field lookups. `_SETTERS` is checked against the model at import.
    """
    kinds, directions, roles, epoch, delta = _KINDS, _DIRECTIONS, _ROLES, EPOCH, timedelta
    new = object.__new__
    s_nk, s_cp, s_at, s_kind, s_dir, s_role, s_ppl, s_acc, s_src, s_name, s_thr, s_subj = _SETTERS
    for nk, cp, at, kind, direction, role, people, account, source, name, thread, subj in rows:
        tp = new(Touchpoint)
        s_nk(tp, nk)
        s_cp(tp, cp)
        s_at(tp, epoch + delta(0, 0, at))  # positional timedelta(days, seconds, microseconds)
        s_kind(tp, kinds[kind])
        s_dir(tp, directions[direction])
        s_role(tp, roles[role])
        s_ppl(tp, people)
        s_acc(tp, account)
        s_src(tp, source)
        s_name(tp, name)
        s_thr(tp, thread)
        s_subj(tp, subj)
        yield tp


def _slot_setters() -> tuple[Callable[[Touchpoint, Any], None], ...]:
    names = tuple(f.name for f in dataclasses.fields(Touchpoint))
    if names != FIELDS or hasattr(Touchpoint, "__post_init__"):
        # A new model field needs a column (and a migration) before the store can return it.
        raise ImportError(f"keepwarm.store.codec knows Touchpoint fields {FIELDS}, not {names}")
    return tuple(getattr(Touchpoint, name).__set__ for name in names)


_SETTERS = _slot_setters()


def encode(tp: Touchpoint, recorded_at: datetime) -> dict[str, Any]:
    """One Touchpoint -> insert parameters (enums as their plain string values)."""
    return {
        "natural_key": tp.natural_key,
        "counterpart": tp.counterpart,
        "occurred_at": tp.occurred_at,
        "kind": tp.kind.value,
        "direction": tp.direction.value,
        "role": tp.role.value,
        "participants": tp.participants,
        "account": tp.account,
        "source": tp.source,
        "name": tp.name,
        "thread_key": tp.thread_key,
        "subject": tp.subject,
        "recorded_at": recorded_at,
    }


def encode_rows(tps: Sequence[Touchpoint], recorded_at: datetime) -> list[tuple[Any, ...]]:
    """Touchpoints -> one tuple per row in COLUMNS order (datetimes as epoch microseconds), for
    a driver-level executemany that skips SQLAlchemy's per-parameter processing."""
    recorded = to_micros(recorded_at)
    return [
        (
            tp.natural_key,
            tp.counterpart,
            to_micros(tp.occurred_at),
            tp.kind.value,
            tp.direction.value,
            tp.role.value,
            tp.participants,
            tp.account,
            tp.source,
            tp.name,
            tp.thread_key,
            tp.subject,
            recorded,
        )
        for tp in tps
    ]


def encode_columns(tps: Sequence[Touchpoint], recorded_at: datetime) -> dict[str, list[Any]]:
    """Touchpoints -> one list per column (datetimes as epoch microseconds), for array binds."""
    return {
        "natural_key": [tp.natural_key for tp in tps],
        "counterpart": [tp.counterpart for tp in tps],
        "occurred_at": [to_micros(tp.occurred_at) for tp in tps],
        "kind": [tp.kind.value for tp in tps],
        "direction": [tp.direction.value for tp in tps],
        "role": [tp.role.value for tp in tps],
        "participants": [tp.participants for tp in tps],
        "account": [tp.account for tp in tps],
        "source": [tp.source for tp in tps],
        "name": [tp.name for tp in tps],
        "thread_key": [tp.thread_key for tp in tps],
        "subject": [tp.subject for tp in tps],
        "recorded_at": [to_micros(recorded_at)] * len(tps),
    }


def unique(touchpoints: Iterable[Touchpoint], *, keep_last: bool = False) -> list[Touchpoint]:
    """Touchpoints with one per (natural_key, counterpart), in first-seen order.

    One statement may not touch the same key twice (PostgreSQL refuses it for upserts), and the
    caller's "what was new" must not list a touchpoint twice.
    """
    seen: dict[tuple[str, str], Touchpoint] = {}
    for tp in touchpoints:
        key = (tp.natural_key, tp.counterpart)
        if keep_last or key not in seen:
            seen[key] = tp
    return list(seen.values())
