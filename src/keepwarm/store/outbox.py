"""The digest outbox: who sends a period's digest, what was sent, and what the server said.

Exactly once per (recipient, period) rests on two statements that are atomic on both dialects:
- the first sender *inserts* the row (`ON CONFLICT DO NOTHING` on the primary key): of several
  daemons racing for one period, exactly one insert succeeds; on PostgreSQL the others wait for
  its commit on the unique index and then do nothing;
- later senders (after a failure or a crash) *claim* the pending row with one conditional
  UPDATE (the claim expired, or its holder is known dead); PostgreSQL re-checks the WHERE clause
  on the row version it locked, so two claims of one expired row cannot both succeed. SQLite
  serialises writers (`BEGIN IMMEDIATE`), which gives the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import RowMapping, or_, select, update
from sqlalchemy.orm import Session

from keepwarm.store.schema import OUTBOX
from keepwarm.store.sql import Transactions, insert

PENDING, SENT, SKIPPED = "pending", "sent", "skipped"

# One transaction of the store (`Store._session`): a reader's or a writer's.


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One period's digest for one recipient, as the outbox knows it."""

    recipient: str
    period: str
    status: str  # pending | sent | skipped
    message_id: str
    message: str | None  # the exact message tried; None once sent
    created_at: datetime
    attempts: int
    last_attempt: datetime | None
    next_attempt: datetime | None  # a failed send waits until then (the daemon does)
    claimed_by: str | None
    claimed_until: datetime | None
    sent_at: datetime | None
    reply: str | None  # the server's reply to DATA
    error: str | None


def _entry(row: RowMapping) -> OutboxEntry:
    return OutboxEntry(**{name: row[name] for name in OutboxEntry.__dataclass_fields__})


def get(s: Session, recipient: str, period: str) -> OutboxEntry | None:
    query = select(OUTBOX).where(OUTBOX.c.recipient == recipient, OUTBOX.c.period == period)
    row = s.execute(query).mappings().first()
    return None if row is None else _entry(row)


def recent(s: Session, limit: int) -> list[OutboxEntry]:
    query = select(OUTBOX).order_by(OUTBOX.c.created_at.desc(), OUTBOX.c.recipient).limit(limit)
    return [_entry(row) for row in s.execute(query).mappings()]


def claim(
    s: Session,
    dialect: str,
    recipient: str,
    period: str,
    *,
    message_id: str,
    message: str,
    owner: str,
    now: datetime,
    lease: timedelta,
    takeover: str | None,
    ignore_backoff: bool,
) -> OutboxEntry | None:
    """Insert the pending row, or take over a pending one; None when another sender holds it.

    A fresh row carries `message_id` and `message`; a taken-over row keeps its own, so a resend
    is byte for byte the message first tried.
    """
    claimed = {"claimed_by": owner, "claimed_until": now + lease, "last_attempt": now}
    fresh = insert(dialect, OUTBOX).values(
        recipient=recipient,
        period=period,
        status=PENDING,
        message_id=message_id,
        message=message,
        created_at=now,
        attempts=1,
        **claimed,
    )
    inserted = s.execute(
        fresh.on_conflict_do_nothing(index_elements=["recipient", "period"]).returning(OUTBOX)
    )
    row = inserted.mappings().first()
    if row is not None:
        return _entry(row)
    free = or_(OUTBOX.c.claimed_until.is_(None), OUTBOX.c.claimed_until <= now)
    if takeover is not None:
        free = or_(free, OUTBOX.c.claimed_by == takeover)
    conditions = [
        OUTBOX.c.recipient == recipient,
        OUTBOX.c.period == period,
        OUTBOX.c.status == PENDING,
        free,
    ]
    if not ignore_backoff:
        conditions.append(or_(OUTBOX.c.next_attempt.is_(None), OUTBOX.c.next_attempt <= now))
    taken = s.execute(
        update(OUTBOX)
        .where(*conditions)
        .values(attempts=OUTBOX.c.attempts + 1, **claimed)
        .returning(OUTBOX)
    )
    row = taken.mappings().first()
    return None if row is None else _entry(row)


def mark_sent(s: Session, recipient: str, period: str, *, reply: str, now: datetime) -> None:
    """The server accepted the message: keep its reply, drop the stored copy and the claim."""
    s.execute(
        update(OUTBOX)
        .where(OUTBOX.c.recipient == recipient, OUTBOX.c.period == period)
        .values(
            status=SENT,
            reply=reply,
            sent_at=now,
            message=None,
            error=None,
            next_attempt=None,
            claimed_by=None,
            claimed_until=None,
        )
    )


def mark_failed(s: Session, recipient: str, period: str, *, error: str, retry_at: datetime) -> None:
    """The attempt failed before the server accepted: release the claim, retry at `retry_at`."""
    s.execute(
        update(OUTBOX)
        .where(
            OUTBOX.c.recipient == recipient,
            OUTBOX.c.period == period,
            OUTBOX.c.status == PENDING,
        )
        .values(error=error, next_attempt=retry_at, claimed_by=None, claimed_until=None)
    )


def mark_skipped(s: Session, dialect: str, recipient: str, period: str, now: datetime) -> bool:
    """Record that this period has nothing to send (an empty week); False if a row exists."""
    stmt = insert(dialect, OUTBOX).values(
        recipient=recipient,
        period=period,
        status=SKIPPED,
        message_id="",
        created_at=now,
        attempts=0,
    )
    done = s.execute(
        stmt.on_conflict_do_nothing(index_elements=["recipient", "period"]).returning(
            OUTBOX.c.period
        )
    )
    return done.first() is not None


class Outbox:
    """The outbox through the store's transactions, as `store.outbox`: each call is one
    short transaction, and database errors surface as `StoreError` like the store's own."""

    # The methods share names with this module's functions over a Session; calls inside them
    # reach those functions (a method's name is not in scope in its own body).

    def __init__(self, read: Transactions, write: Transactions, dialect: str) -> None:
        self._read = read
        self._write = write
        self._dialect = dialect

    def entry(self, recipient: str, period: str) -> OutboxEntry | None:
        """The outbox row of one period's digest to `recipient`, if any."""
        with self._read() as s:
            return get(s, recipient, period)

    def recent(self, limit: int = 20) -> list[OutboxEntry]:
        """The newest outbox rows, newest first."""
        with self._read() as s:
            return recent(s, limit)

    def claim(
        self,
        recipient: str,
        period: str,
        *,
        message_id: str,
        message: str,
        owner: str,
        now: datetime,
        lease: timedelta,
        takeover: str | None = None,
        ignore_backoff: bool = False,
    ) -> OutboxEntry | None:
        """Become the one sender of this period's digest, before talking to the server.

        Inserts a pending row holding `message_id` and `message`, or takes over a pending row
        whose claim expired (or whose holder is `takeover`, known dead) and whose retry time has
        come (unless `ignore_backoff`); the row then keeps its first message. Returns the claimed
        row, or None when the period was sent, skipped or is claimed by another sender.
        """
        with self._write() as s:
            return claim(
                s,
                self._dialect,
                recipient,
                period,
                message_id=message_id,
                message=message,
                owner=owner,
                now=now,
                lease=lease,
                takeover=takeover,
                ignore_backoff=ignore_backoff,
            )

    def mark_sent(self, recipient: str, period: str, *, reply: str, now: datetime) -> None:
        """The server accepted the digest: record its reply; the period is done."""
        with self._write() as s:
            mark_sent(s, recipient, period, reply=reply, now=now)

    def mark_failed(self, recipient: str, period: str, *, error: str, retry_at: datetime) -> None:
        """A send failed before the server accepted it: release the claim until `retry_at`."""
        with self._write() as s:
            mark_failed(s, recipient, period, error=error, retry_at=retry_at)

    def mark_skipped(self, recipient: str, period: str, *, now: datetime) -> bool:
        """Mark a period with nothing worth sending as done; False if it already had a row."""
        with self._write() as s:
            return mark_skipped(s, self._dialect, recipient, period, now)
