"""Team-mode leases: which worker polls which account, until when, under which fencing token.

- A worker *acquires* accounts that are free: never leased, run out, released, or held by a
  worker known to be dead. On PostgreSQL the candidates are locked with
  `SELECT ... FOR UPDATE SKIP LOCKED`: workers acquiring at the same moment never wait for each
  other and never get the same account (a row another worker has locked is skipped; a row it
  took and committed meanwhile fails PostgreSQL's re-check of the WHERE clause). SQLite
  serialises write transactions (`BEGIN IMMEDIATE`), which gives the same answer.
- Each grant sets the row's token to token + 1; renewing a lease that has not run out keeps it.
- A write for an account carries its lease: `check` locks the row inside the writer's
  transaction and raises `LeaseLost` unless owner and token still match and the lease has not
  run out, so a worker paused past its lease writes nothing once another worker took over.
- A process stopped inside one of these transactions (SIGSTOP, a suspended VM, a long pause)
  would keep its row locks for as long as it sleeps: `SKIP LOCKED` would pass over its accounts
  and the others' heartbeats would wait for it. On PostgreSQL each transaction here therefore
  ends its session once it sits idle longer than a healthy one ever does (`BOOKKEEPING_IDLE`;
  a fenced write: until its lease runs out), which releases them; the stopped work, resumed,
  fails with `StoreError` and writes nothing.
- Presence: each running worker keeps a row of its own (account `WORKER_KEY + owner`, token =
  a random number of its process instance), renewed with its leases. The unexpired ones are the
  live workers a fair share is counted from, a newcomer that holds nothing yet included.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, literal, or_, select, update
from sqlalchemy.orm import Session

from keepwarm.errors import LeaseLost
from keepwarm.store.schema import EPOCH, LEASES
from keepwarm.store.sql import Transactions, chunks, insert

# Presence rows share the table with account leases under this prefix. Account names are
# plain text from the config; a control character never begins one.
WORKER_KEY = "\x1fworker:"

# One transaction of the store (`Store._session`): a reader's or a writer's.

# The longest a lease transaction may sit idle between statements before PostgreSQL ends the
# session: its statements run back to back, so only a stopped process comes near it.
BOOKKEEPING_IDLE = timedelta(seconds=2)
# A fenced write does work between statements (a batch of rows): it may idle until its lease
# runs out, and at least this long.
WRITE_IDLE_MIN = timedelta(seconds=3)

_C = LEASES.c
_COLUMNS = (_C.account, _C.owner, _C.token, _C.expires_at)


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to poll (and write for) one account until `expires_at`, under `token`."""

    account: str
    owner: str
    token: int  # grows by one each time the account is granted anew
    expires_at: datetime


def check(s: Session, lease: Lease, now: datetime) -> None:
    """Raise `LeaseLost` unless `lease` still holds at `now`; on PostgreSQL the row stays locked
    until the caller's transaction ends, so nobody can take the account before it commits; a
    writer stopped inside that transaction keeps it only until the lease runs out."""
    _idle_limit(s, max(lease.expires_at - now, WRITE_IDLE_MIN))
    row = s.execute(
        select(_C.owner, _C.token, _C.expires_at)
        .where(_C.account == lease.account)
        .with_for_update()
    ).first()
    if row is None:
        raise LeaseLost(lease.account, f"no lease on account {lease.account!r} was ever granted")
    holder, token, expires_at = row
    if (holder, token) != (lease.owner, lease.token):
        raise LeaseLost(
            lease.account,
            f"lease on account {lease.account!r} lost: {holder} holds it now (token {token}, "
            f"ours was {lease.token})",
        )
    if expires_at <= now:
        raise LeaseLost(
            lease.account, f"lease on account {lease.account!r} ran out at {expires_at}"
        )


class Leases:
    """Leases and worker presence, as `store.leases`: each call is one short transaction, and
    database errors surface as `StoreError` like the store's own."""

    def __init__(self, read: Transactions, write: Transactions, dialect: str) -> None:
        self._read = read
        self._write = write
        self._dialect = dialect

    def acquire(
        self,
        owner: str,
        accounts: Collection[str],
        *,
        limit: int,
        duration: timedelta,
        now: datetime,
        takeover: Collection[str] = (),
    ) -> list[Lease]:
        """Renew `owner`'s unexpired leases among `accounts`, then take free ones until it holds
        `limit`; return every lease it holds among them, by account.

        Free: never leased, run out, released, or held by an owner in `takeover` (known dead).
        Leases already held are renewed even beyond `limit`: release those not to be kept first.
        """
        names = _names(accounts)
        until = now + duration
        held: list[Lease] = []
        free = _C.expires_at <= now
        if others := [o for o in takeover if o != owner]:
            free = or_(free, _C.owner.in_(others))
        with self._write() as s:
            _idle_limit(s, BOOKKEEPING_IDLE)
            self._seed(s, names)
            for group in chunks(names):
                # A plain UPDATE waits for this worker's own write in flight (which locks the
                # row), so a renewal never misses a lease the way SKIP LOCKED would.
                renewed = s.execute(
                    update(LEASES)
                    .where(_C.account.in_(group), _C.owner == owner, _C.expires_at > now)
                    .values(expires_at=until)
                    .returning(*_COLUMNS)
                )
                held += [_lease(row) for row in renewed]
            for group in chunks(names):
                if len(held) >= limit:
                    break
                candidates = (
                    select(_C.account)
                    .where(_C.account.in_(group), free)
                    .order_by(_C.account)
                    .limit(limit - len(held))
                    .with_for_update(skip_locked=True)  # SQLite has no row locks: it writes alone
                )
                if taken := list(s.execute(candidates).scalars()):
                    granted = s.execute(
                        update(LEASES)
                        .where(_C.account.in_(taken))
                        .values(owner=owner, token=_C.token + 1, expires_at=until, acquired_at=now)
                        .returning(*_COLUMNS)
                    )
                    held += [_lease(row) for row in granted]
        return sorted(held, key=lambda lease: lease.account)

    def _seed(self, s: Session, names: Sequence[str]) -> None:
        """Create the rows of accounts never leased (free, token 0). Sorted: two workers seeding
        at once wait for each other in one order and never deadlock."""
        for group in chunks(names):
            known = set(s.execute(select(_C.account).where(_C.account.in_(group))).scalars())
            if missing := [name for name in group if name not in known]:
                stmt = insert(self._dialect, LEASES).on_conflict_do_nothing(
                    index_elements=["account"]
                )
                free = {"owner": "", "token": 0, "expires_at": EPOCH, "acquired_at": EPOCH}
                s.execute(stmt, [{"account": name, **free} for name in missing])

    def renew(
        self, owner: str, leases: Collection[Lease], *, duration: timedelta, now: datetime
    ) -> list[Lease]:
        """Extend the leases still held as given (same owner and token, not run out); return
        them with their new expiry, by account. A lease lost meanwhile is absent."""
        kept: list[Lease] = []
        with self._write() as s:
            _idle_limit(s, BOOKKEEPING_IDLE)
            for lease in sorted(leases, key=lambda lease: lease.account):
                row = s.execute(
                    update(LEASES)
                    .where(
                        _C.account == lease.account,
                        _C.owner == owner,
                        _C.token == lease.token,
                        _C.expires_at > now,
                    )
                    .values(expires_at=now + duration)
                    .returning(*_COLUMNS)
                ).first()
                if row is not None:
                    kept.append(_lease(row))
        return kept

    def release(self, owner: str, accounts: Collection[str] | None = None) -> None:
        """End `owner`'s leases on `accounts` (None: all of them) now: free for anyone at once."""
        ours = update(LEASES).where(_C.owner == owner, _accounts_only()).values(expires_at=EPOCH)
        with self._write() as s:
            _idle_limit(s, BOOKKEEPING_IDLE)
            if accounts is None:
                s.execute(ours)
                return
            for group in chunks(_names(accounts)):
                s.execute(ours.where(_C.account.in_(group)))

    def holders(self) -> list[Lease]:
        """Every account's lease, run out or not, by account (`keepwarm status`)."""
        query = select(*_COLUMNS).where(_accounts_only()).order_by(_C.account)
        with self._read() as s:
            return [_lease(row) for row in s.execute(query)]

    def heartbeat(self, owner: str, instance: int, *, duration: timedelta, now: datetime) -> bool:
        """Say that worker `owner` (process `instance`) lives until now + duration; False when
        another live process uses that worker id. Forgets workers whose presence ran out."""
        mine = WORKER_KEY + owner
        gone = delete(LEASES).where(_workers_only(), _C.account != mine, _C.expires_at <= now)
        # `acquired_at` says since when this process is present: a restarted worker starts over.
        since = case(
            (_C.token == instance, _C.acquired_at), else_=literal(now, _C.acquired_at.type)
        )
        with self._write() as s:
            _idle_limit(s, BOOKKEEPING_IDLE)
            s.execute(gone)
            updated = s.execute(
                update(LEASES)
                .where(_C.account == mine, or_(_C.token == instance, _C.expires_at <= now))
                .values(owner=owner, token=instance, expires_at=now + duration, acquired_at=since)
                .returning(_C.account)
            )
            if updated.first() is not None:
                return True
            fresh = insert(self._dialect, LEASES).values(
                account=mine,
                owner=owner,
                token=instance,
                expires_at=now + duration,
                acquired_at=now,
            )
            inserted = s.execute(
                fresh.on_conflict_do_nothing(index_elements=["account"]).returning(_C.account)
            )
            return inserted.first() is not None

    def retire(self, owner: str, instance: int) -> None:
        """This process of worker `owner` stops: the others count one worker fewer at once."""
        with self._write() as s:
            _idle_limit(s, BOOKKEEPING_IDLE)
            s.execute(delete(LEASES).where(_C.account == WORKER_KEY + owner, _C.token == instance))

    def workers(self, now: datetime) -> list[str]:
        """The ids of the live workers (presence not run out at `now`), sorted."""
        query = select(_C.owner).where(_workers_only(), _C.expires_at > now).order_by(_C.owner)
        with self._read() as s:
            return list(s.execute(query).scalars())


def _idle_limit(s: Session, limit: timedelta) -> None:
    """On PostgreSQL, end the session should this transaction sit idle longer than `limit`,
    which releases its locks. (SQLite's write lock is a file lock: a stopped process keeps it,
    and the others wait for it, then fail; leases on SQLite serve one machine's processes.)"""
    if s.get_bind().dialect.name == "postgresql":
        ms = str(max(1, int(limit.total_seconds() * 1000)))
        s.execute(select(func.set_config("idle_in_transaction_session_timeout", ms, True)))


def _lease(row: Sequence[Any]) -> Lease:
    return Lease(row[0], row[1], row[2], row[3])


def _workers_only() -> ColumnElement[bool]:
    return _C.account.startswith(WORKER_KEY, autoescape=True)


def _accounts_only() -> ColumnElement[bool]:
    return ~_workers_only()


def _names(accounts: Collection[str]) -> list[str]:
    names = sorted(set(accounts))
    for name in names:
        if name.startswith(WORKER_KEY):
            raise ValueError(f"{name!r} is not an account name: its first character is reserved")
    return names
