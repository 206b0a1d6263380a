"""Poll one account: connector batches -> detection -> one store transaction per batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from keepwarm.config.schema import AccountConfig, Config
from keepwarm.connectors.base import ConnectorContext, create
from keepwarm.detect.touchpoints import Detector
from keepwarm.errors import (
    AuthError,
    ConnectorError,
    CursorExpired,
    LeaseLost,
    MalformedInput,
    TransientError,
)
from keepwarm.model import MessageMeta, Skip, Touchpoint
from keepwarm.store import Store
from keepwarm.store.leases import Lease

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class SyncResult:
    """What one poll of one account did."""

    account: str
    new: int = 0  # touchpoints this poll added to the log
    touched: set[str] = field(default_factory=set)  # their counterparts, for the projection
    items: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    filtered: Counter[str] = field(default_factory=Counter)
    error_kind: str | None = None  # "auth" | "transient" | "error" | "lease"
    error: str | None = None
    stopped: bool = False  # ended early on request, after a stored batch

    @property
    def ok(self) -> bool:
        return self.error_kind is None


def sync_account(
    store: Store,
    config: Config,
    account: AccountConfig,
    context: ConnectorContext,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    stop: Callable[[], bool] = lambda: False,
    lease: Lease | None = None,
) -> SyncResult:
    """Poll `account` once to the end; errors stop this account only and are recorded.

    `stop` is asked after each stored batch: when it says so, the poll ends there (the cursor
    is where that batch left it) and `result.stopped` is set. With a `lease` (team mode) every
    write is fenced by it: once another worker holds the account, the poll ends with
    `error_kind = "lease"` and writes nothing more (the account's error is not touched: it is
    fine, just someone else's now).
    """
    result = SyncResult(account.name)
    with structlog.contextvars.bound_contextvars(account=account.name):
        log.debug("poll started", lease_token=lease.token if lease is not None else None)
        try:
            store.mark_attempt(account.name, now(), lease=lease)
            try:
                cursor = store.cursor(account.name)
                _poll(store, config, account, context, cursor, result, now, stop, lease)
            except CursorExpired as exc:
                # The source forgot our place: read everything again; natural keys drop repeats.
                log.warning("cursor expired, resyncing from the start", reason=str(exc))
                store.reset_cursor(account.name, lease=lease, now=now())
                _poll(store, config, account, context, None, result, now, stop, lease)
        except LeaseLost:
            log.warning("lease lost; the account's new worker carries on")
            result.error_kind, result.error = "lease", "the lease moved to another worker"
        except AuthError as exc:
            _fail(store, result, "auth", str(exc), exc.fix, now(), lease)
        except TransientError as exc:
            _fail(store, result, "transient", str(exc), "keepwarm retries on its own", now(), lease)
        except CursorExpired as exc:
            _fail(store, result, "error", f"cursor expired again: {exc}", "", now(), lease)
        except ConnectorError as exc:
            fix = getattr(exc, "fix", "") or "check the account's settings in the config"
            _fail(store, result, "error", str(exc), fix, now(), lease)
    return result


def _poll(
    store: Store,
    config: Config,
    account: AccountConfig,
    context: ConnectorContext,
    cursor: str | None,
    result: SyncResult,
    now: Callable[[], datetime],
    stop: Callable[[], bool],
    lease: Lease | None,
) -> None:
    identities = store.identities()
    detector = Detector(config, account, identities)
    connector = create(account, context)
    try:
        for batch in connector.poll(cursor):
            if batch.identities - identities:
                identities = identities | batch.identities
                detector = Detector(config, account, identities)
            at = now()
            stored: list[Touchpoint] = []
            planned: list[Touchpoint] = []
            skipped: list[Skip] = list(batch.skipped)
            filtered: Counter[str] = Counter()
            for item in batch.items:
                try:
                    if isinstance(item, MessageMeta):
                        outcome = detector.message(item)
                    else:
                        outcome = detector.meeting(item, at)
                except MalformedInput as exc:
                    skipped.append(Skip(item.source_id, exc.reason, exc.detail))
                    continue
                if outcome.filtered:
                    filtered[outcome.filtered] += 1
                for touchpoint in outcome.touchpoints:
                    (planned if touchpoint.occurred_at > at else stored).append(touchpoint)
            new = store.ingest(
                account.name,
                stored,
                planned,
                skipped,
                batch.cursor,
                now=at,
                identities=batch.identities,
                replace_planned=batch.future_complete,
                filtered=filtered,
                lease=lease,
            )
            result.new += len(new)
            result.touched.update(t.counterpart for t in new)
            result.items += len(batch.items)
            result.skipped.update(skip.reason for skip in skipped)
            result.filtered.update(filtered)
            for skip in skipped:
                log.info("message skipped", source_id=skip.source_id, reason=skip.reason)
            if stop():
                result.stopped = True
                break
    finally:
        connector.close()
    log.info(
        "account synced",
        items=result.items,
        new=result.new,
        skipped=sum(result.skipped.values()),
    )


def _fail(
    store: Store,
    result: SyncResult,
    kind: str,
    message: str,
    fix: str,
    at: datetime,
    lease: Lease | None = None,
) -> None:
    try:
        new = store.record_error(result.account, kind, message, fix, at, lease=lease)
    except LeaseLost:  # the account's new worker is the one to say how it is doing
        log.warning("lease lost; the account's new worker carries on")
        result.error_kind, result.error = "lease", "the lease moved to another worker"
        return
    result.error_kind, result.error = kind, message
    # Said once when an account starts failing (or fails differently), not on every poll.
    (log.error if new else log.debug)("account failed", error_kind=kind, error=message, fix=fix)
