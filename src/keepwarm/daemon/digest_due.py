"""Send the weekly digest when its slot is due, exactly once per (recipient, period).

`send_if_due` is what the daemon calls on every tick and what `keepwarm digest --send` runs.
It is cheap when there is nothing to do (one outbox lookup); it composes only when the period
has no outbox row yet. Sending is on when both `digest.to` and `smtp.host` are set.

The outbox rules (claims, resends with the same Message-ID, the at-least-once window) are in
`digest/outbox.py`; the schedule in `digest/schedule.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from keepwarm.config.schema import Config
from keepwarm.daemon.report import build_digest
from keepwarm.daemon.status_check import record_status_changes
from keepwarm.digest import outbox
from keepwarm.digest.message import (
    address_of,
    build_message,
    needs_smtputf8,
    new_message_id,
    sender_of,
    stop_line,
    to_bytes,
)
from keepwarm.digest.model import Digest
from keepwarm.digest.schedule import latest_slot
from keepwarm.digest.send import Delivery, Retry, SendError, deliver
from keepwarm.errors import KeepwarmError, UserError
from keepwarm.store import Store
from keepwarm.store.outbox import PENDING, OutboxEntry

log = structlog.get_logger(__name__)

# due: the daemon (waits out a failed attempt's backoff); period: `digest --send` (retries a
# failed period at once); now: `digest --send-now` (sends even when the period is done).
Mode = Literal["due", "period", "now"]
HOLD_OFF = timedelta(minutes=5)
# store -> digest.to -> no daemon attempt before then (weak: a closed store takes its own along)
_held_off: WeakKeyDictionary[Store, dict[str, datetime]] = WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one call did. `status`:

    off: sending is not configured · sent: the server accepted it now · done: this period was
    already sent (or skipped) · skipped: an empty week with digest.send_empty = false · busy:
    another sender holds the period · waiting: a failed attempt's retry time has not come ·
    failed: this attempt failed (`error` says why, with the server's reply).
    """

    status: str
    recipient: str | None = None
    period: str | None = None
    message_id: str | None = None
    reply: str | None = None  # the server's reply to DATA
    error: str | None = None
    config_error: bool = False  # the failure is the config's to fix (exit 2 in the CLI)
    extra: bool = False  # --send-now beside a period already done: not in the outbox
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sending_problems(config: Config) -> list[str]:
    """What keeps the digest from being sent, as `key: what to set` lines (empty: all set)."""
    problems = []
    if not config.digest.to:
        problems.append("digest.to: required to send the digest: the address it goes to")
    if not config.smtp.host:
        problems.append(
            "smtp.host: required to send the digest: your provider's SMTP submission server"
        )
    return problems


def send_if_due(
    store: Store,
    config: Config,
    now: datetime,
    *,
    mode: Mode = "due",
    retry: Retry | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Send this period's digest unless it was sent; never raises for keepwarm's own errors.

    The period is the one of the latest schedule slot at or before `now`, so a machine that
    was off at the scheduled time sends when it is back, once.
    """
    if sending_problems(config):
        return Outcome("off")
    held = _held_off.get(store, {}).get(config.digest.to or "")
    if mode == "due" and held is not None and now < held:
        return Outcome("waiting", detail="after a failure that left no outbox row")
    try:
        # The config loader checks both, but a Config built in code may not have been loaded.
        address_of(config.digest.to or "")
        latest_slot(config.digest.schedule, config.digest.timezone, now)
    except (ValueError, ZoneInfoNotFoundError) as exc:
        outcome = Outcome("failed", error=f"digest: {exc}", config_error=True)
    else:
        try:
            return _Run(store, config, now, mode, retry or Retry(), sleep).go()
        except UserError as exc:
            outcome = Outcome("failed", error=str(exc), config_error=True)
        except KeepwarmError as exc:
            outcome = Outcome("failed", error=str(exc))
    if mode == "due":
        # A failed send is paced by its outbox row's retry time; these failures came before
        # any row was written (the store, the config) and would otherwise repeat every tick.
        _held_off.setdefault(store, {})[config.digest.to or ""] = now + HOLD_OFF
    return _failed(mode, outcome)


@dataclass
class _Run:
    store: Store
    config: Config
    now: datetime
    mode: Mode
    retry: Retry
    sleep: Callable[[float], None]

    def go(self) -> Outcome:
        digest_cfg = self.config.digest
        self.to = digest_cfg.to or ""
        self.recipient = address_of(self.to)
        self.key = self.recipient.lower()
        self.sender = sender_of(self.config.smtp.from_, self.to)
        self.period = latest_slot(digest_cfg.schedule, digest_cfg.timezone, self.now).period
        entry = self.store.outbox.entry(self.key, self.period)
        takeover = None
        if entry is None:
            # Who turned cold in the last hour is this week's news, not next week's.
            record_status_changes(self.store, self.config, self.now)
            digest = build_digest(self.store, self.config, self.now)
            if digest.empty and not digest_cfg.send_empty and self.mode != "now":
                self.store.outbox.mark_skipped(self.key, self.period, now=self.now)
                log.info("empty week: digest not sent", period=self.period)
                return self._outcome("skipped", detail="empty week; digest.send_empty = false")
            message_id = new_message_id(self.period, self.sender)
            message = self._render(message_id, digest)
        elif entry.status != PENDING:
            return self._extra() if self.mode == "now" else self._done(entry)
        else:
            if outbox.holder_is_dead(entry.claimed_by):
                takeover = entry.claimed_by
            held = entry.claimed_until is not None and entry.claimed_until > self.now
            if held and takeover is None:
                return self._extra() if self.mode == "now" else self._busy(entry)
            if self.mode == "due" and entry.next_attempt and entry.next_attempt > self.now:
                return self._outcome(
                    "waiting",
                    error=entry.error,
                    detail=f"next attempt {entry.next_attempt:%Y-%m-%d %H:%M} UTC",
                )
            message_id = entry.message_id
            message = entry.message or self._render(message_id)
        claimed = self.store.outbox.claim(
            self.key,
            self.period,
            message_id=message_id,
            message=message,
            owner=outbox.owner(),
            now=self.now,
            lease=outbox.lease(self.config.smtp.timeout, self.retry),
            takeover=takeover,
            ignore_backoff=self.mode != "due",
        )
        if claimed is None:
            if self.mode == "now":
                return self._extra()
            return self._outcome("busy", detail="another sender claimed this period first")
        return self._deliver(claimed)

    def _render(self, message_id: str, digest: Digest | None = None) -> str:
        """The message as sent, for `digest` (default: composed now), as outbox text."""
        digest = digest or build_digest(self.store, self.config, self.now)
        path = str(self.config.path) if self.config.path else None
        msg = build_message(
            digest,
            sender=self.sender,
            recipient=self.to,
            message_id=message_id,
            date=self.now,
            tz=ZoneInfo(self.config.digest.timezone),
            stop=stop_line(path),
        )
        # Both parts are quoted-printable and non-ASCII headers are encoded: the bytes are ASCII
        # (UTF-8 only for an internationalised address), so the outbox keeps them as text.
        return to_bytes(msg).decode("utf-8")

    def _send(self, raw: bytes) -> Delivery:
        """One delivery of `raw` to this digest's recipient over the configured SMTP."""
        return deliver(
            raw,
            sender=address_of(self.sender),
            recipient=self.recipient,
            smtp=self.config.smtp,
            smtputf8=needs_smtputf8(self.sender, self.to),
            retry=self.retry,
            sleep=self.sleep,
        )

    def _deliver(self, claimed: OutboxEntry) -> Outcome:
        raw = (claimed.message or self._render(claimed.message_id)).encode("utf-8")
        if claimed.attempts > 1:
            log.info("resending a digest not known to be accepted", period=self.period,
                     message_id=claimed.message_id, attempt=claimed.attempts)  # fmt: skip
        try:
            delivery = self._send(raw)
        except (SendError, UserError) as exc:
            permanent = not isinstance(exc, SendError) or exc.permanent
            when = outbox.retry_at(self.now, claimed.attempts, permanent=permanent)
            self.store.outbox.mark_failed(self.key, self.period, error=str(exc), retry_at=when)
            failed = self._outcome(
                "failed",
                message_id=claimed.message_id,
                error=str(exc),
                config_error=isinstance(exc, UserError),
                detail=f"next attempt {when:%Y-%m-%d %H:%M} UTC",
            )
            return _failed(self.mode, failed)
        self.store.outbox.mark_sent(self.key, self.period, reply=delivery.reply, now=self.now)
        log.info("digest sent", period=self.period, reply=delivery.reply)
        return self._outcome("sent", message_id=claimed.message_id, reply=delivery.reply)

    def _extra(self) -> Outcome:
        """--send-now for a period already done or held: one more copy, outside the outbox."""
        message_id = new_message_id(self.period, self.sender)
        raw = self._render(message_id).encode("utf-8")
        try:
            delivery = self._send(raw)
        except (SendError, UserError) as exc:
            failed = self._outcome(
                "failed",
                message_id=message_id,
                error=str(exc),
                config_error=isinstance(exc, UserError),
                extra=True,
            )
            return _failed(self.mode, failed)
        return self._outcome("sent", message_id=message_id, reply=delivery.reply, extra=True)

    def _done(self, entry: OutboxEntry) -> Outcome:
        return self._outcome(
            "done",
            message_id=entry.message_id or None,
            reply=entry.reply,
            detail=f"already {entry.status}",
        )

    def _busy(self, entry: OutboxEntry) -> Outcome:
        until = f"{entry.claimed_until:%Y-%m-%d %H:%M} UTC" if entry.claimed_until else "?"
        return self._outcome("busy", detail=f"being sent by {entry.claimed_by} (until {until})")

    def _outcome(self, status: str, **values: Any) -> Outcome:
        return Outcome(status, recipient=self.key, period=self.period, **values)


def _failed(mode: Mode, outcome: Outcome) -> Outcome:
    # The CLI reports its own failures; the daemon has only its log to say it.
    if mode == "due":
        log.error("digest not sent", period=outcome.period, error=outcome.error,
                  retry=outcome.detail)  # fmt: skip
    return outcome
