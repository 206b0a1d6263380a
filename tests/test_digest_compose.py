"""What the weekly digest says and in which order, from hand-built assessments (no fold)."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keepwarm.config.schema import DIGEST_SECTIONS, DigestConfig
from keepwarm.digest.compose import AccountHealth, Digest, compose, score
from keepwarm.relationship.state import Assessment, Circle, ContactState
from keepwarm.store.status import RECONNECTED, StatusChange

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # a Monday: ISO week 2026-W48
_STATE_FIELDS = {f.name for f in fields(ContactState)} - {"key", "addresses"}


def person(key: str, status: str = "cold", **values: Any) -> Assessment:
    """An assessment with plausible defaults; ContactState fields may be given directly."""
    state_values = {k: values.pop(k) for k in list(values) if k in _STATE_FIELDS}
    state_values.setdefault("last_touch", NOW - timedelta(days=60))
    state_values.setdefault("last_kind", "email")
    state = ContactState(key=key, addresses=(key,), **state_values)
    assessment: dict[str, Any] = {
        "tier": "close",
        "warmth": 0.5,
        "warmth_lost": 1.0,
        "silence_days": 60.0,
        "typical_gap_days": 20.0,
        "survival": 0.01,
        "overdue": 3.0,
    }
    assessment.update(values)
    return Assessment(state=state, now=NOW, status=status, **assessment)


def digest(*assessments: Assessment, **options: Any) -> Digest:
    config = options.pop("config", DigestConfig())
    return compose(assessments, now=options.pop("now", NOW), config=config, **options)


def keys(d: Digest, section: str) -> list[str]:
    found = d.section(section)
    assert found is not None, f"section {section} not shown"
    return [line.key for line in found.contacts]


def test_going_cold_ranks_by_warmth_lost_times_overdue_then_key() -> None:
    d = digest(
        person("a@x.org", warmth_lost=2.0, overdue=2.0),  # 4
        person("b@x.org", warmth_lost=1.0, overdue=5.0),  # 5
        person("c@x.org", warmth_lost=3.0, overdue=1.0),  # 3
        person("e@x.org", warmth_lost=1.0, overdue=3.0, status="cooling"),  # 3, tie: by key
    )
    assert keys(d, "going_cold") == ["b@x.org", "a@x.org", "c@x.org", "e@x.org"]
    going = d.section("going_cold")
    assert going is not None
    assert [line.score for line in going.contacts] == [5.0, 4.0, 3.0, 3.0]


def turned(key: str, old: str | None, new: str, days_ago: float) -> StatusChange:
    return StatusChange(key, NOW - timedelta(days=days_ago), old, new)


LAST_DIGEST = NOW - timedelta(days=7)


def test_people_newly_cooling_or_cold_lead_going_cold_and_are_marked() -> None:
    d = digest(
        person("long@x.org", warmth_lost=5.0),  # the highest score, cold for weeks
        person("new@x.org", warmth_lost=1.0),
        person("cool@x.org", status="cooling", warmth_lost=0.5),
        person("base@x.org", warmth_lost=2.0),
        changes=[
            turned("long@x.org", "cooling", "cold", 20),
            turned("new@x.org", "cooling", "cold", 4),
            turned("cool@x.org", "warm", "cooling", 2),
            turned("base@x.org", None, "cold", 1),  # the first status recorded: not news
        ],
        news_since=LAST_DIGEST,
    )
    assert keys(d, "going_cold") == ["new@x.org", "cool@x.org", "long@x.org", "base@x.org"]
    going = d.section("going_cold")
    assert going is not None
    marks = [(c.news, c.status_text, c.previous_status) for c in going.contacts]
    assert marks == [
        ("newly cold", "newly cold since 19 Nov", "cooling"),
        ("newly cooling", "newly cooling since 21 Nov", "warm"),
        (None, "cold", None),
        (None, "cold", None),
    ]
    assert going.contacts[0].changed_at == NOW - timedelta(days=4)
    assert going.news == 2
    assert d.headline == "4 people going cold (2 new)."
    assert d.news_since == LAST_DIGEST


def test_only_a_change_for_the_worse_since_the_last_digest_is_news() -> None:
    d = digest(
        person("better@x.org", status="cooling"),
        person("edge@x.org"),
        person("ahead@x.org"),
        person("gone@x.org", status="warm"),
        changes=[
            turned("better@x.org", "cold", "cooling", 1),  # a config change eased it
            turned("edge@x.org", "warm", "cold", 7),  # the previous digest already said so
            turned("ahead@x.org", "warm", "cold", -1),  # recorded after this digest's moment
            turned("gone@x.org", "warm", "cold", 3),
            turned("gone@x.org", "cold", "warm", 1),  # and warm again: not in going cold
        ],
        news_since=LAST_DIGEST,
    )
    going = d.section("going_cold")
    assert going is not None
    assert [c.news for c in going.contacts] == [None, None, None]
    assert going.news == 0
    assert d.headline == "3 people going cold."


def test_news_keeps_its_place_under_max_items() -> None:
    people = [person(f"p{i}@x.org", warmth_lost=float(10 - i)) for i in range(5)]
    d = digest(
        *people,
        changes=[turned("p4@x.org", "cooling", "cold", 2)],
        config=DigestConfig(max_items=2),
    )
    assert keys(d, "going_cold") == ["p4@x.org", "p0@x.org"]
    assert d.headline == "5 people going cold (1 new)."


def test_a_reconnection_since_the_last_digest_is_marked_and_first() -> None:
    d = digest(
        person("newer@x.org", status="warm", reconnected_at=NOW - timedelta(days=2)),
        person("fresh@x.org", status="warm", reconnected_at=NOW - timedelta(days=5)),
        changes=[
            turned("fresh@x.org", "warm", RECONNECTED, 4),
            turned("newer@x.org", None, RECONNECTED, 1),  # seen at the first check: baseline
        ],
        news_since=LAST_DIGEST,
    )
    assert keys(d, "reconnected") == ["fresh@x.org", "newer@x.org"]
    back = d.section("reconnected")
    assert back is not None
    fresh, newer = back.contacts
    assert (fresh.news, fresh.status_text, fresh.previous_status) == (
        "newly reconnected",
        "warm, newly reconnected",
        None,
    )
    assert fresh.detail == "They answered on 18 Nov."
    assert (newer.news, newer.status_text) == (None, "warm")
    assert d.headline == "2 reconnected (1 new)."


def test_unknown_rhythm_ranks_by_warmth_lost_alone() -> None:
    # overdue 0 means "no rhythm learned"; such a contact is cold by the tier limit, so due.
    unknown = person("u@x.org", warmth_lost=3.0, overdue=0.0, typical_gap_days=None)
    assert score(unknown) == 3.0
    d = digest(unknown, person("k@x.org", warmth_lost=2.0, overdue=1.2))
    assert keys(d, "going_cold") == ["u@x.org", "k@x.org"]


def test_max_items_caps_going_cold_and_the_headline_counts_everyone() -> None:
    people = [person(f"p{i}@x.org", warmth_lost=float(i)) for i in range(5)]
    d = digest(*people, config=DigestConfig(max_items=3))
    assert keys(d, "going_cold") == ["p4@x.org", "p3@x.org", "p2@x.org"]
    going = d.section("going_cold")
    assert going is not None
    assert going.omitted == 2
    assert d.headline == "5 people going cold."


def test_only_configured_sections_are_composed() -> None:
    owed = person("o@x.org", owed_reply_since=NOW - timedelta(days=5))
    d = digest(owed, config=DigestConfig(sections=("owed_replies",)))
    assert [s.key for s in d.sections] == ["owed_replies"]
    assert d.section("going_cold") is None
    assert keys(d, "owed_replies") == ["o@x.org"]


def test_sections_come_in_the_documented_order_whatever_the_config_order() -> None:
    d = digest(config=DigestConfig(sections=("sync_health", "going_cold")))
    assert [s.key for s in d.sections] == ["going_cold", "sync_health"]


def test_subjects_are_hidden_unless_the_config_shows_them() -> None:
    who = person("s@x.org", last_subject="Salary talk")
    hidden = digest(who).section("going_cold")
    shown = digest(who, config=DigestConfig(subjects=True)).section("going_cold")
    assert hidden is not None
    assert hidden.contacts[0].subject is None
    assert shown is not None
    assert shown.contacts[0].subject == "Salary talk"


@pytest.mark.parametrize("status", ["muted", "dormant"])
def test_muted_and_dormant_people_are_never_listed(status: str) -> None:
    soon = NOW + timedelta(days=3)
    quiet = person(
        "q@x.org",
        status=status,
        owed_reply_since=NOW - timedelta(days=9),
        reconnected_at=NOW - timedelta(days=1),
        next_meeting=soon,
    )
    d = digest(quiet)
    assert all(s.size == 0 for s in d.sections)
    assert d.empty


def test_snoozed_people_are_never_listed() -> None:
    snoozed = person("z@x.org", snoozed_until=NOW + timedelta(days=10), owed_reply_since=NOW)
    expired = person("y@x.org", snoozed_until=NOW - timedelta(days=1))
    d = digest(snoozed, expired)
    assert keys(d, "going_cold") == ["y@x.org"]
    assert keys(d, "owed_replies") == []


def test_a_planned_meeting_or_an_open_reach_out_keeps_someone_out_of_going_cold() -> None:
    meeting = person("m@x.org", next_meeting=NOW + timedelta(days=30))
    reaching = person("r@x.org", reaching_out_since=NOW - timedelta(days=4))
    planned_only = person("p@x.org")  # the caller knows of a meeting the assessment predates
    plain = person("c@x.org")
    d = digest(meeting, reaching, planned_only, plain, planned={"p@x.org": NOW + timedelta(days=2)})
    assert keys(d, "going_cold") == ["c@x.org"]
    assert keys(d, "upcoming") == ["p@x.org"]  # m@ meets in 30 days: not yet "coming up"


def test_upcoming_lists_cooling_or_cold_people_met_within_two_weeks_soonest_first() -> None:
    d = digest(
        person("late@x.org", status="cooling", next_meeting=NOW + timedelta(days=13)),
        person("soon@x.org", next_meeting=NOW + timedelta(days=2)),
        person("far@x.org", next_meeting=NOW + timedelta(days=15)),
        person("warm@x.org", status="warm", next_meeting=NOW + timedelta(days=1)),
        person("past@x.org", next_meeting=NOW - timedelta(days=1)),  # already happened
    )
    assert keys(d, "upcoming") == ["soon@x.org", "late@x.org"]
    upcoming = d.section("upcoming")
    assert upcoming is not None
    assert upcoming.contacts[0].detail == "You meet on 25 Nov."


def test_owed_replies_oldest_first_with_how_long_they_waited() -> None:
    d = digest(
        person("new@x.org", status="warm", owed_reply_since=NOW - timedelta(days=4)),
        person("old@x.org", status="warm", owed_reply_since=datetime(2026, 11, 3, 9, tzinfo=UTC)),
    )
    assert keys(d, "owed_replies") == ["old@x.org", "new@x.org"]
    owed = d.section("owed_replies")
    assert owed is not None
    assert owed.contacts[0].detail == "Their message of 3 Nov has waited 3 weeks."
    assert owed.contacts[0].suggestion == "Reply to their message from 3 Nov"
    assert d.headline == "2 replies owed."


def test_reconnected_people_are_celebrated_newest_first() -> None:
    d = digest(
        person("one@x.org", status="warm", reconnected_at=NOW - timedelta(days=6)),
        person("two@x.org", status="warm", reconnected_at=NOW - timedelta(days=1)),
    )
    assert keys(d, "reconnected") == ["two@x.org", "one@x.org"]
    section = d.section("reconnected")
    assert section is not None
    assert section.contacts[0].detail == "They answered on 22 Nov."
    assert keys(d, "going_cold") == []


def test_an_empty_week_says_so_in_one_line() -> None:
    d = digest(person("w@x.org", status="warm"), person("n@x.org", status="new"))
    assert d.empty
    assert d.headline == "All warm this week: nobody is going cold."
    assert d.period == "2026-W48"


def test_a_failing_account_is_news_even_when_everyone_is_warm() -> None:
    accounts = [
        AccountHealth("home", "maildir", last_sync=NOW),
        AccountHealth(
            "work",
            "imap",
            error_kind="auth",
            error="authentication failed",
            fix="keepwarm auth work",
            last_sync=datetime(2026, 11, 20, 7, 30, tzinfo=UTC),
        ),
        AccountHealth("cal", "ics", error_kind="transient", error="timed out"),
    ]
    d = digest(accounts=accounts)
    assert not d.empty
    health = d.section("sync_health")
    assert health is not None
    assert [(a.name, a.fix) for a in health.accounts] == [
        ("cal", "keepwarm status"),  # no known fix: status shows the whole error
        ("work", "keepwarm auth work"),
    ]
    assert health.accounts[1].last_sync_text == "last synced 20 Nov 07:30"
    assert health.accounts[0].last_sync_text == "never synced"
    assert d.headline == "2 accounts need attention."


def test_circles_say_how_many_of_whom_went_quiet_since_when() -> None:
    members = tuple(f"m{i}@oldco.example" for i in range(9))
    circle = Circle(
        name="oldco.example",
        kind="organisation",
        members=members,
        cold=members[:7],
        share=7 / 9,
        since=datetime(2026, 3, 14, tzinfo=UTC),
    )
    ana = person("m0@oldco.example", name="Ana", meetings=4, last_kind="meeting", pinned=True)
    bo = person("m1@oldco.example", name="Bo")
    friend = person("old.friend@example.net", name="Old Friend")
    d = digest(ana, bo, friend, circles=[circle])
    circles = d.section("circles")
    assert circles is not None
    line = circles.circles[0]
    assert line.text == "7 of 9 people at oldco.example went quiet since March"
    assert line.names[0] == "Ana"
    assert len(line.names) == 7
    # The circle is said once, as a group: its unpinned members leave the person list, so the
    # friend drifting away is not crowded out; pinned Ana keeps her own line, which asks about
    # the place rather than suggesting another coffee.
    assert keys(d, "going_cold") == ["m0@oldco.example", "old.friend@example.net"]
    going = d.section("going_cold")
    assert going is not None
    assert going.contacts[0].suggestion == "Ask how things are at oldco.example"


def test_a_tag_circle_from_last_year_names_the_year() -> None:
    circle = Circle("climbing", "tag", ("a@x", "b@x", "c@x"), ("a@x", "b@x"), 2 / 3,
                    datetime(2025, 6, 1, tzinfo=UTC))  # fmt: skip
    circles = digest(circles=[circle]).section("circles")
    assert circles is not None
    assert circles.circles[0].text == "2 of 3 people tagged climbing went quiet since June 2025"
    assert circles.circles[0].suggestion is None


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"owed_reply_since": datetime(2026, 11, 3, 18, tzinfo=UTC), "meetings": 2},
            "Reply to their message from 3 Nov",
        ),
        (
            {"meetings": 3, "last_kind": "meeting", "last_touch": datetime(2026, 6, 9, tzinfo=UTC)},
            "Suggest a coffee or a call — you last met in June",
        ),
        (
            {"meetings": 2, "last_kind": "email"},
            "Suggest a coffee or a call — you have met 2 times",
        ),
        ({"silence_days": 200.0}, "A short 'thinking of you' note"),
        ({"silence_days": 40.0}, "A quick hello: ask what they are working on"),
    ],
)
def test_the_suggested_touch_fits_the_case(values: dict[str, Any], expected: str) -> None:
    going = digest(person("s@x.org", **values)).section("going_cold")
    assert going is not None
    assert going.contacts[0].suggestion == expected


def test_each_line_carries_the_snooze_and_ignore_commands() -> None:
    going = digest(person("ana@x.org"), person("o'brien@x.org")).section("going_cold")
    assert going is not None
    by_key = {line.key: line for line in going.contacts}
    assert by_key["ana@x.org"].snooze == "keepwarm snooze ana@x.org 30d"
    assert by_key["ana@x.org"].ignore == "keepwarm ignore ana@x.org"
    # Pasted into a shell, the quote in the address must not open a string.
    assert by_key["o'brien@x.org"].ignore == "keepwarm ignore 'o'\"'\"'brien@x.org'"


def test_each_line_explains_rhythm_last_touch_and_reasons() -> None:
    who = person(
        "r@x.org",
        name="Rae",
        organisation="acme.example",
        typical_gap_days=21.0,
        silence_days=63.0,
        last_touch=datetime(2026, 9, 21, 10, tzinfo=UTC),
        last_kind="meeting",
        reasons=("usually every ~3 weeks; 9 weeks now", "a gap this long happens 1 time in 40"),
    )
    going = digest(who).section("going_cold")
    assert going is not None
    line = going.contacts[0]
    assert (line.label, line.address, line.organisation) == ("Rae", "r@x.org", "acme.example")
    assert line.rhythm == "usually every ~3 weeks; 9 weeks now"
    assert (line.last_touch_text, line.last_kind) == ("21 Sep", "meeting")
    assert line.reasons == who.reasons
    assert line.why == ("a gap this long happens 1 time in 40",)  # the rhythm is not repeated


def test_sparkline_counts_the_twelve_months_up_to_now_oldest_first() -> None:
    monthly = {"2025-11": 9, "2025-12": 2, "2026-06": 1, "2026-11": 4}
    going = digest(person("s@x.org", monthly=monthly)).section("going_cold")
    assert going is not None
    assert going.contacts[0].sparkline == (2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 4)


def test_the_period_is_the_iso_week_in_the_digest_time_zone() -> None:
    sunday_night_utc = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    assert digest(now=sunday_night_utc).period == "2026-W47"
    auckland = DigestConfig(timezone="Pacific/Auckland")  # already Monday morning there
    assert digest(now=sunday_night_utc, config=auckland).period == "2026-W48"
    assert digest(now=datetime(2027, 1, 1, 12, tzinfo=UTC)).period == "2026-W53"


def test_dates_are_shown_in_the_digest_time_zone() -> None:
    late = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)  # already 3 Nov in Berlin
    config = DigestConfig(timezone="Europe/Berlin")
    owed = digest(person("b@x.org", owed_reply_since=late), config=config).section("owed_replies")
    assert owed is not None
    assert owed.contacts[0].suggestion == "Reply to their message from 3 Nov"


def test_greeting_uses_the_owner_name() -> None:
    assert digest(owner_name="Sam").greeting == "Hi Sam,"
    assert digest().greeting == "Hi,"


def test_every_section_is_composed_by_default() -> None:
    assert [s.key for s in digest().sections] == list(DIGEST_SECTIONS)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        compose([], now=datetime(2026, 11, 23), config=DigestConfig())
