"""Status changes recorded as time passes and mail arrives, through the real store and fold."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from keepwarm.config.schema import Config
from keepwarm.daemon import project
from keepwarm.daemon.report import build_digest
from keepwarm.daemon.status_check import RECONNECTED, record_status_changes
from keepwarm.model import Direction, Kind, Role, Touchpoint
from keepwarm.store import Store
from keepwarm.store.status import StatusLog

CONFIG = Config()
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)
ANN = "ann@friends.example"
BO = "bo@friends.example"


def _touch(who: str, at: datetime, direction: Direction) -> Touchpoint:
    role = Role.TO if direction is Direction.OUT else Role.FROM
    key = f"mid:{who}-{at.isoformat()}-{direction.value}"
    return Touchpoint(key, who, at, Kind.EMAIL, direction, role, 2, "home", "test")


def weekly(who: str, weeks: int, start: datetime = START) -> list[Touchpoint]:
    """An exchange every week (their mail, your answer an hour later) from `start` on."""
    out = []
    for week in range(weeks):
        at = start + week * 7 * DAY
        out += [_touch(who, at, Direction.IN), _touch(who, at + timedelta(hours=1), Direction.OUT)]
    return out


def append(store: Store, touchpoints: Iterable[Touchpoint], now: datetime) -> None:
    """What `keepwarm sync` does with a batch: store it, then project the touched contacts."""
    new = store.ingest("home", list(touchpoints), [], [], None, now=now)
    project.update(store, CONFIG, {t.counterpart for t in new})


def statuses_at(store: Store, now: datetime) -> dict[str, str]:
    return {a.state.key: a.status for a in project.assessments(store, CONFIG, now)}


def test_a_contact_drifting_apart_records_warm_cooling_cold_once_each(store: Store) -> None:
    history = weekly(ANN, 12)
    last = history[-1].occurred_at
    append(store, history, last)
    seen = []
    # A check every twelve hours for ten weeks, with nothing new from Ann.
    for step in range(2 * 70):
        now = last + step * timedelta(hours=12)
        seen.append(statuses_at(store, now)[ANN])
        record_status_changes(store, CONFIG, now)
    assert seen[0] == "warm"
    assert seen[-1] == "cold"
    events = StatusLog.of(store).history([ANN])
    assert [(e.old, e.new) for e in events] == [
        (None, "warm"),
        ("warm", "cooling"),
        ("cooling", "cold"),
    ]
    # Each was recorded at the first check that saw it.
    first_cooling = last + seen.index("cooling") * timedelta(hours=12)
    first_cold = last + seen.index("cold") * timedelta(hours=12)
    assert [e.at for e in events[1:]] == [first_cooling, first_cold]


def test_the_first_check_is_a_baseline_and_a_second_at_the_same_moment_records_nothing(
    store: Store,
) -> None:
    append(store, weekly(ANN, 12) + weekly(BO, 3), START)
    now = START + 200 * DAY  # both long cold
    first = record_status_changes(store, CONFIG, now)
    assert {(e.contact, e.old, e.new) for e in first} == {(ANN, None, "cold"), (BO, None, "cold")}
    assert record_status_changes(store, CONFIG, now) == []
    assert len(StatusLog.of(store).changes(now - DAY)) == 2
    # Nobody *turned* cold this week: the digest marks no one, though both are listed.
    digest = build_digest(store, CONFIG, now)
    going = digest.section("going_cold")
    assert going is not None
    assert {line.key for line in going.contacts} == {ANN, BO}
    assert [line.news for line in going.contacts] == [None, None]
    assert going.news == 0


def test_a_reply_to_a_reach_out_records_reconnected(store: Store) -> None:
    history = weekly(BO, 12)
    last = history[-1].occurred_at
    append(store, history, last)
    record_status_changes(store, CONFIG, last + DAY)
    quiet = last + 60 * DAY
    assert [(e.old, e.new) for e in record_status_changes(store, CONFIG, quiet)] == [
        ("warm", "cold")
    ]
    # You write to Bo while Bo is cold (a reach-out): a touch, so Bo is warm again.
    append(store, [_touch(BO, quiet, Direction.OUT)], quiet)
    wrote = quiet + timedelta(hours=1)
    assert [(e.old, e.new) for e in record_status_changes(store, CONFIG, wrote)] == [
        ("cold", "warm")
    ]
    # Bo answers two days later.
    answer = quiet + 2 * DAY
    append(store, [_touch(BO, answer, Direction.IN)], answer)
    check = answer + timedelta(hours=1)
    [event] = record_status_changes(store, CONFIG, check)
    assert (event.contact, event.at, event.old, event.new) == (BO, check, "warm", RECONNECTED)
    assert record_status_changes(store, CONFIG, check) == []
    assert record_status_changes(store, CONFIG, check + 3 * DAY) == []

    digest = build_digest(store, CONFIG, check + DAY)
    back = digest.section("reconnected")
    assert back is not None
    [line] = back.contacts
    assert (line.key, line.news, line.changed_at) == (BO, "newly reconnected", check)


def test_the_digest_marks_who_turned_cold_since_the_previous_digest(store: Store) -> None:
    # Ann's exchanges end on 18 May, Bo's on 8 Jun; the digest is due Mondays 08:00 UTC.
    append(store, weekly(ANN, 12) + weekly(BO, 12, datetime(2026, 3, 23, 9, tzinfo=UTC)), START)
    june = datetime(2026, 6, 20, 10, 0, tzinfo=UTC)
    record_status_changes(store, CONFIG, datetime(2026, 6, 9, 10, 0, tzinfo=UTC))  # baseline
    assert statuses_at(store, june) == {ANN: "cold", BO: "warm"}
    record_status_changes(store, CONFIG, june)  # Ann turned cold weeks before the digest
    thursday = datetime(2026, 7, 9, 10, 0, tzinfo=UTC)
    assert statuses_at(store, thursday)[BO] == "cold"
    record_status_changes(store, CONFIG, thursday)  # Bo turned cold this week
    monday = datetime(2026, 7, 13, 8, 0, tzinfo=UTC)

    digest = build_digest(store, CONFIG, monday)
    assert digest.news_since == monday - 7 * DAY
    going = digest.section("going_cold")
    assert going is not None
    by_key = {line.key: line for line in going.contacts}
    assert by_key[BO].news == "newly cold"
    assert by_key[BO].status_text == "newly cold since 9 Jul"
    assert by_key[ANN].news is None
    assert going.contacts[0].key == BO  # news first
    assert digest.headline.startswith("2 people going cold (1 new)")
    # A week later it is old news.
    later = build_digest(store, CONFIG, monday + 7 * DAY)
    going = later.section("going_cold")
    assert going is not None
    assert all(line.news is None for line in going.contacts)


def test_a_naive_now_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        record_status_changes(store, CONFIG, datetime(2026, 1, 1))
