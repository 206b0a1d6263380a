"""The tables, as typed ORM classes. Alembic's 0001_initial must create exactly this."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

# Stable constraint names, so migrations can refer to them on both dialects.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite's INTEGER PRIMARY KEY is the rowid (append order, no extra index); PostgreSQL gets bigint.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# Byte-order comparison on PostgreSQL, as SQLite's BINARY does: both dialects then sort the log
# the same way (Python's str order), and the B-tree compares without locale rules.
Key = Text().with_variant(Text(collation="C"), "postgresql")


def to_micros(value: datetime) -> int:
    """Aware datetime -> microseconds since the Unix epoch (UTC)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store keeps aware UTC datetimes only")
    return (value - EPOCH) // MICROSECOND


def from_micros(value: int) -> datetime:
    """Microseconds since the Unix epoch -> aware UTC datetime."""
    return EPOCH + timedelta(microseconds=value)


class UtcMicros(TypeDecorator[datetime]):
    """An aware UTC datetime kept as epoch microseconds.

    Integers are exact, compare and index fast, mean the same on SQLite and PostgreSQL, and turn
    back into datetimes several times faster than SQLAlchemy's SQLite DateTime string parsing.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        return None if value is None else to_micros(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> datetime | None:
        return None if value is None else from_micros(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class _TouchpointColumns:
    """Columns shared by the log and the planned meetings: one Touchpoint each."""

    natural_key: Mapped[str] = mapped_column(Key)
    counterpart: Mapped[str] = mapped_column(Key)
    occurred_at: Mapped[datetime] = mapped_column(UtcMicros)
    kind: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    participants: Mapped[int] = mapped_column(Integer)
    account: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    thread_key: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UtcMicros)


class TouchpointRow(_TouchpointColumns, Base):
    """The append-only event log; `id` is the append order."""

    __tablename__ = "touchpoints"
    __table_args__ = (
        UniqueConstraint("natural_key", "counterpart"),
        # Serves iter_touchpoints' full ORDER BY, so a replay streams from the index without a sort.
        Index(None, "counterpart", "occurred_at", "natural_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)


class PlannedRow(_TouchpointColumns, Base):
    """Future meetings, kept apart from the log until their time comes (promote_planned)."""

    __tablename__ = "planned"
    __table_args__ = (UniqueConstraint("natural_key", "counterpart"), Index(None, "occurred_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)


class AccountRow(Base):
    __tablename__ = "accounts"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text)
    last_sync: Mapped[datetime | None] = mapped_column(UtcMicros)
    last_attempt: Mapped[datetime | None] = mapped_column(UtcMicros)
    error_kind: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    error_fix: Mapped[str | None] = mapped_column(Text)
    # Log rows this account added first, kept here so `status` needs no scan of a large log.
    touchpoints: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class FilteredRow(Base):
    """Messages detection set aside (mailing lists, no-reply, ...), counted by reason."""

    __tablename__ = "filtered"

    account: Mapped[str] = mapped_column(Text, primary_key=True)
    reason: Mapped[str] = mapped_column(Text, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class SkippedRow(Base):
    """Messages or events that could not be read; one row each, so a re-read counts once."""

    __tablename__ = "skipped"
    __table_args__ = (UniqueConstraint("account", "source_id", "reason"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(Text)
    source_id: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcMicros)


class IdentityRow(Base):
    """Owner addresses a source revealed (send-as aliases), per account."""

    __tablename__ = "identities"

    address: Mapped[str] = mapped_column(Text, primary_key=True)
    account: Mapped[str] = mapped_column(Text, primary_key=True)


class ContactEventRow(Base):
    __tablename__ = "contact_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    value: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcMicros)


class ContactStateRow(Base):
    """The projection's cache: one JSON document per contact, rebuilt from the log at will."""

    __tablename__ = "contact_states"

    key: Mapped[str] = mapped_column(Key, primary_key=True)
    data: Mapped[str] = mapped_column(Text)


def _table(cls: type[Base]) -> Table:
    table = cls.__table__
    if not isinstance(table, Table):  # typed as FromClause; Core statements want the Table
        raise TypeError(f"{cls.__name__} is not mapped to a table")
    return table


LOG = _table(TouchpointRow)
PLANNED = _table(PlannedRow)
ACCOUNTS = _table(AccountRow)
FILTERED = _table(FilteredRow)
SKIPPED = _table(SkippedRow)
IDENTITIES = _table(IdentityRow)
EVENTS = _table(ContactEventRow)
STATES = _table(ContactStateRow)


class OutboxRow(Base):
    """The digest outbox: one row per (recipient, period), written before the SMTP conversation.

    `message` holds the exact bytes tried (as ASCII text: both parts are quoted-printable), so a
    retry resends the same Message-ID and Date; it is cleared once the server accepted it.
    """

    __tablename__ = "outbox"

    recipient: Mapped[str] = mapped_column(Key, primary_key=True)
    period: Mapped[str] = mapped_column(Key, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # pending | sent | skipped
    message_id: Mapped[str] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcMicros)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_attempt: Mapped[datetime | None] = mapped_column(UtcMicros)
    next_attempt: Mapped[datetime | None] = mapped_column(UtcMicros)
    claimed_by: Mapped[str | None] = mapped_column(Text)  # "host:pid" of the sender at work
    claimed_until: Mapped[datetime | None] = mapped_column(UtcMicros)
    sent_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    reply: Mapped[str | None] = mapped_column(Text)  # the server's reply to DATA: "250 2.0.0 ..."
    error: Mapped[str | None] = mapped_column(Text)  # the last failure, with the server's reply


OUTBOX = _table(OutboxRow)


class LeaseRow(Base):
    """Which worker polls an account (team mode), until when, under which fencing token.

    `token` grows by one each time the account changes hands, so a worker that was paused past
    its lease finds its token stale and writes nothing (see store/leases.py).
    """

    __tablename__ = "leases"

    account: Mapped[str] = mapped_column(Key, primary_key=True)
    owner: Mapped[str] = mapped_column(Text)  # worker id, "host:pid" unless configured
    token: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(UtcMicros)
    acquired_at: Mapped[datetime] = mapped_column(UtcMicros)


class ContactStatusRow(Base):
    """Each contact's last recorded status, the base the next status check compares against."""

    __tablename__ = "contact_status"

    contact: Mapped[str] = mapped_column(Key, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(UtcMicros)


class StatusEventRow(Base):
    """Append-only: a contact's status changed (warm -> cooling -> cold, reconnected, ...)."""

    __tablename__ = "status_events"
    __table_args__ = (Index(None, "at"), Index(None, "contact", "at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact: Mapped[str] = mapped_column(Key)
    at: Mapped[datetime] = mapped_column(UtcMicros)
    old: Mapped[str | None] = mapped_column(String(16))  # None: first status ever recorded
    new: Mapped[str] = mapped_column(String(16))


class PendingRow(Base):
    """Contacts whose state the projection has yet to recompute, marked in the transaction
    that appended their touchpoints: a crash between append and projection loses nothing.

    `version` grows with each mark, so the projection clears only what it has seen (a contact
    marked again while it was being folded stays pending).
    """

    __tablename__ = "pending"

    counterpart: Mapped[str] = mapped_column(Key, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


LEASES = _table(LeaseRow)
PENDING = _table(PendingRow)
CONTACT_STATUS = _table(ContactStatusRow)
STATUS_EVENTS = _table(StatusEventRow)
