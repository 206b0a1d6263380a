"""A contact's status at a given moment, with the numbers and plain words behind it. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from keepwarm.config.schema import ModelConfig
from keepwarm.relationship.rhythm import (
    Rhythm,
    describe_gap,
    describe_pair,
    quiet_status,
    rarity,
    rhythm,
    tier_config,
)
from keepwarm.relationship.state import Assessment, ContactState

DAY = 86400.0
# How long an answered reach-out stays news ("reconnected" in the digest).
RECONNECTED_DAYS = 30.0
# Not strftime("%b"): the daemon's locale must not change the words.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def assess(
    state: ContactState,
    now: datetime,
    model: ModelConfig,
    *,
    tier: str,
    tags: Iterable[str] = (),
    pinned: bool = False,
    ignored: bool = False,
    snoozed_until: datetime | None = None,
    next_meeting: datetime | None = None,
    reconnected_days: float = RECONNECTED_DAYS,
) -> Assessment:
    """Status at `now`, first rule that applies:

    muted (ignored, or snoozed until after now); new (no touch yet); dormant (silent for
    dormant_days); new (one-way and not pinned); warm (silent less than min_days); cold (silent
    for the tier's max_days or more); cold / cooling (a gap this long is rarer than cold_below /
    cooling_below under the learned rhythm); else warm. Owed replies are reported for
    contacts that are warm, cooling or cold; reconnections for reconnected_days after the answer.
    """
    learned = rhythm(state.gap_count, state.log_gap_sum, state.log_gap_sq, model, tier)
    max_days = tier_config(model, tier).max_days
    snoozed = snoozed_until if snoozed_until is not None and snoozed_until > now else None
    silence: float | None = None
    survival: float | None = None
    warmth = 0.0
    if state.last_touch is not None:
        # A touch stamped in the future (clock skew) counts as just now.
        silence = max(0.0, (now - state.last_touch).total_seconds() / DAY)
        survival = learned.survival(silence)
        warmth = state.warmth_at_last * 2.0 ** (-silence / model.half_life_days)

    if ignored or snoozed is not None:
        status = "muted"
    elif silence is None or survival is None:
        status = "new"
    elif silence >= model.dormant_days:
        status = "dormant"
    elif not state.two_way and not pinned:
        status = "new"
    else:
        status = quiet_status(silence, survival, model, max_days)

    # A stranger's first email is not a relationship owed an answer; a muted or dormant
    # contact is out of the digest altogether.
    owed = None if status in ("muted", "dormant", "new") else _owed_reply(state, now, model)
    reconnected = _reconnected(state, now, reconnected_days)
    reaching = _reaching_out(state, now, model)
    meeting = next_meeting if next_meeting is not None and next_meeting > now else None
    words = _Reasons(state, now, model, tier, learned, max_days)
    reasons = words.status(status, silence, survival, ignored=ignored, snoozed=snoozed)
    if pinned and not state.two_way and status not in ("muted", "new"):
        reasons.append("pinned: tracked although the exchange is one-way")
    if meeting is not None:
        reasons.append(f"you meet on {words.day(meeting)}")
    if owed is not None:
        reasons.append(f"their email of {words.day(owed)} is waiting for your reply")
    if reaching is not None:
        reasons.append(f"you wrote on {words.day(reaching)}; no answer yet")
    if reconnected is not None and state.reach_out_at is not None:
        reasons.append(f"they answered your note of {words.day(state.reach_out_at)}")

    typical = learned.typical_days
    return Assessment(
        state=state,
        now=now,
        status=status,
        tier=tier,
        warmth=warmth,
        warmth_lost=state.warmth_at_last - warmth,
        silence_days=silence,
        typical_gap_days=typical if state.gap_count else None,
        survival=survival,
        # With no gaps yet the tier prior stands in for the rhythm, as it does for the status.
        overdue=silence / typical if silence is not None else 0.0,
        owed_reply_since=owed,
        reconnected_at=reconnected,
        reaching_out_since=reaching,
        next_meeting=meeting,
        tags=tuple(tags),
        pinned=pinned,
        snoozed_until=snoozed,
        reasons=tuple(reasons),
    )


def _owed_reply(state: ContactState, now: datetime, model: ModelConfig) -> datetime | None:
    """Their last direct email, when nothing went out after it for reply_days."""
    since = state.last_in_direct
    if since is None or (state.last_out is not None and state.last_out > since):
        return None
    return since if (now - since).total_seconds() >= model.reply_days * DAY else None


def _reconnected(state: ContactState, now: datetime, window_days: float) -> datetime | None:
    """Their answer to a reach-out, while it is recent news."""
    answered = state.reach_out_answered_at
    if answered is None or answered > now:
        return None
    return answered if (now - answered).total_seconds() <= window_days * DAY else None


def _reaching_out(state: ContactState, now: datetime, model: ModelConfig) -> datetime | None:
    """An unanswered reach-out younger than retry_days: it keeps them out of the list."""
    since = state.reach_out_at
    if since is None or state.reach_out_answered_at is not None:
        return None
    # Any later touch of theirs is an answer, however late.
    if state.last_in is not None and state.last_in > since:
        return None
    return since if (now - since).total_seconds() < model.retry_days * DAY else None


class _Reasons:
    """The plain words of an assessment."""

    def __init__(
        self,
        state: ContactState,
        now: datetime,
        model: ModelConfig,
        tier: str,
        learned: Rhythm,
        max_days: float,
    ) -> None:
        self.state, self.now, self.model, self.tier = state, now, model, tier
        self.learned, self.max_days = learned, max_days

    def day(self, when: datetime) -> str:
        """'2 Dec', with the year when it is not the current one ('2 Dec 2024')."""
        text = f"{when.day} {_MONTHS[when.month - 1]}"
        return text if when.year == self.now.year else f"{text} {when.year}"

    def status(
        self,
        status: str,
        silence: float | None,
        survival: float | None,
        *,
        ignored: bool,
        snoozed: datetime | None,
    ) -> list[str]:
        state = self.state
        if status == "muted":
            return ["ignored"] if ignored else [f"snoozed until {self.day(snoozed or self.now)}"]
        if silence is None or survival is None:
            return ["no touchpoints yet"]
        if status == "dormant":
            return [f"no contact for {describe_gap(silence)}: dormant"]
        if status == "new":
            if state.last_out is None:
                return ["one-way so far: they wrote, you have not"]
            return ["one-way so far: no answer from them yet"]
        if silence < self.model.min_days:
            return [f"last touch {describe_gap(silence)} ago"]
        if silence >= self.max_days:
            now_text, limit = describe_pair(silence, self.max_days)
            return [f"no contact for {now_text} (tier {self.tier}: at most {limit})"]
        return [self._rhythm(silence, survival, show_rarity=status != "warm")]

    def _rhythm(self, silence: float, survival: float, *, show_rarity: bool) -> str:
        if self.state.gap_count:
            text = (
                f"usually every {describe_gap(self.learned.typical_days, approx=True)}; "
                f"{describe_gap(silence)} now"
            )
        else:
            text = f"{describe_gap(silence)} since the only exchange (tier {self.tier})"
        if not show_rarity:
            return text
        n = rarity(survival)
        if n >= 1000:
            return f"{text} — a gap this long almost never happens"
        return f"{text} — a gap this long happens 1 time in {n}"
