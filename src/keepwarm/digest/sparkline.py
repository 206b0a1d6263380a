"""Twelve months of contact at a glance: the monthly series, as unicode blocks or HTML bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

MONTHS = 12
BLOCKS = "▁▂▃▄▅▆▇█"


def month_keys(now: datetime, months: int = MONTHS) -> tuple[str, ...]:
    """The "YYYY-MM" keys of the last `months` months, oldest first, ending with now's month.

    Months are taken in UTC because that is how the fold buckets `ContactState.monthly`;
    a local month would shift a touch near midnight on the 1st into the wrong bar.
    """
    current = now.astimezone(UTC)
    index = current.year * 12 + current.month - 1
    keys = []
    for i in range(index - months + 1, index + 1):
        year, month0 = divmod(i, 12)
        keys.append(f"{year:04d}-{month0 + 1:02d}")
    return tuple(keys)


def monthly_series(monthly: Mapping[str, int], now: datetime) -> tuple[int, ...]:
    """Episodes per month for the last twelve months, oldest first (0 for a month without any)."""
    return tuple(int(monthly.get(key, 0)) for key in month_keys(now))


def blocks(values: Sequence[int]) -> str:
    """One block character per value, for terminals and plain-text mail.

    An empty month is always the lowest block and any month with contact is at least the
    second, so a single touch is never drawn like silence.
    """
    peak = max(values, default=0)
    out = []
    for value in values:
        if value <= 0 or peak <= 0:
            out.append(BLOCKS[0])
            continue
        # 1..peak maps onto the seven upper blocks, rounding up so 1 of 9 still shows.
        level = -(-value * (len(BLOCKS) - 1) // peak)
        out.append(BLOCKS[level])
    return "".join(out)


def bar_heights(values: Sequence[int], max_px: int = 20) -> tuple[int, ...]:
    """Pixel heights for HTML bars: 1 px baseline for an empty month, at least 3 px otherwise."""
    peak = max(values, default=0)
    heights = []
    for value in values:
        if value <= 0 or peak <= 0:
            heights.append(1)
        else:
            heights.append(max(3, round(value * max_px / peak)))
    return tuple(heights)
