"""When the digest is due: `digest.schedule` ("Mon 08:00") in `digest.timezone`. Pure.

A schedule names a local wall-clock time once a week. Each occurrence is a *slot*; the slot's
`period` is the ISO week of its local date, and (recipient, period) is the outbox key, so a
digest goes out at most once per slot whatever the daemon's restarts. Slots are seven local days
apart, so every ISO week holds exactly one slot, even when the schedule is changed mid-week.

Daylight saving time, with the stdlib `zoneinfo`:
- a time that happens twice (clocks go back) is due at its first occurrence;
- a time that does not exist (clocks go forward) is due as many minutes after the jump as it
  was into the gap, e.g. 02:30 on the spring-forward night in Europe/London is due at 03:30 BST
  (PEP 495: `fold=0` reads a missing time with the offset from before the transition).

"Send on wake, once": the slot to serve is always the *latest* one at or before now, so a machine
that was asleep or off at 08:00 sends when it wakes, and one off for three weeks sends one
digest (this week's), not three.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from keepwarm.config.checks import parse_schedule

__all__ = ["Slot", "latest_slot", "next_slot", "period_of"]


@dataclass(frozen=True, slots=True)
class Slot:
    """One weekly occurrence of the schedule."""

    due: datetime  # aware, UTC
    period: str  # ISO week of the slot's local date, "2026-W48": the outbox key
    day: date  # the local date the schedule names (a time in a DST gap may fall after it)

    def local(self, tz: tzinfo) -> datetime:
        """The due instant on the wall clock of `tz`."""
        return self.due.astimezone(tz)


def period_of(day: date) -> str:
    """The ISO week holding `day`, as `2026-W48`."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def latest_slot(schedule: str, timezone: str, now: datetime) -> Slot:
    """The newest slot due at or before `now`: the one the digest for this moment belongs to.

    Raises ValueError for a schedule the config loader would also reject.
    """
    weekday, at = parse_schedule(schedule)
    tz = ZoneInfo(timezone)
    today = _aware(now).astimezone(tz).date()
    day = today - timedelta(days=(today.weekday() - weekday) % 7)
    slot = _slot(day, at, tz)
    # The weekday is today but the time is later today: the latest slot is last week's.
    return slot if slot.due <= now else _slot(day - timedelta(days=7), at, tz)


def next_slot(schedule: str, timezone: str, now: datetime) -> Slot:
    """The first slot due strictly after `now`."""
    _, at = parse_schedule(schedule)
    latest = latest_slot(schedule, timezone, now)
    return _slot(latest.day + timedelta(days=7), at, ZoneInfo(timezone))


def _slot(day: date, at: time, tz: ZoneInfo) -> Slot:
    # fold=0: the first of two repeated times; a missing time is read with the offset before the
    # jump, which lands it after the jump by the same distance (see the module docstring).
    local = datetime.combine(day, at, tzinfo=tz).replace(fold=0)
    return Slot(due=local.astimezone(UTC), period=period_of(day), day=day)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("the schedule needs a timezone-aware now")
    return now
