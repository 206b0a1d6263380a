"""The fold's quiet test says what `assess` would have said: one rule for "cooling" in both."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from keepwarm.config.schema import ModelConfig
from keepwarm.relationship.rhythm import QuietTest, quiet_status, rhythm, tier_config

TIERS = ("inner", "close", "network", "no-such-tier")


def assess_rule(
    silence_days: float, n: int, s: float, q: float, model: ModelConfig, tier: str
) -> bool:
    """Not warm, the way `assess` decides it: the learned rhythm's survival, then the status."""
    learned = rhythm(n, s, q, model, tier)
    max_days = tier_config(model, tier).max_days
    return quiet_status(silence_days, learned.survival(silence_days), model, max_days) != "warm"


@st.composite
def gap_statistics(draw: st.DrawFn) -> tuple[int, float, float]:
    """(n, Σ ln g, Σ (ln g)²) of gaps around one usual gap, as the fold accumulates them."""
    usual = draw(st.floats(1.0, 400.0))
    gaps = [usual * f for f in draw(st.lists(st.floats(0.5, 2.0), max_size=30))]
    logs = [math.log(g) for g in gaps]
    return len(logs), sum(logs), sum(lg * lg for lg in logs)


@settings(max_examples=500, deadline=None)
@given(
    stats=gap_statistics(),
    tier=st.sampled_from(TIERS),
    min_days=st.sampled_from([0.0, 7.0, 14.0, 60.0]),
    prior_strength=st.sampled_from([0.0, 1.0, 4.0]),
    # Not only valid configs (cold_below < cooling_below): the two rules must agree anyway.
    cooling_below=st.sampled_from([0.1, 0.2, 0.5]),
    cold_below=st.sampled_from([0.01, 0.05, 0.3]),
    data=st.data(),
)
def test_quiet_test_agrees_with_the_status_rule(
    stats: tuple[int, float, float],
    tier: str,
    min_days: float,
    prior_strength: float,
    cooling_below: float,
    cold_below: float,
    data: st.DataObject,
) -> None:
    model = ModelConfig(
        min_days=min_days,
        prior_strength=prior_strength,
        cooling_below=cooling_below,
        cold_below=cold_below,
    )
    n, s, q = stats
    # Silences near where the answer changes: min_days, max_days and the learned rhythm.
    typical = rhythm(n, s, q, model, tier).typical_days
    anchor = data.draw(
        st.sampled_from([min_days, float(tier_config(model, tier).max_days), typical])
    )
    silence = max(0.0, anchor * data.draw(st.floats(0.25, 4.0)) + data.draw(st.floats(-1, 1)))
    assert QuietTest(model, tier)(silence, n, s, q) == assess_rule(silence, n, s, q, model, tier)


def test_past_max_days_is_quiet_however_regular_the_rhythm() -> None:
    model = ModelConfig()
    # 200 gaps of exactly 200 days: a long silence of 200 days is the usual one, yet past the
    # close tier's 120 days it is cold; before min_days nothing is quiet.
    n, lg = 200, math.log(200.0)
    quiet = QuietTest(model, "close")
    assert quiet(200.0, n, n * lg, n * lg * lg)
    assert not quiet(100.0, n, n * lg, n * lg * lg)
    assert not quiet(model.min_days - 1, 0, 0.0, 0.0)
