"""The fold: touchpoints -> ContactState, with expected values worked out from the model."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keepwarm.config.schema import ModelConfig, WeightsConfig
from keepwarm.model import Direction, Kind, Role, Touchpoint
from keepwarm.relationship.fold import fold
from keepwarm.relationship.state import ContactState

T0 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
ANN = "ann@example.org"
MODEL = ModelConfig()


def tp(
    days: float,
    key: str,
    kind: Kind = Kind.EMAIL,
    direction: Direction = Direction.OUT,
    role: Role = Role.TO,
    *,
    participants: int = 2,
    counterpart: str = ANN,
    name: str | None = None,
    subject: str | None = None,
) -> Touchpoint:
    return Touchpoint(
        natural_key=key,
        counterpart=counterpart,
        occurred_at=T0 + timedelta(days=days),
        kind=kind,
        direction=direction,
        role=role,
        participants=participants,
        account="home",
        source="maildir",
        name=name,
        subject=subject,
    )


def out(
    days: float, key: str, *, counterpart: str = ANN, name: str | None = None,
    subject: str | None = None,
) -> Touchpoint:  # fmt: skip
    """An email the owner sent to the counterpart directly."""
    return tp(days, key, counterpart=counterpart, name=name, subject=subject)


def inn(days: float, key: str, *, counterpart: str = ANN, name: str | None = None) -> Touchpoint:
    """An email the counterpart sent to the owner."""
    return tp(days, key, Kind.EMAIL, Direction.IN, Role.FROM, counterpart=counterpart, name=name)


def run(
    touchpoints: list[Touchpoint], model: ModelConfig = MODEL, tier: str = "close"
) -> ContactState:
    return fold(ANN, (ANN,), touchpoints, model, tier)


def test_warmth_is_the_decayed_sum_of_episode_weights() -> None:
    state = run(
        [
            out(0, "m1"),  # 1.0, 40 days before the last touch
            inn(10, "m2"),  # 0.7, 30 days before
            tp(40, "e1", Kind.MEETING, Direction.OUT, Role.ATTENDEE),  # 1:1 meeting, 3.0
        ]
    )
    expected = 1.0 * 2 ** (-40 / 90) + 0.7 * 2 ** (-30 / 90) + 3.0
    assert state.warmth_at_last == pytest.approx(expected, rel=1e-12)
    assert (state.touchpoints, state.episodes, state.meetings) == (3, 3, 1)
    assert state.two_way
    assert state.gap_count == 2
    assert state.log_gap_sum == pytest.approx(math.log(10) + math.log(30))
    assert state.log_gap_sq == pytest.approx(math.log(10) ** 2 + math.log(30) ** 2)
    assert state.first_touch == T0
    assert state.last_touch == T0 + timedelta(days=40)
    assert (state.last_kind, state.last_direction) == ("meeting", "out")


def test_a_burst_is_one_episode_timed_at_its_first_touch_and_weighted_by_its_heaviest() -> None:
    hour = 1 / 24
    state = run(
        [
            inn(0, "a"),  # 0.7
            out(20 * hour, "b"),  # 1.0, 20 h later: same episode
            inn(40 * hour, "c"),  # 20 h after that: chained into the same episode
            inn(10, "d"),  # a new episode, 10 days after the first one started
        ]
    )
    assert state.episodes == 2
    assert state.touchpoints == 4
    # Episode one weighs 1.0 and is dated day 0; episode two weighs 0.7 at day 10.
    assert state.warmth_at_last == pytest.approx(1.0 * 2 ** (-10 / 90) + 0.7)
    assert state.gap_count == 1
    assert state.log_gap_sum == pytest.approx(math.log(10))


def test_warmth_decays_from_the_episode_start_to_the_last_touch() -> None:
    state = run([out(0, "a"), inn(0.5, "b")])
    assert state.episodes == 1
    assert state.warmth_at_last == pytest.approx(1.0 * 2 ** (-0.5 / 90))


@pytest.mark.parametrize(
    ("kind", "direction", "role", "participants", "expected"),
    [
        (Kind.EMAIL, Direction.OUT, Role.TO, 2, 1.1),
        (Kind.EMAIL, Direction.IN, Role.FROM, 2, 0.7),
        (Kind.EMAIL, Direction.OUT, Role.CC, 3, 0.3),
        (Kind.EMAIL, Direction.IN, Role.CC, 3, 0.3),
        (Kind.MEETING, Direction.OUT, Role.ATTENDEE, 2, 3.0),
        (Kind.MEETING, Direction.IN, Role.ORGANIZER, 5, 1.5),
        (Kind.MEETING, Direction.MUTUAL, Role.ATTENDEE, 6, 0.2),
        (Kind.MANUAL, Direction.OUT, Role.TO, 2, 1.1),
        (Kind.IMPORT, Direction.IN, Role.FROM, 2, 1.1),
    ],
)
def test_weights_by_kind_and_role(
    kind: Kind, direction: Direction, role: Role, participants: int, expected: float
) -> None:
    weights = WeightsConfig(
        out_direct=1.1, in_direct=0.7, cc=0.3, meeting_1to1=3.0, meeting_small=1.5,
        meeting_large=0.2, small_meeting=5,
    )  # fmt: skip
    model = ModelConfig(weights=weights)
    state = run([tp(0, "x", kind, direction, role, participants=participants)], model)
    assert state.warmth_at_last == pytest.approx(expected)


def test_last_touches_name_months_and_organisation() -> None:
    state = run(
        [
            inn(0, "a", name="Ann"),
            out(1, "b", subject="lunch?"),
            inn(5, "c", name="Ann Lee"),
            tp(6, "d", Kind.EMAIL, Direction.IN, Role.CC),
            out(40, "e", name="", subject="hello"),
        ]
    )
    assert state.name == "Ann Lee"  # the latest non-empty display name
    assert state.last_in_direct == T0 + timedelta(days=5)  # the Cc at day 6 is not direct
    assert state.last_in == T0 + timedelta(days=6)
    assert state.last_out == T0 + timedelta(days=40)
    assert state.last_subject == "hello"
    assert state.organisation == "example.org"
    # Touches exactly one day apart are separate episodes: Jan 1, 2, 6, 7 and Feb 10.
    assert state.episodes == 5
    assert state.monthly == {"2024-01": 4, "2024-02": 1}


def test_touches_exactly_episode_gap_apart_are_separate_episodes() -> None:
    # "Less than episode_gap apart" forms one episode; exactly one day apart does not.
    state = run([out(0, "a"), inn(1, "b"), inn(1.5, "c")])
    assert state.episodes == 2


def test_one_way_is_not_two_way_but_a_meeting_is() -> None:
    assert not run([out(0, "a"), out(3, "b")]).two_way
    assert not run([inn(0, "a")]).two_way
    assert run([out(0, "a"), inn(3, "b")]).two_way
    assert run([tp(0, "e", Kind.MEETING, Direction.IN, Role.ORGANIZER, participants=4)]).two_way


def test_organisation_follows_most_touchpoints_and_skips_free_mail() -> None:
    home, old, new = "ann@gmail.com", "ann@oldco.example", "ann@newco.example"
    touches = [
        out(0, "a", counterpart=old),
        out(10, "b", counterpart=new),
        inn(11, "c", counterpart=new),
        out(12, "d", counterpart=home),
        out(13, "e", counterpart=home),
        out(14, "f", counterpart=home),
    ]
    state = fold(old, (old, new, home), touches, MODEL, "close")
    assert state.organisation == "newco.example"
    assert fold(home, (home,), [], MODEL, "close").organisation is None
    extra = fold(old, (old,), [], MODEL, "close", extra_free_mail=["oldco.example"])
    assert extra.organisation is None


def test_duplicates_count_once_keeping_the_earliest() -> None:
    a = out(0, "m1")
    again_later = replace(a, occurred_at=T0 + timedelta(days=3))
    state = run([a, inn(2, "m2"), a, again_later])
    assert state.touchpoints == 2
    assert state.last_touch == T0 + timedelta(days=2)
    # The same message to two addresses of one person is two touchpoints.
    other = "ann@home.example"
    both = fold(ANN, (ANN, other), [a, replace(a, counterpart=other)], MODEL, "close")
    assert both.touchpoints == 2
    assert both.episodes == 1


def test_empty_history() -> None:
    state = run([])
    assert state.touchpoints == 0
    assert state.last_touch is None
    assert state.monthly == {}
    assert state.organisation == "example.org"


def weekly_history(weeks: int) -> list[Touchpoint]:
    """A two-way contact every 7 days, alternating who writes."""
    return [(out if i % 2 else inn)(7 * i, f"w{i}") for i in range(weeks)]


def close_rhythm_survival(gaps: list[float], silence: float) -> float:
    """Survival under the documented posterior (tier close: typical 30, k 4, s0 0.8)."""
    n, k, m0, s0 = len(gaps), 4.0, math.log(30.0), 0.8
    logs = [math.log(g) for g in gaps]
    mu = (sum(logs) + k * m0) / (n + k)
    ss = sum(x * x for x in logs) - sum(logs) ** 2 / n
    sigma = math.sqrt((ss + k * s0 * s0) / (n + k))
    return 0.5 * math.erfc((math.log(silence) - mu) / sigma / math.sqrt(2))


def test_an_outbound_after_a_cold_silence_is_a_reach_out_and_a_reply_answers_it() -> None:
    history = weekly_history(10)  # days 0..63, gaps of 7 days
    reach = out(63 + 40, "r")  # 40 days of silence
    assert close_rhythm_survival([7.0] * 9, 40.0) < MODEL.cooling_below
    state = run([*history, reach, inn(63 + 45, "reply")])
    assert state.reach_out_at == reach.occurred_at
    assert state.reach_out_answered_at == T0 + timedelta(days=108)


def test_a_late_reply_does_not_answer_a_reach_out() -> None:
    state = run([*weekly_history(10), out(103, "r"), inn(103 + 15, "late")])
    assert state.reach_out_at == T0 + timedelta(days=103)
    assert state.reach_out_answered_at is None


def test_no_reach_out_after_a_usual_gap_or_one_way_history() -> None:
    assert close_rhythm_survival([7.0] * 9, 9.0) > MODEL.cooling_below
    assert run([*weekly_history(10), out(63 + 9, "r")]).reach_out_at is None
    one_way = [out(7 * i, f"o{i}") for i in range(10)]
    assert run([*one_way, out(63 + 200, "r")]).reach_out_at is None


def test_no_reach_out_before_min_days() -> None:
    daily = [(out if i % 2 else inn)(i, f"d{i}") for i in range(60)]  # 59 gaps of 1 day
    # Tier inner: typical 10. mu = (59·ln 1 + 4·ln 10) / 63, sigma² = 4·0.8² / 63.
    mu, sigma = 4 * math.log(10) / 63, math.sqrt(4 * 0.64 / 63)
    survival = 0.5 * math.erfc((math.log(13) - mu) / sigma / math.sqrt(2))
    assert survival < MODEL.cold_below  # 13 days would be very rare ...
    assert run([*daily, out(59 + 13, "r")], tier="inner").reach_out_at is None  # ... but < 14
    assert run([*daily, out(59 + 14, "r")], tier="inner").reach_out_at is not None


def test_a_new_reach_out_resets_the_answer() -> None:
    first = [*weekly_history(10), out(103, "r1"), inn(104, "a1")]
    # After day 104, 200 days of silence is beyond tier close's max_days (120): cold.
    state = run([*first, out(304, "r2")])
    assert state.reach_out_at == T0 + timedelta(days=304)
    assert state.reach_out_answered_at is None


identities = st.lists(
    st.tuples(
        st.sampled_from(["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"]),
        st.sampled_from([ANN, "ann@home.example"]),
    ),
    unique=True,
    max_size=8,
)


@st.composite
def touchpoint_sets(draw: st.DrawFn) -> list[Touchpoint]:
    found = []
    for key, counterpart in draw(identities):
        found.append(
            tp(
                # A few distinct instants so ties and bursts happen.
                draw(st.sampled_from([0, 0.25, 1, 3, 20, 45, 46, 200])),
                key,
                draw(st.sampled_from(list(Kind))),
                draw(st.sampled_from(list(Direction))),
                draw(st.sampled_from(list(Role))),
                participants=draw(st.integers(2, 9)),
                counterpart=counterpart,
                name=draw(st.sampled_from([None, "", "Ann", "A. Lee"])),
                subject=draw(st.sampled_from([None, "hi"])),
            )
        )
    return found


@settings(max_examples=300, deadline=None)
@given(touchpoint_sets(), st.data())
def test_any_order_and_duplicates_fold_the_same(
    touches: list[Touchpoint], data: st.DataObject
) -> None:
    addresses = (ANN, "ann@home.example")
    reference = fold(
        ANN,
        addresses,
        sorted(touches, key=lambda t: (t.occurred_at, t.natural_key)),
        MODEL,
        "inner",
    )
    extra = data.draw(st.lists(st.sampled_from(touches), max_size=5)) if touches else []
    shuffled = data.draw(st.permutations([*touches, *extra]))
    assert fold(ANN, addresses, iter(shuffled), MODEL, "inner") == reference
    assert reference.touchpoints == len(touches)


def test_state_survives_the_cache_round_trip() -> None:
    state = run([*weekly_history(10), out(103, "r", name="Ann"), inn(104, "a")])
    assert ContactState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_the_tier_prior_decides_past_reach_outs() -> None:
    touches = [inn(0, "a"), out(1, "b"), out(51, "r")]  # one gap of 1 day, then 50 days
    # n = 1, ln 1 = 0: mu = 4·ln(typical) / 5, sigma² = 4·0.8² / 5.
    sigma = math.sqrt(4 * 0.64 / 5)
    for typical, rare in ((10.0, True), (90.0, False)):  # tiers inner and network
        mu = 4 * math.log(typical) / 5
        p = 0.5 * math.erfc((math.log(50) - mu) / sigma / math.sqrt(2))
        assert (p < MODEL.cooling_below) is rare
    for _ in range(2):  # alternate tiers: prepared parameters must follow the tier
        assert run(touches, tier="inner").reach_out_at == T0 + timedelta(days=51)
        assert run(touches, tier="network").reach_out_at is None
