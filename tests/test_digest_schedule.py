"""When the digest is due: the weekly slot in the digest's zone, across DST, once per ISO week."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keepwarm.config.checks import parse_schedule
from keepwarm.digest.schedule import latest_slot, next_slot

LONDON = "Europe/London"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_monday_eight_in_london_is_eight_utc_in_winter_and_seven_in_summer() -> None:
    winter = latest_slot("Mon 08:00", LONDON, utc(2026, 11, 25, 12))
    assert winter.due == utc(2026, 11, 23, 8)
    assert winter.period == "2026-W48"
    summer = latest_slot("Mon 08:00", LONDON, utc(2026, 7, 1, 12))
    assert summer.due == utc(2026, 6, 29, 7)  # 08:00 BST


def test_the_week_around_a_clock_change_keeps_the_wall_clock_time() -> None:
    # Clocks go forward on Sunday 29 March 2026: the Monday before is GMT, the Monday after BST.
    before = latest_slot("Mon 08:00", LONDON, utc(2026, 3, 28, 12))
    after = next_slot("Mon 08:00", LONDON, utc(2026, 3, 28, 12))
    assert before.due == utc(2026, 3, 23, 8)
    assert after.due == utc(2026, 3, 30, 7)
    assert after.due - before.due == timedelta(days=7, hours=-1)  # a 167-hour week
    # ...and back on Sunday 25 October: a 169-hour week.
    autumn = next_slot("Mon 08:00", LONDON, utc(2026, 10, 20, 12))
    assert autumn.due == utc(2026, 10, 26, 8)
    assert autumn.due - latest_slot("Mon 08:00", LONDON, utc(2026, 10, 20, 12)).due == timedelta(
        days=7, hours=1
    )


def test_a_time_that_happens_twice_is_due_the_first_time() -> None:
    # 01:30 on 25 October 2026 in London: first BST (00:30 UTC), an hour later GMT (01:30 UTC).
    slot = latest_slot("Sun 01:30", LONDON, utc(2026, 10, 25, 1, 0))
    assert slot.due == utc(2026, 10, 25, 0, 30)
    assert slot.period == "2026-W43"
    # At the second 01:30 the slot is the same one: nothing new is due.
    assert latest_slot("Sun 01:30", LONDON, utc(2026, 10, 25, 1, 45)) == slot


def test_a_time_that_does_not_exist_is_due_just_after_the_jump() -> None:
    # 01:30 on 29 March 2026 in London never shows on a clock (01:00 GMT -> 02:00 BST).
    slot = latest_slot("Sun 01:30", LONDON, utc(2026, 3, 29, 12))
    assert slot.due == utc(2026, 3, 29, 1, 30)  # 02:30 BST, as far past the jump as 01:30 was
    assert slot.local(ZoneInfo(LONDON)).hour == 2
    assert slot.period == "2026-W13"


def test_before_this_weeks_time_the_latest_slot_is_last_weeks() -> None:
    assert latest_slot("Mon 08:00", "UTC", utc(2026, 11, 23, 7, 59)).due == utc(2026, 11, 16, 8)
    assert latest_slot("Mon 08:00", "UTC", utc(2026, 11, 23, 8, 0)).due == utc(2026, 11, 23, 8)


def test_weekday_is_read_in_the_digest_zone_not_utc() -> None:
    # Monday 08:00 in Auckland (NZDT, +13) is Sunday 19:00 UTC.
    slot = latest_slot("Mon 08:00", "Pacific/Auckland", utc(2026, 11, 22, 20))
    assert slot.due == utc(2026, 11, 22, 19)
    assert slot.period == "2026-W48"  # the ISO week of the local Monday


def test_a_machine_off_for_weeks_serves_only_the_latest_slot() -> None:
    now = utc(2026, 12, 16, 10)  # three Mondays were missed while the machine was off
    slot = latest_slot("Mon 08:00", LONDON, now)
    assert slot.due == utc(2026, 12, 14, 8)
    assert slot.period == "2026-W51"


@pytest.mark.parametrize("text", ["Mon", "Funday 08:00", "Mon 25:00", ""])
def test_a_bad_schedule_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="Mon 08:00"):
        latest_slot(text, "UTC", utc(2026, 1, 1))


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        latest_slot("Mon 08:00", "UTC", datetime(2026, 1, 1))


ZONES = st.sampled_from(
    ["Europe/London", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham",
     "America/Santiago", "Asia/Kolkata", "UTC", "Africa/Casablanca"]
)  # fmt: skip
SCHEDULES = st.builds(
    lambda d, h, m: f"{d} {h:02d}:{m:02d}",
    st.sampled_from(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
    st.integers(0, 23),
    st.sampled_from([0, 15, 30, 45, 59]),
)
MOMENTS = st.datetimes(datetime(2020, 1, 1), datetime(2035, 1, 1), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(schedule=SCHEDULES, zone=ZONES, now=MOMENTS)
def test_slots_bracket_now_and_each_iso_week_has_one(
    schedule: str, zone: str, now: datetime
) -> None:
    latest, upcoming = latest_slot(schedule, zone, now), next_slot(schedule, zone, now)
    assert latest.due <= now < upcoming.due
    weekday, at = parse_schedule(schedule)
    wall = datetime.combine(latest.day, at)
    shown = latest.local(ZoneInfo(zone)).replace(tzinfo=None)
    assert latest.day.weekday() == weekday
    # The clock shows the scheduled time, or (in a spring-forward gap) a little after it.
    assert timedelta(0) <= shown - wall <= timedelta(hours=3)
    # Consecutive slots are one local week apart, within the largest DST shift (a few hours).
    assert abs((upcoming.due - latest.due) - timedelta(days=7)) <= timedelta(hours=3)
    assert upcoming.day - latest.day == timedelta(days=7)
    assert latest.period != upcoming.period
    # Just before the next slot, the latest is still this one: one send per slot, no gaps.
    assert latest_slot(schedule, zone, upcoming.due - timedelta(microseconds=1)) == latest
    assert latest_slot(schedule, zone, upcoming.due) == upcoming
