"""The twelve-month sparkline: which months, which values, how they are drawn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from keepwarm.digest.sparkline import bar_heights, blocks, month_keys, monthly_series


def test_the_window_ends_with_the_current_month_at_a_month_boundary() -> None:
    first_of_march = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    assert month_keys(first_of_march)[0] == "2025-04"
    assert month_keys(first_of_march)[-1] == "2026-03"
    just_before = first_of_march - timedelta(seconds=1)
    assert month_keys(just_before)[-1] == "2026-02"
    assert month_keys(just_before)[0] == "2025-03"


def test_the_window_crosses_the_year() -> None:
    keys = month_keys(datetime(2026, 1, 15, tzinfo=UTC))
    assert keys == (
        "2025-02", "2025-03", "2025-04", "2025-05", "2025-06", "2025-07",
        "2025-08", "2025-09", "2025-10", "2025-11", "2025-12", "2026-01",
    )  # fmt: skip


def test_months_are_utc_like_the_fold_buckets() -> None:
    # 1 March 00:30 in Berlin is still February in UTC, where the fold counted it.
    berlin_winter = timezone(timedelta(hours=1))
    assert month_keys(datetime(2026, 3, 1, 0, 30, tzinfo=berlin_winter))[-1] == "2026-02"


def test_series_reads_monthly_counts_oldest_first_and_drops_older_months() -> None:
    monthly = {"2025-03": 7, "2025-04": 1, "2026-02": 2, "2026-03": 5}
    series = monthly_series(monthly, datetime(2026, 3, 1, tzinfo=UTC))
    assert series == (1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 5)
    assert len(monthly_series({}, datetime(2026, 3, 1, tzinfo=UTC))) == 12


def test_blocks_scale_to_the_busiest_month_and_keep_one_touch_visible() -> None:
    assert blocks([0, 1, 2, 4, 8]) == "▁▂▃▅█"
    assert blocks([0, 1, 9]) == "▁▂█"  # one touch in nine is still above silence
    assert blocks([0, 0, 0]) == "▁▁▁"
    assert blocks([3, 3]) == "██"


def test_bar_heights_have_a_baseline_for_silence() -> None:
    assert bar_heights([0, 1, 10], max_px=20) == (1, 3, 20)
    assert bar_heights([0, 0]) == (1, 1)
