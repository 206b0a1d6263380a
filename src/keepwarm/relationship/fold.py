"""Touchpoints -> `ContactState`: the projection's pure, time-independent fold.

This is the hot path of a full replay (a million touchpoints). Per touchpoint the loop reads a
few attributes, compares its time with the previous one and subtracts the two (the silence);
the natural key and counterpart are read only on a tie in time. Seconds as floats, logarithms,
powers and month numbers are computed only when an episode opens, and for an aware datetime
`timestamp()` is `(at - epoch).total_seconds()` in one call. Counts that follow from others
(touchpoints, episodes) are worked out once at the end rather than kept per touchpoint.
The model's numbers arrive prepared (`fold_params.py`); the organisation is `organisation.py`'s.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from operator import attrgetter

from keepwarm.config.schema import ModelConfig
from keepwarm.model import Direction, Kind, Role, Touchpoint
from keepwarm.relationship.fold_params import DAY, fold_params
from keepwarm.relationship.organisation import contact_organisation
from keepwarm.relationship.rhythm import GAP_FLOOR_DAYS
from keepwarm.relationship.state import ContactState

# Earlier than any touch: the "previous touch" of the first one.
_DAWN = datetime.min.replace(tzinfo=UTC)
_LOG_FLOOR = math.log(GAP_FLOOR_DAYS)
# Enum members bound once: looking one up on its class costs more than the comparison.
_EMAIL, _MEETING = Kind.EMAIL, Kind.MEETING
_OUT, _IN = Direction.OUT, Direction.IN
_CC, _FROM = Role.CC, Role.FROM
_natural_key = attrgetter("natural_key")
_identity = attrgetter("natural_key", "counterpart")


def canonical_order(touchpoint: Touchpoint) -> tuple[datetime, str, str]:
    """The order the fold reads touchpoints in, so any permutation folds the same way."""
    return (touchpoint.occurred_at, touchpoint.natural_key, touchpoint.counterpart)


def fold(
    key: str,
    addresses: tuple[str, ...],
    touchpoints: Iterable[Touchpoint],
    model: ModelConfig,
    tier: str,
    *,
    extra_free_mail: Iterable[str] = (),
) -> ContactState:
    """Fold one contact's touchpoints (any order, duplicates allowed) into its state.

    Touchpoints are read in `canonical_order`, and of those sharing an identity
    (natural_key, counterpart) only the first counts. Input already sorted and free of
    duplicates (the store's) takes one pass; anything else is sorted and deduplicated first.
    `tier` sets the prior of the rhythm used to recognise past reach-outs.
    """
    items = touchpoints if isinstance(touchpoints, list) else list(touchpoints)
    extra = tuple(extra_free_mail)
    state = _scan(key, addresses, items, model, tier, extra)
    if state is None:
        state = _scan(key, addresses, _canonical(items), model, tier, extra)
        assert state is not None  # canonical input is sorted and unique by construction
    return state


def _canonical(items: Sequence[Touchpoint]) -> list[Touchpoint]:
    """Sorted in canonical order, keeping the first touchpoint of each identity."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for tp in sorted(items, key=canonical_order):
        ident = (tp.natural_key, tp.counterpart)
        if ident not in seen:
            seen.add(ident)
            kept.append(tp)
    return kept


def _scan(
    key: str,
    addresses: tuple[str, ...],
    items: Sequence[Touchpoint],
    model: ModelConfig,
    tier: str,
    extra_free_mail: tuple[str, ...],
) -> ContactState | None:
    """One pass over `items`, or None when they are out of canonical order or not unique.

    Exact neighbours (same time, key and counterpart) are skipped in the loop; an identity
    repeated at another time is caught by the set count at the end (one C-level pass, cheaper
    than a set lookup per touchpoint in Python) and sends the caller to the slow path.
    """
    p = fold_params(model, tier)
    w_out, w_in, w_cc = p.w_out, p.w_in, p.w_cc
    w_1to1, w_small, w_large, small = p.w_1to1, p.w_small, p.w_large, p.small
    email, meeting, out, inbound, cc, sender = _EMAIL, _MEETING, _OUT, _IN, _CC, _FROM
    utc = UTC
    episode_gap, min_silence, response = p.episode_gap, p.min_silence, p.response
    half_life = p.half_life
    quiet = p.quiet
    log = math.log
    floor = GAP_FLOOR_DAYS
    log_floor = _LOG_FLOOR

    multi = len(addresses) != 1
    per_address: dict[str, int] = {}
    months: list[int] = []  # the month of each closed episode, as year * 12 + month - 1

    last_at = _DAWN
    first: Touchpoint | None = None
    last: Touchpoint | None = None
    meetings = repeats = 0
    has_out = has_in = False
    last_out: datetime | None = None
    last_in: datetime | None = None
    last_in_direct: datetime | None = None
    name: str | None = None
    # The open episode: start (seconds), heaviest weight, month.
    ep_ts = ep_weight = 0.0
    ep_month = 0
    # Warmth of the closed episodes as of warmth_ts (the start of the latest of them).
    warmth = warmth_ts = 0.0
    gap_count = 0
    gap_sum = gap_sq = 0.0
    reach_out: datetime | None = None
    answered: datetime | None = None
    waiting = False

    for tp in items:
        at = tp.occurred_at
        if at <= last_at:
            # A tie in time (or worse): the previous touchpoint decides; an exact repeat of it
            # is skipped. Rare, so the keys are read only here.
            order = _tie(tp, last)
            if order < 0:
                return None
            if order == 0:
                repeats += 1
                continue
        if multi:
            cp = tp.counterpart
            per_address[cp] = per_address.get(cp, 0) + 1

        kind = tp.kind
        direction = tp.direction
        if kind == email:
            if tp.role == cc:
                weight = w_cc
            elif direction == out:
                weight = w_out
            else:
                weight = w_in
        elif kind == meeting:
            participants = tp.participants
            weight = w_1to1 if participants <= 2 else w_small if participants <= small else w_large
        else:
            weight = w_out

        if last is None:
            first = tp
            ep_ts = warmth_ts = at.timestamp()
            ep_weight = weight
            utc_at = at if at.tzinfo is utc else at.astimezone(utc)
            ep_month = utc_at.year * 12 + utc_at.month - 1
        elif (silence := at - last_at) >= episode_gap:
            # A new episode: close the open one into warmth, gap statistics and months.
            ts = at.timestamp()
            warmth = warmth * 2.0 ** ((warmth_ts - ep_ts) / half_life) + ep_weight
            warmth_ts = ep_ts
            if (
                direction == out
                and silence >= min_silence
                and ((has_out and has_in) or meetings > 0)
                and quiet(silence.total_seconds() / DAY, gap_count, gap_sum, gap_sq)
            ):
                reach_out, answered, waiting = at, None, True
            gap = (ts - ep_ts) / DAY
            lg = log(gap) if gap > floor else log_floor
            gap_count += 1
            gap_sum += lg
            gap_sq += lg * lg
            months.append(ep_month)
            ep_ts, ep_weight = ts, weight
            utc_at = at if at.tzinfo is utc else at.astimezone(utc)
            ep_month = utc_at.year * 12 + utc_at.month - 1
        elif weight > ep_weight:
            ep_weight = weight

        if kind == meeting:
            meetings += 1
        if direction == out:
            has_out = True
            last_out = at
        elif direction == inbound:
            has_in = True
            last_in = at
            if kind == email and tp.role == sender:
                last_in_direct = at
        if (
            waiting
            and (direction == inbound or kind == meeting)
            and reach_out is not None
            and at > reach_out
        ):
            waiting = False
            if at - reach_out <= response:
                answered = at
        if touch_name := tp.name:
            name = touch_name
        last = tp
        last_at = at

    count = len(items) - repeats
    distinct = len(set(map(_identity if multi else _natural_key, items)))
    # With one address the natural key alone is the identity unless a stray counterpart
    # shares one; only then is the full (natural_key, counterpart) count needed.
    if distinct != count and (multi or count != len(set(map(_identity, items)))):
        return None
    organisation = contact_organisation(addresses, per_address, extra_free_mail)
    if last is None or first is None:
        return ContactState(key=key, addresses=addresses, organisation=organisation)
    # Close the last episode; warmth then decays from its start to the very last touch.
    last_ts = last_at.timestamp()
    warmth = warmth * 2.0 ** ((warmth_ts - ep_ts) / half_life) + ep_weight
    warmth *= 2.0 ** ((ep_ts - last_ts) / half_life)
    months.append(ep_month)
    # Episodes close in time order, so the counter's keys are already in month order.
    monthly = {_month_key(m): n for m, n in Counter(months).items()}
    return ContactState(
        key=key,
        addresses=addresses,
        name=name,
        organisation=organisation,
        touchpoints=count,
        episodes=gap_count + 1,
        meetings=meetings,
        first_touch=first.occurred_at,
        last_touch=last_at,
        last_kind=str(last.kind),
        last_direction=str(last.direction),
        last_subject=last.subject,
        last_out=last_out,
        last_in=last_in,
        last_in_direct=last_in_direct,
        two_way=(has_out and has_in) or meetings > 0,
        gap_count=gap_count,
        log_gap_sum=gap_sum,
        log_gap_sq=gap_sq,
        warmth_at_last=warmth,
        reach_out_at=reach_out,
        reach_out_answered_at=answered,
        monthly=monthly,
    )


def _tie(tp: Touchpoint, previous: Touchpoint | None) -> int:
    """-1 when `tp` may not follow `previous` (an earlier time, or a lower key at the same
    time), 0 when it repeats it, 1 when it may follow it at the same time."""
    if previous is None:  # `tp` is at the dawn of time itself
        prev_at, prev_nk, prev_cp = _DAWN, "", ""
    else:
        prev_at, prev_nk, prev_cp = previous.occurred_at, previous.natural_key, previous.counterpart
    at, nk, cp = tp.occurred_at, tp.natural_key, tp.counterpart
    if at < prev_at or nk < prev_nk or (nk == prev_nk and cp < prev_cp):
        return -1
    return 0 if nk == prev_nk and cp == prev_cp else 1


def _month_key(month: int) -> str:
    """ "YYYY-MM" of year * 12 + month - 1; cached, since formatting costs more than the fold."""
    found = _MONTH_KEYS.get(month)
    if found is None:
        found = _MONTH_KEYS[month] = f"{month // 12:04d}-{month % 12 + 1:02d}"
    return found


_MONTH_KEYS: dict[int, str] = {}
