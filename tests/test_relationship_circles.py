"""Circles: a former team going quiet together after a job change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keepwarm.relationship.circles import cooling_circles
from keepwarm.relationship.state import Assessment, ContactState

NOW = datetime(2025, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def person(
    key: str,
    status: str,
    last_touch: datetime,
    *,
    organisation: str | None = None,
    two_way: bool = True,
    tags: tuple[str, ...] = (),
) -> Assessment:
    state = ContactState(
        key=key,
        addresses=(key,),
        organisation=organisation,
        last_touch=last_touch,
        two_way=two_way,
    )
    return Assessment(
        state=state, now=NOW, status=status, tier="close", warmth=0.0, warmth_lost=0.0,
        silence_days=(NOW - last_touch).days, typical_gap_days=None, survival=None,
        overdue=0.0, tags=tags,
    )  # fmt: skip


def job_change() -> list[Assessment]:
    """Left oldco around 1 Sep 2024: four of five colleagues went quiet within three weeks."""
    left = datetime(2024, 9, 1, tzinfo=UTC)
    return [
        person("a@oldco.example", "cold", left - 10 * DAY, organisation="oldco.example"),
        person("b@oldco.example", "cold", left - 2 * DAY, organisation="oldco.example"),
        person("c@oldco.example", "cooling", left + 3 * DAY, organisation="oldco.example"),
        person("d@oldco.example", "cold", left + 10 * DAY, organisation="oldco.example"),
        person("e@oldco.example", "warm", NOW - 5 * DAY, organisation="oldco.example"),
        # One-way and muted people are not members.
        person("f@oldco.example", "cold", left, organisation="oldco.example", two_way=False),
        person("g@oldco.example", "muted", left, organisation="oldco.example"),
        # The new job is lively.
        *[
            person(f"n{i}@newco.example", "warm", NOW - i * DAY, organisation="newco.example")
            for i in range(4)
        ],
        # Free-mail friends have no organisation.
        person("pal@gmail.com", "cold", left, organisation=None),
    ]


def test_a_former_team_going_quiet_together_is_one_circle() -> None:
    circles = cooling_circles(job_change(), now=NOW)
    assert len(circles) == 1
    oldco = circles[0]
    assert (oldco.name, oldco.kind) == ("oldco.example", "organisation")
    assert oldco.members == tuple(f"{c}@oldco.example" for c in "abcde")
    assert oldco.cold == tuple(f"{c}@oldco.example" for c in "abcd")
    assert oldco.share == 4 / 5
    # The median of Aug 22, Aug 30, Sep 4 and Sep 11: midway between Aug 30 and Sep 4.
    assert oldco.since == datetime(2024, 9, 1, 12, tzinfo=UTC)


def test_quiet_spread_over_years_is_not_a_circle() -> None:
    spread = [
        person(
            f"p{i}@slow.example", "cold", NOW - (100 + 200 * i) * DAY, organisation="slow.example"
        )
        for i in range(4)
    ]
    assert cooling_circles(spread, now=NOW) == []
    # Three of the four fall within a 60-day window once the gaps are shortened.
    close = [
        person(
            f"p{i}@slow.example", "cold", NOW - (100 + 25 * i) * DAY, organisation="slow.example"
        )
        for i in range(3)
    ]
    found = cooling_circles([*close, spread[3]], now=NOW)
    assert [c.name for c in found] == ["slow.example"]


def test_below_min_share_or_min_members_is_not_a_circle() -> None:
    team = job_change()[:5]  # four quiet of five
    lively = [
        person(f"x{i}@oldco.example", "warm", NOW, organisation="oldco.example") for i in range(4)
    ]
    assert cooling_circles([*team, *lively], now=NOW) == []  # 4 of 9 < 0.5
    assert cooling_circles(team, now=NOW, min_members=5) == []


def test_an_old_story_is_not_news() -> None:
    assert cooling_circles(job_change(), now=NOW + 400 * DAY) == []


def test_tag_circles_from_assessments_or_a_mapping() -> None:
    left = datetime(2024, 11, 1, tzinfo=UTC)
    club = [
        person(f"m{i}@x{i}.example", "cold", left + i * DAY, tags=("climbing",)) for i in range(3)
    ]
    found = cooling_circles(club, now=NOW)
    assert [(c.name, c.kind, c.share) for c in found] == [("climbing", "tag", 1.0)]
    # The organisation circles of x0..x2 have one member each and stay out.
    mapped = cooling_circles(club, now=NOW, tags={a.state.key: ("band",) for a in club})
    assert [c.name for c in mapped] == ["band"]


def test_circles_sorted_by_size() -> None:
    left = datetime(2024, 10, 1, tzinfo=UTC)
    small = [
        person(f"s{i}@small.example", "cold", left, organisation="small.example") for i in range(3)
    ]
    big = [person(f"b{i}@big.example", "cold", left, organisation="big.example") for i in range(6)]
    assert [c.name for c in cooling_circles([*small, *big], now=NOW)] == [
        "big.example",
        "small.example",
    ]
