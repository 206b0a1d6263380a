"""The event log and the planned meetings: appends, promotion and the replay query."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import Select, Text, bindparam, cast, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from keepwarm.model import Touchpoint
from keepwarm.store import codec
from keepwarm.store.schema import ACCOUNTS, LOG, PLANNED
from keepwarm.store.sql import chunks, insert

NATURAL = ["natural_key", "counterpart"]
# Rows per statement (PostgreSQL) or per executemany (SQLite): bounds the parameters in memory.
INSERT_BATCH = 10_000

# PostgreSQL: the whole batch as one array per column, so the statement has 13 parameters
# whatever the batch size. executemany's multi-row VALUES has 13 per row, and psycopg's
# parsing of such a statement made a 10,000-row append three to four times slower.
_ARRAYS = [cast(bindparam(c), ARRAY(codec.ARRAY_TYPES.get(c, Text))) for c in codec.COLUMNS]
_UNNESTED = func.unnest(*_ARRAYS).table_valued(*codec.COLUMNS).render_derived()
_PG_APPEND = (
    postgresql.insert(LOG)
    .from_select(codec.COLUMNS, select(*(_UNNESTED.c[c] for c in codec.COLUMNS)))
    .on_conflict_do_nothing(index_elements=NATURAL)
    .returning(LOG.c.natural_key, LOG.c.counterpart)
)


# SQLite: one executemany of plain tuples, which pysqlite runs in C. The new rows are found by
# looking the batch's keys up first rather than by RETURNING: with RETURNING, SQLAlchemy renders
# multi-row VALUES and processes every parameter in Python: appending, then re-appending, 120k
# touchpoints in sync-sized batches took 1.6x the CPU of lookup + executemany.
_SQLITE_COMPILED = (
    sqlite.insert(LOG)
    .values({c: bindparam(c) for c in codec.COLUMNS})
    .on_conflict_do_nothing(index_elements=NATURAL)
    .compile(dialect=sqlite.dialect())
)
if _SQLITE_COMPILED.positiontup != list(codec.COLUMNS):
    # encode_rows builds tuples in COLUMNS order: the placeholders must be in that order too.
    raise ImportError(f"unexpected parameter order {_SQLITE_COMPILED.positiontup}")
_SQLITE_APPEND = str(_SQLITE_COMPILED)


def append(
    s: Session, dialect: str, touchpoints: Sequence[Touchpoint], now: datetime
) -> list[Touchpoint]:
    """Append to the log, skipping what is there already; return exactly the new touchpoints."""
    batch = codec.unique(touchpoints)
    if not batch:
        return []
    if dialect == "postgresql":
        inserted: set[tuple[str, str]] = set()
        for part in chunks(batch, INSERT_BATCH):
            rows = s.execute(_PG_APPEND, codec.encode_columns(part, now))
            inserted.update((nk, cp) for nk, cp in rows)
        new = [tp for tp in batch if (tp.natural_key, tp.counterpart) in inserted]
    else:
        new = _append_sqlite(s, batch, now)
    _count(s, dialect, new)
    return new


def _append_sqlite(s: Session, batch: Sequence[Touchpoint], now: datetime) -> list[Touchpoint]:
    # What is already there is read inside the same transaction, and SQLite lets one writer at
    # a time in: nothing can land between the lookup and the insert (a deferred transaction
    # that lost the race fails with SQLITE_BUSY instead). ON CONFLICT stays as a safety net.
    stored: set[tuple[str, str]] = set()
    for keys in chunks(sorted({tp.natural_key for tp in batch})):
        found = s.execute(
            select(LOG.c.natural_key, LOG.c.counterpart).where(LOG.c.natural_key.in_(keys))
        )
        stored.update((nk, cp) for nk, cp in found)
    new = [tp for tp in batch if (tp.natural_key, tp.counterpart) not in stored]
    connection = s.connection()
    for part in chunks(new, INSERT_BATCH):
        connection.exec_driver_sql(_SQLITE_APPEND, codec.encode_rows(part, now))
    return new


def upsert_planned(
    s: Session,
    dialect: str,
    account: str,
    planned: Sequence[Touchpoint],
    now: datetime,
    *,
    replace: bool,
) -> None:
    """Insert or update future meetings; with `replace`, drop the account's others (cancelled)."""
    batch = codec.unique(planned, keep_last=True)
    if replace:
        keep = {(tp.natural_key, tp.counterpart) for tp in batch}
        # An account has at most a few thousand future meetings: comparing in Python is simpler
        # and as fast as a NOT IN over a composite key, which SQLite cannot express portably.
        stored = s.execute(
            select(PLANNED.c.id, PLANNED.c.natural_key, PLANNED.c.counterpart).where(
                PLANNED.c.account == account
            )
        )
        stale = [pid for pid, nk, cp in stored if (nk, cp) not in keep]
        for part in chunks(stale):
            s.execute(delete(PLANNED).where(PLANNED.c.id.in_(part)))
    if not batch:
        return
    stmt = insert(dialect, PLANNED)
    stmt = stmt.on_conflict_do_update(
        index_elements=NATURAL,
        set_={f: stmt.excluded[f] for f in (*codec.FIELDS, "recorded_at") if f not in NATURAL},
    )
    for part in chunks(batch, INSERT_BATCH):
        s.execute(stmt, [codec.encode(tp, now) for tp in part])


def promote(s: Session, dialect: str, now: datetime) -> list[Touchpoint]:
    """Move planned meetings whose time has come into the log; return those new to it."""
    # Delete first: the rows we move are exactly the rows we took, whatever commits meanwhile.
    due = s.execute(
        delete(PLANNED).where(PLANNED.c.occurred_at <= now).returning(*codec.columns(PLANNED))
    )
    moving = sorted(codec.decode(due), key=lambda tp: (tp.occurred_at, tp.counterpart))
    return append(s, dialect, moving, now)


def planned(s: Session) -> list[Touchpoint]:
    query = select(*codec.columns(PLANNED)).order_by(
        PLANNED.c.occurred_at, PLANNED.c.counterpart, PLANNED.c.natural_key
    )
    return list(codec.decode(s.execute(query)))


def count(s: Session) -> int:
    return s.execute(select(func.count()).select_from(LOG)).scalar_one()


def replay_query(counterparts: Collection[str] | None) -> Select[tuple[object, ...]]:
    """The log in replay order, all of it or only `counterparts` (at most IN_CHUNK of them)."""
    query = select(*codec.columns(LOG))
    if counterparts is not None:
        query = query.where(LOG.c.counterpart.in_(counterparts))
    return query.order_by(LOG.c.counterpart, LOG.c.occurred_at, LOG.c.natural_key)


def _count(s: Session, dialect: str, new: Sequence[Touchpoint]) -> None:
    """Keep accounts.touchpoints equal to the log rows each account added."""
    per_account = Counter(tp.account for tp in new)
    if not per_account:
        return
    stmt = insert(dialect, ACCOUNTS)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={"touchpoints": ACCOUNTS.c.touchpoints + stmt.excluded.touchpoints},
    )
    s.execute(stmt, [{"name": a, "touchpoints": n} for a, n in sorted(per_account.items())])
