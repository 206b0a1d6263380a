"""The model's numbers in the form the fold's loop reads them, prepared once per (model, tier).

Kept apart from the loop in `fold.py` so the loop reads as the algorithm; everything here runs
once per contact at most, never per touchpoint.
"""

from __future__ import annotations

from datetime import timedelta

from keepwarm.config.schema import ModelConfig
from keepwarm.relationship.rhythm import QuietTest

DAY = 86400.0


class FoldParams:
    """The model's numbers in the form the loop wants, prepared once per (model, tier)."""

    __slots__ = (
        "episode_gap", "half_life", "min_silence", "model", "quiet", "response", "small",
        "tier", "w_1to1", "w_cc", "w_in", "w_large", "w_out", "w_small",
    )  # fmt: skip

    def __init__(self, model: ModelConfig, tier: str) -> None:
        weights = model.weights
        self.model, self.tier = model, tier
        self.w_out, self.w_in, self.w_cc = weights.out_direct, weights.in_direct, weights.cc
        self.w_1to1, self.w_small = weights.meeting_1to1, weights.meeting_small
        self.w_large, self.small = weights.meeting_large, weights.small_meeting
        self.episode_gap = timedelta(days=model.episode_gap_days)
        self.min_silence = timedelta(days=model.min_days)
        self.response = timedelta(days=model.response_days)
        self.half_life = model.half_life_days * DAY
        self.quiet = QuietTest(model, tier)


_last_params: FoldParams | None = None


def fold_params(model: ModelConfig, tier: str) -> FoldParams:
    """A replay folds thousands of contacts with one model and a few tiers: keep the last one.

    The cache holds the model itself, so an identity match cannot be a recycled id.
    """
    global _last_params
    found = _last_params
    if found is None or found.model is not model or found.tier != tier:
        found = _last_params = FoldParams(model, tier)
    return found
