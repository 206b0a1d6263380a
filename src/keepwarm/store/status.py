"""Recorded statuses: each contact's last one (`contact_status`) and the changes (`status_events`).

A status depends on the moment (warmth decays), so the projection cannot say *when* someone
turned cold; a periodic check (`daemon/status_check.py`) observes every contact's status and
records what changed here. The digest reads the changes to mark what is news.

`StatusLog` is the API, as `store.status` (like `store.outbox`); the functions below it are
the Core statements, each run inside a session the caller owns, like `accounts.py`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, func, select, text, type_coerce
from sqlalchemy.orm import Session

from keepwarm.store.schema import CONTACT_STATUS, STATUS_EVENTS, to_micros
from keepwarm.store.sql import Transactions, chunks, insert

if TYPE_CHECKING:
    from keepwarm.store.store import Store

# Not a status: the `new` of an event saying they answered your reach-out. The contact's status
# is unchanged by it (the reach-out itself, a touch, already made them warm).
RECONNECTED = "reconnected"
# Any constant works; it only has to be the same for every keepwarm process sharing a database.
STATUS_LOCK = 0x6B77_0003


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One row of `status_events`: at `at`, `contact` went from `old` to `new`.

    `old` is None for the first status ever recorded for the contact (the baseline, not news),
    including a reconnection already true at that first check. `new` is a status
    (`relationship.state.STATUSES`) or RECONNECTED; for RECONNECTED, `old` is the contact's
    status at that moment.
    """

    contact: str
    at: datetime
    old: str | None
    new: str

    @property
    def baseline(self) -> bool:
        """The first record of this contact: what it already was, not a change."""
        return self.old is None

    @property
    def reconnection(self) -> bool:
        return self.new == RECONNECTED


@dataclass(frozen=True, slots=True)
class RecordedStatus:
    """A contact's last recorded status and when it was recorded."""

    status: str
    since: datetime


class StatusLog:
    """Statuses and status changes through the store's transactions: each call is one short
    transaction, and database errors surface as `StoreError` like the store's own."""

    # The methods share names with this module's functions over a Session; calls inside them
    # reach those functions (a method's name is not in scope in its own body).

    def __init__(self, read: Transactions, write: Transactions, dialect: str) -> None:
        self._read = read
        self._write = write
        self._dialect = dialect

    @classmethod
    def of(cls, store: Store) -> StatusLog:
        """The status log of `store`, on the store's own transactions and error mapping."""
        # Part of the store package, so it may use the store's private session factory; this
        # is what `Store.__init__` would do to offer `store.status`.
        return cls(partial(store._session, write=False), store._session, store.dialect)

    def record(
        self, statuses: Mapping[str, str], reconnected: Mapping[str, datetime], *, now: datetime
    ) -> list[StatusChange]:
        """Record what changed: `statuses` is each contact's status at `now`, `reconnected`
        the moment each contact answered a reach-out (for those where that is still news).

        In one transaction (serialised with other checks): appends an event per contact whose
        status differs from the recorded one (old None for a contact seen the first time) and
        per reconnection newer than the last one recorded, and updates `contact_status`.
        A status recorded at a later moment than `now` is left alone, so a slow check never
        overwrites a newer one. Returns the events appended, per contact in key order.
        """
        with self._write() as s:
            return record(s, self._dialect, statuses, reconnected, now)

    def current(self) -> dict[str, RecordedStatus]:
        """Every contact's last recorded status."""
        with self._read() as s:
            return current(s)

    def changes(
        self, since: datetime, until: datetime | None = None, *, baseline: bool = True
    ) -> list[StatusChange]:
        """The events after `since` (and at or before `until`), oldest first; `baseline=False`
        leaves out first records (the first check after installing records every contact)."""
        with self._read() as s:
            return list(changes_between(s, since, until, baseline=baseline))

    def history(self, contacts: Collection[str]) -> list[StatusChange]:
        """Every event of these contact keys, oldest first."""
        with self._read() as s:
            return history(s, contacts)


# -- statements ------------------------------------------------------------------------------


def lock(s: Session, dialect: str) -> None:
    """Serialise status checks: two daemons (or the daemon and `keepwarm sync`) must not both
    see the old status and record the same change twice. SQLite writers already queue at BEGIN."""
    if dialect == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": STATUS_LOCK})


def current(s: Session) -> dict[str, RecordedStatus]:
    query = select(CONTACT_STATUS.c.contact, CONTACT_STATUS.c.status, CONTACT_STATUS.c.since)
    return {contact: RecordedStatus(status, since) for contact, status, since in s.execute(query)}


def last_reconnections(s: Session, contacts: Collection[str]) -> dict[str, datetime]:
    """contact -> its latest RECONNECTED event's time, for those of `contacts` that have one."""
    e = STATUS_EVENTS.c
    found: dict[str, datetime] = {}
    for part in chunks(sorted(set(contacts))):
        query = (
            select(e.contact, func.max(e.at))
            .where(e.contact.in_(part), e.new == RECONNECTED)
            .group_by(e.contact)
        )
        for contact, at in s.execute(query):
            found[contact] = at
    return found


def record(
    s: Session,
    dialect: str,
    statuses: Mapping[str, str],
    reconnected: Mapping[str, datetime],
    now: datetime,
) -> list[StatusChange]:
    """`StatusLog.record` inside the caller's transaction."""
    lock(s, dialect)
    # Plain tuples with `since` as raw microseconds: every contact is compared on every check,
    # and building a datetime and a dataclass per row was most of the check's own cost.
    col = CONTACT_STATUS.c
    query = select(col.contact, col.status, type_coerce(col.since, BigInteger()))
    known: dict[str, tuple[str, int]] = {row[0]: (row[1], row[2]) for row in s.execute(query)}
    at = to_micros(now)
    answered = last_reconnections(s, [k for k, when in reconnected.items() if when <= now])
    events: list[StatusChange] = []
    upserts: list[dict[str, object]] = []
    for contact in sorted(statuses.keys() | reconnected.keys()):
        prior = known.get(contact)
        status = statuses.get(contact)
        if status is not None and (prior is None or (prior[0] != status and prior[1] <= at)):
            events.append(StatusChange(contact, now, None if prior is None else prior[0], status))
            upserts.append({"contact": contact, "status": status, "since": now})
        when = reconnected.get(contact)
        last = answered.get(contact)
        if when is not None and when <= now and (last is None or last < when):
            # Noticed at the first check: it happened before keepwarm watched, so not news.
            before = None if prior is None else (status or prior[0])
            events.append(StatusChange(contact, now, before, RECONNECTED))
    if upserts:
        stmt = insert(dialect, CONTACT_STATUS)
        stmt = stmt.on_conflict_do_update(
            index_elements=["contact"],
            set_={"status": stmt.excluded.status, "since": stmt.excluded.since},
        )
        s.execute(stmt, upserts)
    if events:
        s.execute(
            STATUS_EVENTS.insert(),
            [{"contact": e.contact, "at": e.at, "old": e.old, "new": e.new} for e in events],
        )
    return events


def changes_between(
    s: Session, since: datetime, until: datetime | None, *, baseline: bool
) -> Iterator[StatusChange]:
    e = STATUS_EVENTS.c
    query = select(e.contact, e.at, e.old, e.new).where(e.at > since)
    if until is not None:
        query = query.where(e.at <= until)
    if not baseline:
        query = query.where(e.old.is_not(None))
    for row in s.execute(query.order_by(e.at, e.id)):
        yield StatusChange(*row)


def history(s: Session, contacts: Collection[str]) -> list[StatusChange]:
    e = STATUS_EVENTS.c
    rows: list[tuple[datetime, int, StatusChange]] = []
    for part in chunks(sorted(set(contacts))):
        query = select(e.id, e.contact, e.at, e.old, e.new).where(e.contact.in_(part))
        rows.extend(
            (at, id_, StatusChange(c, at, old, new)) for id_, c, at, old, new in s.execute(query)
        )
    rows.sort(key=lambda row: (row[0], row[1]))
    return [change for _, _, change in rows]
