"""The learned rhythm: how long a gap between episodes with one contact usually is.

Gaps are modelled as log-normal: ln(gap in days) ~ Normal(mu, sigma). With little history the
estimate leans on the tier's prior, so one quick exchange does not make a weekly contact of
someone you see twice a year. Both the fold (to spot reach-outs as they happened) and `assess`
use these functions, so "cooling" means the same thing in both places.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from keepwarm.config.schema import ModelConfig, TierConfig

# Gaps shorter than this (possible only with episode_gap_days near 0) would make ln(gap)
# arbitrarily negative and let one burst dominate the rhythm.
GAP_FLOOR_DAYS = 0.5

# No person is perfectly regular; without a floor a long, very regular history would make a
# gap a few days late look like a one-in-a-billion event.
SIGMA_FLOOR = 0.1

_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True, slots=True)
class Rhythm:
    """The posterior log-gap distribution: ln(gap days) ~ Normal(mu, sigma)."""

    mu: float
    sigma: float

    @property
    def typical_days(self) -> float:
        """The median gap, e^mu."""
        return math.exp(self.mu)

    def survival(self, gap_days: float) -> float:
        """P(gap >= gap_days) = 1 − Φ((ln g − mu) / sigma)."""
        return _survival(gap_days, self.mu, self.sigma)


def tier_config(model: ModelConfig, tier: str) -> TierConfig:
    """The tier's settings; an unknown tier falls back to the default tier, then to defaults."""
    found = model.tiers.get(tier) or model.tiers.get(model.default_tier)
    return found if found is not None else TierConfig()


def rhythm(
    gap_count: int, log_gap_sum: float, log_gap_sq: float, model: ModelConfig, tier: str
) -> Rhythm:
    """The contact's rhythm from its gap statistics, shrunk toward the tier prior.

    With n gaps, S = Σ ln g, Q = Σ (ln g)², k = model.prior_strength,
    m0 = ln(tier.typical_days) and s0 = model.prior_sigma:

        mu      = (S + k·m0) / (n + k)
        SS      = Q − S²/n     (sum of squares about the gaps' own mean; 0 when n = 0)
        sigma²  = (SS + k·s0²) / (n + k)
        sigma   = max(sqrt(sigma²), SIGMA_FLOOR)

    so the prior counts as k gaps of length typical_days spread by s0. With n + k = 0 (no gaps
    and no prior weight) the prior itself is used.
    """
    prior_mu = math.log(tier_config(model, tier).typical_days)
    return posterior(
        gap_count, log_gap_sum, log_gap_sq, prior_mu, model.prior_strength, model.prior_sigma
    )


def posterior(n: int, s: float, q: float, prior_mu: float, k: float, s0: float) -> Rhythm:
    """`rhythm` with the prior already looked up."""
    return Rhythm(*_posterior(n, s, q, prior_mu, k, s0))


def _posterior(
    n: int, s: float, q: float, prior_mu: float, k: float, s0: float
) -> tuple[float, float]:
    """(mu, sigma) of `posterior`, without building a Rhythm (the fold asks this per gap)."""
    if n + k <= 0:
        return prior_mu, max(s0, SIGMA_FLOOR)
    mu = (s + k * prior_mu) / (n + k)
    # Rounding can make Q − S²/n a hair negative for identical gaps.
    ss = max(0.0, q - s * s / n) if n else 0.0
    variance = (ss + k * s0 * s0) / (n + k)
    return mu, max(math.sqrt(variance), SIGMA_FLOOR)


def _survival(gap_days: float, mu: float, sigma: float) -> float:
    """`Rhythm.survival`, for a rhythm given as its two numbers."""
    if gap_days <= 0:
        return 1.0
    z = (math.log(gap_days) - mu) / sigma
    return 0.5 * math.erfc(z / _SQRT2)


def quiet_status(silence_days: float, survival: float, model: ModelConfig, max_days: float) -> str:
    """'warm', 'cooling' or 'cold' for a two-way contact silent this long (dormancy aside)."""
    if silence_days < model.min_days:
        return "warm"
    if silence_days >= max_days or survival < model.cold_below:
        return "cold"
    if survival < model.cooling_below:
        return "cooling"
    return "warm"


class QuietTest:
    """Would `assess` have called a two-way contact cooling or cold after this silence?

    The fold asks this of past silences to recognise reach-outs: the same rule as `assess`
    (the rhythm of the gaps so far, min_days, the tier's max_days), with the tier looked up once.
    """

    __slots__ = ("cold_below", "cooling_below", "k", "max_days", "min_days", "prior_mu", "s0")

    def __init__(self, model: ModelConfig, tier: str) -> None:
        config = tier_config(model, tier)
        self.min_days, self.max_days = model.min_days, config.max_days
        self.cold_below, self.cooling_below = model.cold_below, model.cooling_below
        self.prior_mu = math.log(config.typical_days)
        self.k = model.prior_strength
        self.s0 = model.prior_sigma

    def __call__(self, silence_days: float, gap_count: int, gap_sum: float, gap_sq: float) -> bool:
        # `quiet_status(...) != "warm"`, asked in its own order but stopping at the first
        # answer: past max_days the rhythm need not be learned at all.
        if silence_days < self.min_days:
            return False
        if silence_days >= self.max_days:
            return True
        mu, sigma = _posterior(gap_count, gap_sum, gap_sq, self.prior_mu, self.k, self.s0)
        survival = _survival(silence_days, mu, sigma)
        return survival < self.cold_below or survival < self.cooling_below


def describe_gap(days: float, *, approx: bool = False) -> str:
    """A span in words: '5 days', '9 weeks', '14 months', '3 years' ('~' prefixed if approx)."""
    text = _in_units(days, _unit(days))
    return f"~{text}" if approx else text


def describe_pair(days: float, limit_days: float) -> tuple[str, int]:
    """`days` in words and `limit_days` as a count of the same unit ('14 months', 12)."""
    unit = _unit(days)
    return _in_units(days, unit), max(1, round(limit_days / _UNIT_DAYS[unit]))


def rarity(survival: float) -> int:
    """N in "a gap this long happens 1 time in N", rounded the way people say it.

    Below 20 to the unit, below 100 to 5, then to two significant figures (170, 1200),
    capped at one million.
    """
    if survival >= 1.0:
        return 1
    if survival <= 1e-6:
        return 1_000_000
    n = 1.0 / survival
    if n < 20:
        return max(1, round(n))
    if n < 100:
        return int(5 * round(n / 5))
    digits = math.floor(math.log10(n)) - 1
    return min(1_000_000, int(round(n, -digits)))


_UNIT_DAYS = {"day": 1.0, "week": 7.0, "month": 30.44, "year": 365.25}


def _unit(days: float) -> str:
    # Thresholds keep numbers people say: up to 13 days, up to 13 weeks, up to 23 months.
    if days < 13.5:
        return "day"
    if days < 91:
        return "week"
    if days < 715:
        return "month"
    return "year"


def _in_units(days: float, unit: str) -> str:
    count = max(1, round(days / _UNIT_DAYS[unit]))
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"
