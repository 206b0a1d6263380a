"""`Store`: the one object the rest of keepwarm uses to read and write the database."""

from __future__ import annotations

from collections.abc import Collection, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from keepwarm.errors import StoreError
from keepwarm.model import ContactEvent, Skip, Touchpoint
from keepwarm.store import (
    accounts,
    codec,
    contacts,
    engine,
    leases,
    locks,
    log,
    outbox,
    pending,
    status,
)
from keepwarm.store.accounts import AccountState
from keepwarm.store.leases import Lease
from keepwarm.store.sql import chunks

_NO_ERROR = {"error_kind": None, "error": None, "error_fix": None}


class Store:
    """The event log, account bookkeeping and contact data, on SQLite or PostgreSQL.

    Every method is one short transaction of its own; errors from the database surface as
    `StoreError` so callers never need SQLAlchemy. The digest outbox is `store.outbox`
    (store/outbox.py) and team-mode leases are `store.leases` (store/leases.py).
    """

    def __init__(self, bound: Engine, url: str) -> None:
        """Use `Store.open`; this expects a migrated engine."""
        self._engine = bound
        self._url = url
        self._dialect = bound.dialect.name
        self._reader = sessionmaker(bound, expire_on_commit=False)
        self._writer = sessionmaker(
            bound.execution_options(**{engine.IMMEDIATE: True}), expire_on_commit=False
        )
        read = partial(self._session, write=False)
        self.outbox = outbox.Outbox(read, self._session, self._dialect)
        self.leases = leases.Leases(read, self._session, self._dialect)
        self.status = status.StatusLog(read, self._session, self._dialect)
        self.pending = pending.Pending(read, self._session)

    @classmethod
    def open(cls, url: str) -> Store:
        """Open the database at `url` and migrate it to the newest schema."""
        bound = engine.create(url)
        try:
            engine.migrate(bound)
        except (SQLAlchemyError, OSError) as exc:
            bound.dispose()
            raise StoreError(engine.describe(exc, url)) from exc
        return cls(bound, url)

    @staticmethod
    def default_url() -> str:
        """The SQLite file keepwarm.db in the XDG state directory."""
        return engine.default_url()

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._dialect

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Run a block alone among every process sharing this store (see store/locks.py)."""
        with self._errors(), locks.exclusive(self._engine, name):
            yield

    def close(self) -> None:
        """Close every pooled connection; the store cannot be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the log ---------------------------------------------------------------------------

    def ingest(
        self,
        account: str,
        touchpoints: Sequence[Touchpoint],
        planned: Sequence[Touchpoint],
        skipped: Sequence[Skip],
        cursor: str | None,
        *,
        now: datetime,
        identities: Collection[str] = (),
        replace_planned: bool = False,
        filtered: Mapping[str, int] | None = None,
        lease: Lease | None = None,
    ) -> list[Touchpoint]:
        """Store one batch and its cursor in one transaction; return the touchpoints new to the log.

        Re-ingesting a batch adds nothing. The cursor (when not None) moves only if everything
        else in the batch was stored. `replace_planned` drops the account's planned meetings
        that are not in `planned` (those whose time has come move into the log first).
        Clears the account's error and sets last_sync to `now`. With a `lease` (team mode) the
        batch is written only while that lease still holds at `now`, else `LeaseLost` and
        nothing of the batch or its cursor is written.
        """
        with self._session() as s:
            if lease is not None:
                _fence(s, lease, account, now)
            new = log.append(s, self._dialect, touchpoints, now)
            if replace_planned:
                # A meeting that took place and was deleted before this poll still happened:
                # planned rows whose time has come join the log before the stale ones go.
                new += log.promote(s, self._dialect, now)
            log.upsert_planned(s, self._dialect, account, planned, now, replace=replace_planned)
            accounts.record_skips(s, self._dialect, account, skipped, now)
            accounts.add_identities(s, self._dialect, account, identities)
            accounts.add_filtered(s, self._dialect, account, filtered or {})
            values: dict[str, Any] = {"last_sync": now, **_NO_ERROR}
            if cursor is not None:
                values["cursor"] = cursor
            accounts.update(s, self._dialect, account, values)
            pending.mark(s, self._dialect, (t.counterpart for t in new))
        return new

    def promote_planned(self, now: datetime) -> list[Touchpoint]:
        """Move planned meetings at or before `now` into the log; return those new to it."""
        with self._session() as s:
            new = log.promote(s, self._dialect, now)
            pending.mark(s, self._dialect, (t.counterpart for t in new))
            return new

    def iter_touchpoints(
        self, counterparts: Collection[str] | None = None, *, batch_size: int = 10_000
    ) -> Generator[Touchpoint, None, None]:
        """Stream the log ordered by (counterpart, occurred_at, natural_key), in constant memory.

        Nothing is read until the first item is asked for; the read is one consistent snapshot
        and holds a connection until the generator is exhausted or closed (`close()`).
        """
        # Sorted chunks of an IN list, each in replay order, concatenate to the global order.
        groups: Iterable[Collection[str] | None] = (
            [None] if counterparts is None else chunks(sorted(set(counterparts)))
        )
        with self._errors(), self._engine.connect() as conn:
            streaming = conn.execution_options(yield_per=batch_size)
            with streaming.begin():
                for group in groups:
                    yield from codec.decode(streaming.execute(log.replay_query(group)))

    def count_touchpoints(self) -> int:
        """Rows in the log."""
        with self._session(write=False) as s:
            return log.count(s)

    def planned_meetings(self) -> list[Touchpoint]:
        """Every planned (future) meeting, by time."""
        with self._session(write=False) as s:
            return log.planned(s)

    # -- accounts --------------------------------------------------------------------------

    def cursor(self, account: str) -> str | None:
        """The account's stored cursor; None before its first batch or after a reset."""
        with self._session(write=False) as s:
            return accounts.cursor(s, account)

    def reset_cursor(
        self, account: str, *, lease: Lease | None = None, now: datetime | None = None
    ) -> None:
        """Forget the cursor: the next poll is a full resync (the natural key dedupes it).

        With a `lease`, only while it holds at `now` (default: the current time), else `LeaseLost`.
        """
        with self._session() as s:
            if lease is not None:
                _fence(s, lease, account, now or datetime.now(UTC))
            accounts.update(s, self._dialect, account, {"cursor": None})

    def record_error(
        self,
        account: str,
        kind: str,
        message: str,
        fix: str,
        now: datetime,
        *,
        lease: Lease | None = None,
    ) -> bool:
        """Remember why the account failed (cleared by its next successful ingest); True when
        this error is new for the account, so callers can report a failure once. With a
        `lease`, only while it holds (`LeaseLost` otherwise: the account's new worker speaks)."""
        values = {"error_kind": kind, "error": message, "error_fix": fix, "last_attempt": now}
        with self._session() as s:
            if lease is not None:
                _fence(s, lease, account, now)
            before = accounts.error(s, account)
            accounts.update(s, self._dialect, account, values)
        return before != (kind, message)

    def mark_attempt(self, account: str, now: datetime, *, lease: Lease | None = None) -> None:
        """Remember that a poll of the account started at `now` (with a `lease`: while it holds)."""
        with self._session() as s:
            if lease is not None:
                _fence(s, lease, account, now)
            accounts.update(s, self._dialect, account, {"last_attempt": now})

    def account_states(self) -> list[AccountState]:
        """Every account the store has heard of, by name."""
        with self._session(write=False) as s:
            return accounts.states(s)

    def identities(self) -> frozenset[str]:
        """Owner addresses the sources revealed, across accounts."""
        with self._session(write=False) as s:
            return accounts.identities(s)

    # -- contact events and the state cache ---------------------------------------------------

    def append_contact_event(self, event: ContactEvent) -> None:
        """Append a user's statement about people (merge, tier, pin, ...)."""
        with self._session() as s:
            contacts.append_event(s, event)

    def contact_events(self) -> list[ContactEvent]:
        """Every contact event, in the order they were appended."""
        with self._session(write=False) as s:
            return contacts.events(s)

    def save_states(
        self, states: Iterable[tuple[str, dict[str, Any]]], *, replace_all: bool = False
    ) -> None:
        """Upsert (key, JSON-ready dict) pairs; `replace_all` also deletes every other key."""
        with self._session() as s:
            contacts.save_states(s, self._dialect, states, replace_all=replace_all)

    def load_states(self) -> list[dict[str, Any]]:
        """Every cached contact state, ordered by key."""
        with self._session(write=False) as s:
            return contacts.load_states(s)

    def delete_states(self, keys: Collection[str]) -> None:
        """Drop these keys from the state cache; unknown keys are ignored."""
        with self._session() as s:
            contacts.delete_states(s, keys)

    # -- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _session(self, *, write: bool = True) -> Iterator[Session]:
        """One transaction; writers queue for SQLite's write lock at BEGIN."""
        maker = self._writer if write else self._reader
        with self._errors(), maker() as s, s.begin():
            yield s

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except StatementError as exc:
            if not isinstance(exc, DBAPIError) and isinstance(exc.orig, ValueError | TypeError):
                # Our own value checks (a naive datetime) are the caller's bug, not the database's.
                raise exc.orig from None
            raise StoreError(
                f"database error ({engine.masked(self._url)}): {engine.reason(exc)}"
            ) from exc
        except SQLAlchemyError as exc:
            raise StoreError(
                f"database error ({engine.masked(self._url)}): {engine.reason(exc)}"
            ) from exc


def _fence(s: Session, lease: Lease, account: str, now: datetime) -> None:
    if lease.account != account:
        raise ValueError(f"the lease is on account {lease.account!r}, not {account!r}")
    leases.check(s, lease, now)
