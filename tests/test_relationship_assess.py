"""Status, warmth, rhythm and the other verdicts of `assess`, checked against the model by hand."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from keepwarm.config.schema import ModelConfig
from keepwarm.relationship.assess import assess
from keepwarm.relationship.rhythm import describe_gap, rarity, rhythm
from keepwarm.relationship.state import ContactState

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MODEL = ModelConfig()
DAY = timedelta(days=1)


def regular(
    gap_days: float, gaps: int, *, two_way: bool = True, warmth: float = 1.0
) -> ContactState:
    """A contact with `gaps` equal gaps between episodes, last touched at T0."""
    lg = math.log(gap_days)
    return ContactState(
        key="ann@example.org",
        addresses=("ann@example.org",),
        episodes=gaps + 1,
        touchpoints=gaps + 1,
        first_touch=T0 - gaps * gap_days * DAY,
        last_touch=T0,
        last_out=T0,
        last_in=T0 - DAY if two_way else None,
        two_way=two_way,
        gap_count=gaps,
        log_gap_sum=gaps * lg,
        log_gap_sq=gaps * lg * lg,
        warmth_at_last=warmth,
    )


def survival(gap_days: float, gaps: int, typical: float, silence: float) -> float:
    """The documented posterior for equal gaps (sum of squares 0), k = 4, s0 = 0.8."""
    mu = (gaps * math.log(gap_days) + 4 * math.log(typical)) / (gaps + 4)
    sigma = math.sqrt(4 * 0.8**2 / (gaps + 4))
    return 0.5 * math.erfc((math.log(silence) - mu) / (sigma * math.sqrt(2)))


def test_rhythm_posterior_matches_the_documented_formula() -> None:
    gaps = [5.0, 9.0, 20.0]
    logs = [math.log(g) for g in gaps]
    s, q = sum(logs), sum(x * x for x in logs)
    learned = rhythm(3, s, q, MODEL, "close")
    mu = (s + 4 * math.log(30)) / 7
    ss = q - s * s / 3
    assert learned.mu == pytest.approx(mu)
    assert learned.sigma == pytest.approx(math.sqrt((ss + 4 * 0.64) / 7))
    assert learned.typical_days == pytest.approx(math.exp(mu))
    # No history: the tier prior itself.
    prior = rhythm(0, 0.0, 0.0, MODEL, "network")
    assert prior.mu == pytest.approx(math.log(90))
    assert prior.sigma == pytest.approx(0.8)
    # An unknown tier falls back to the default tier (network).
    assert rhythm(0, 0.0, 0.0, MODEL, "nope").mu == pytest.approx(math.log(90))


def test_weekly_contact_silent_six_weeks_is_cold() -> None:
    expected = survival(7, 20, 30, 42)
    assert expected < MODEL.cold_below
    a = assess(regular(7, 20), T0 + 42 * DAY, MODEL, tier="close")
    assert a.status == "cold"
    assert a.survival == pytest.approx(expected)
    assert a.alert


def test_quarterly_contact_silent_six_weeks_is_warm() -> None:
    a = assess(regular(91, 8), T0 + 42 * DAY, MODEL, tier="close")
    assert a.survival == pytest.approx(survival(91, 8, 30, 42))
    assert a.survival is not None
    assert a.survival > MODEL.cooling_below
    assert a.status == "warm"
    assert not a.alert


def test_cooling_between_the_thresholds() -> None:
    # Weekly for 20 gaps: two weeks of silence is unusual, not yet rare.
    silence = 14.0
    expected = survival(7, 20, 30, silence)
    assert MODEL.cold_below <= expected < MODEL.cooling_below
    assert assess(regular(7, 20), T0 + silence * DAY, MODEL, tier="close").status == "cooling"


def test_min_days_comes_first() -> None:
    # Daily for 60 gaps: 10 silent days is very rare, but under min_days (14).
    assert survival(1, 60, 10, 10) < MODEL.cold_below
    assert assess(regular(1, 60), T0 + 10 * DAY, MODEL, tier="inner").status == "warm"
    assert assess(regular(1, 60), T0 + 14 * DAY, MODEL, tier="inner").status == "cold"


def test_max_days_forces_cold() -> None:
    # Tier inner allows at most 60 days; a steady 91-day rhythm would not call 61 days unusual.
    assert survival(91, 30, 10, 61) > MODEL.cooling_below
    a = assess(regular(91, 30), T0 + 61 * DAY, MODEL, tier="inner")
    assert a.status == "cold"
    assert a.reasons[0] == "no contact for 9 weeks (tier inner: at most 9)"
    b = assess(regular(91, 30), T0 + 426 * DAY, MODEL, tier="network")
    assert b.status == "cold"
    assert b.reasons[0] == "no contact for 14 months (tier network: at most 12)"


def test_dormant_after_dormant_days() -> None:
    assert assess(regular(7, 5), T0 + 729 * DAY, MODEL, tier="close").status == "cold"
    a = assess(regular(7, 5), T0 + 730 * DAY, MODEL, tier="close")
    assert a.status == "dormant"
    assert a.reasons == ("no contact for 2 years: dormant",)


def test_one_way_is_new_unless_pinned() -> None:
    one_way = regular(7, 5, two_way=False)
    assert assess(one_way, T0 + 200 * DAY, MODEL, tier="close").status == "new"
    pinned = assess(one_way, T0 + 200 * DAY, MODEL, tier="close", pinned=True)
    assert pinned.status == "cold"
    assert pinned.pinned
    empty = ContactState(key="x@example.org", addresses=("x@example.org",))
    assert assess(empty, T0, MODEL, tier="close", pinned=True).status == "new"


def test_muted_when_ignored_or_snoozed_until_a_later_date() -> None:
    state, now = regular(7, 20), T0 + 42 * DAY
    assert assess(state, now, MODEL, tier="close", ignored=True).status == "muted"
    snoozed = assess(state, now, MODEL, tier="close", snoozed_until=now + DAY)
    assert snoozed.status == "muted"
    assert snoozed.snoozed_until == now + DAY
    over = assess(state, now, MODEL, tier="close", snoozed_until=now - DAY)
    assert over.status == "cold"
    assert over.snoozed_until is None


def test_warmth_now_and_lost() -> None:
    a = assess(regular(7, 5, warmth=4.0), T0 + 45 * DAY, MODEL, tier="close")
    assert a.warmth == pytest.approx(4.0 * 2 ** (-45 / 90))
    assert a.warmth_lost == pytest.approx(4.0 - 4.0 * 2 ** (-45 / 90))
    assert a.silence_days == pytest.approx(45)
    mu = (5 * math.log(7) + 4 * math.log(30)) / 9
    assert a.typical_gap_days == pytest.approx(math.exp(mu))
    assert a.overdue == pytest.approx(45 / math.exp(mu))


def test_rhythm_reason_in_words() -> None:
    gaps = [8.0, 30.0, 14.0, 50.0, 21.0, 12.0] * 2
    logs = [math.log(g) for g in gaps]
    s, q = sum(logs), sum(x * x for x in logs)
    state = replace(regular(7, 1), gap_count=12, log_gap_sum=s, log_gap_sq=q)
    mu = (s + 4 * math.log(30)) / 16
    sigma = math.sqrt((q - s * s / 12 + 4 * 0.64) / 16)
    p = 0.5 * math.erfc((math.log(63) - mu) / (sigma * math.sqrt(2)))
    assert round(math.exp(mu) / 7) == 3  # "~3 weeks"
    assert 0.04 < p < 0.05  # 1/p is about 21, which is said to the nearest 5: 20
    a = assess(state, T0 + 63 * DAY, MODEL, tier="close")
    assert a.status == "cold"
    assert a.reasons[0] == (
        "usually every ~3 weeks; 9 weeks now — a gap this long happens 1 time in 20"
    )


def test_owed_reply_after_reply_days_without_a_later_outbound() -> None:
    state = replace(regular(7, 5), last_out=T0 - 2 * DAY, last_in_direct=T0)
    assert assess(state, T0 + 2 * DAY, MODEL, tier="close").owed_reply_since is None
    owed = assess(state, T0 + 3 * DAY, MODEL, tier="close")
    assert owed.owed_reply_since == T0
    assert any("waiting for your reply" in r for r in owed.reasons)
    answered = replace(state, last_out=T0 + DAY)
    assert assess(answered, T0 + 5 * DAY, MODEL, tier="close").owed_reply_since is None
    stranger = replace(state, two_way=False, last_out=None)
    assert assess(stranger, T0 + 5 * DAY, MODEL, tier="close").owed_reply_since is None
    assert assess(stranger, T0 + 5 * DAY, MODEL, tier="close", pinned=True).owed_reply_since == T0


def test_reach_out_answered_is_reconnected_for_a_while() -> None:
    reach, reply = T0 - 10 * DAY, T0 - 8 * DAY
    state = replace(regular(7, 20), reach_out_at=reach, reach_out_answered_at=reply, last_in=reply)
    a = assess(state, T0 + 5 * DAY, MODEL, tier="close")
    assert a.reconnected_at == reply
    assert a.reaching_out_since is None
    assert "they answered your note of 22 Dec 2023" in a.reasons
    assert assess(state, reply + 31 * DAY, MODEL, tier="close").reconnected_at is None
    longer = assess(state, reply + 31 * DAY, MODEL, tier="close", reconnected_days=45)
    assert longer.reconnected_at == reply


def test_unanswered_reach_out_suppresses_the_alert_for_retry_days() -> None:
    reach = T0  # the last touch is the reach-out itself
    state = replace(regular(7, 20), reach_out_at=reach, last_in=T0 - 70 * DAY)
    a = assess(state, reach + 42 * DAY, MODEL, tier="close")
    assert a.status == "cold"
    assert a.reaching_out_since == reach
    assert not a.alert
    later = assess(state, reach + 60 * DAY, MODEL, tier="close")
    assert later.reaching_out_since is None
    assert later.alert


def test_a_planned_meeting_suppresses_the_alert() -> None:
    now = T0 + 42 * DAY
    meet = datetime(2024, 12, 2, 15, tzinfo=UTC)
    a = assess(regular(7, 20), now, MODEL, tier="close", next_meeting=meet)
    assert a.status == "cold"
    assert not a.alert
    assert "you meet on 2 Dec" in a.reasons
    past = assess(regular(7, 20), now, MODEL, tier="close", next_meeting=now - DAY)
    assert past.next_meeting is None


@pytest.mark.parametrize(
    ("days", "words"),
    [
        (1, "1 day"),
        (5, "5 days"),
        (13, "13 days"),
        (14, "2 weeks"),
        (20.6, "3 weeks"),
        (63, "9 weeks"),
        (90, "13 weeks"),
        (91, "3 months"),
        (426, "14 months"),
        (730, "2 years"),
    ],
)
def test_describe_gap(days: float, words: str) -> None:
    assert describe_gap(days) == words
    assert describe_gap(days, approx=True) == f"~{words}"


@pytest.mark.parametrize(
    ("survival_value", "n"),
    [(1.0, 1), (0.5, 2), (1 / 7.4, 7), (1 / 41.0, 40), (1 / 43.0, 45), (1 / 173.0, 170),
     (1 / 1234.0, 1200), (0.0, 1_000_000)],
)  # fmt: skip
def test_rarity(survival_value: float, n: int) -> None:
    assert rarity(survival_value) == n
