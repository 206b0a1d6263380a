"""Per-account bookkeeping: cursors, sync outcome, skipped and filtered counts, identities."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from keepwarm.model import Skip
from keepwarm.store.schema import ACCOUNTS, FILTERED, IDENTITIES, SKIPPED, AccountRow
from keepwarm.store.sql import insert


@dataclass(frozen=True, slots=True)
class AccountState:
    """What `keepwarm status` shows for one account."""

    name: str
    cursor: str | None
    last_sync: datetime | None  # the last batch stored
    last_attempt: datetime | None  # the last poll started (or failed)
    error_kind: str | None  # None while the account is healthy
    error: str | None
    error_fix: str | None  # what the user should do, e.g. the command to re-authenticate
    touchpoints: int  # log rows this account added first
    skipped: int
    skipped_reasons: dict[str, int]
    filtered: dict[str, int]


def update(s: Session, dialect: str, account: str, values: Mapping[str, Any]) -> None:
    """Set `values` on the account's row, creating the row if this is its first mention."""
    stmt = insert(dialect, ACCOUNTS).values(name=account, **values)
    s.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=dict(values)))


def error(s: Session, account: str) -> tuple[str | None, str | None]:
    """The account's recorded (error_kind, error); (None, None) when it has none."""
    row = s.execute(
        select(ACCOUNTS.c.error_kind, ACCOUNTS.c.error).where(ACCOUNTS.c.name == account)
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)


def cursor(s: Session, account: str) -> str | None:
    return s.execute(select(ACCOUNTS.c.cursor).where(ACCOUNTS.c.name == account)).scalar()


def record_skips(
    s: Session, dialect: str, account: str, skipped: Sequence[Skip], now: datetime
) -> None:
    if not skipped:
        return
    stmt = insert(dialect, SKIPPED).on_conflict_do_nothing(
        index_elements=["account", "source_id", "reason"]
    )
    s.execute(
        stmt,
        [
            {
                "account": account,
                "source_id": k.source_id,
                "reason": k.reason,
                "detail": k.detail,
                "at": now,
            }
            for k in {(k.source_id, k.reason): k for k in skipped}.values()
        ],
    )


def add_filtered(s: Session, dialect: str, account: str, filtered: Mapping[str, int]) -> None:
    counts = [
        {"account": account, "reason": r, "count": n} for r, n in sorted(filtered.items()) if n
    ]
    if not counts:
        return
    stmt = insert(dialect, FILTERED)
    stmt = stmt.on_conflict_do_update(
        index_elements=["account", "reason"],
        set_={"count": FILTERED.c["count"] + stmt.excluded["count"]},
    )
    s.execute(stmt, counts)


def add_identities(s: Session, dialect: str, account: str, addresses: Collection[str]) -> None:
    if not addresses:
        return
    stmt = insert(dialect, IDENTITIES).on_conflict_do_nothing()
    s.execute(stmt, [{"address": a, "account": account} for a in sorted(set(addresses))])


def identities(s: Session) -> frozenset[str]:
    return frozenset(s.execute(select(IDENTITIES.c.address).distinct()).scalars())


def states(s: Session) -> list[AccountState]:
    skipped: dict[str, dict[str, int]] = defaultdict(dict)
    query = select(SKIPPED.c.account, SKIPPED.c.reason, func.count()).group_by(
        SKIPPED.c.account, SKIPPED.c.reason
    )
    for account, reason, n in s.execute(query):
        skipped[account][reason] = n
    filtered: dict[str, dict[str, int]] = defaultdict(dict)
    for account, reason, n in s.execute(
        select(FILTERED.c.account, FILTERED.c.reason, FILTERED.c["count"])
    ):
        filtered[account][reason] = n
    rows = s.execute(select(AccountRow).order_by(AccountRow.name)).scalars()
    return [
        AccountState(
            name=row.name,
            cursor=row.cursor,
            last_sync=row.last_sync,
            last_attempt=row.last_attempt,
            error_kind=row.error_kind,
            error=row.error,
            error_fix=row.error_fix,
            touchpoints=row.touchpoints,
            skipped=sum(skipped[row.name].values()),
            skipped_reasons=dict(sorted(skipped[row.name].items())),
            filtered=dict(sorted(filtered[row.name].items())),
        )
        for row in rows
    ]
