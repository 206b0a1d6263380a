"""The demo calendar is a well-formed ICS file with the shapes real calendar exports have."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import icalendar
import pytest
import recurring_ical_events

from keepwarm.demo import DemoData, generate

NOW = datetime(2025, 11, 3, 8, 15, tzinfo=UTC)  # a week after the clocks went back


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    return generate(tmp_path_factory.mktemp("demo"), now=NOW, seed=3)


@pytest.fixture(scope="module")
def calendar(demo: DemoData) -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(demo.ics.read_bytes())


@pytest.fixture(scope="module")
def events(calendar: icalendar.Calendar) -> list[Any]:
    # Any: icalendar types a property lookup as a union of every value type.
    return list(calendar.walk("VEVENT"))


def _emails(values: Any) -> list[str]:
    items = values if isinstance(values, list) else [values]
    return [str(v).removeprefix("mailto:") for v in items]


def test_parses_with_a_london_timezone(calendar: icalendar.Calendar) -> None:
    zones = calendar.walk("VTIMEZONE")
    assert [str(z["TZID"]) for z in zones] == ["Europe/London"]
    assert {c.name for c in zones[0].subcomponents} == {"STANDARD", "DAYLIGHT"}


def test_every_event_has_people_as_mailto_with_partstat(demo: DemoData, events: list[Any]) -> None:
    for event in events:
        assert event["UID"]
        assert event["DTSTAMP"].dt == NOW.replace(microsecond=0)
        assert str(event["ORGANIZER"]).startswith("mailto:")
        attendees = event.get("ATTENDEE")
        assert attendees is not None
        for attendee in attendees if isinstance(attendees, list) else [attendees]:
            assert str(attendee).startswith("mailto:")
            assert attendee.params["PARTSTAT"] in {"ACCEPTED", "DECLINED", "TENTATIVE"}
        everyone = set(_emails(attendees)) | set(_emails(event["ORGANIZER"]))
        assert everyone & set(demo.owner_addresses), event["SUMMARY"]


def test_holds_the_shapes_detection_must_handle(demo: DemoData, events: list[Any]) -> None:
    series = [e for e in events if "RRULE" in e and "RECURRENCE-ID" not in e]
    weekly = [e for e in series if e["RRULE"]["FREQ"] == ["WEEKLY"]]
    assert weekly
    assert any("EXDATE" in e for e in weekly)
    assert any("UNTIL" in e["RRULE"] for e in weekly)  # the oldco series end at the move
    assert any("UNTIL" not in e["RRULE"] for e in weekly)  # the newco ones run on
    exceptions = [e for e in events if "RECURRENCE-ID" in e]
    assert exceptions
    for exception in exceptions:
        assert any(str(s["UID"]) == str(exception["UID"]) for s in series)
    assert any(str(e["STATUS"]) == "CANCELLED" for e in events)
    owner = set(demo.owner_addresses)
    answers = [
        a.params["PARTSTAT"]
        for e in events
        for a in (e["ATTENDEE"] if isinstance(e["ATTENDEE"], list) else [e["ATTENDEE"]])
        if str(a).removeprefix("mailto:") in owner
    ]
    assert "DECLINED" in answers
    all_day = [e for e in events if not isinstance(e["DTSTART"].dt, datetime)]
    assert all_day
    assert all(isinstance(e["DTSTART"].dt, date) for e in all_day)
    zoned = [e for e in events if isinstance(e["DTSTART"].dt, datetime)]
    assert all(e["DTSTART"].dt.tzinfo is not None for e in zoned)
    crowd = [e for e in events if len(_emails(e["ATTENDEE"])) > 10]
    assert crowd


def test_has_past_and_future_instances_matching_the_count(
    demo: DemoData, calendar: icalendar.Calendar
) -> None:
    start = NOW - timedelta(days=730)
    window = recurring_ical_events.of(calendar).between(start, NOW + timedelta(weeks=8))
    instances: list[Any] = list(window)
    assert len(instances) == demo.events

    def begins(event: Any) -> datetime:
        value = event["DTSTART"].dt
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return datetime(value.year, value.month, value.day, 12, tzinfo=UTC)

    future = [e for e in instances if begins(e) >= NOW]
    assert len(future) == demo.future_events
    assert len(future) >= 5
    assert any(begins(e) < NOW + timedelta(weeks=2) for e in future)
    past = [e for e in instances if begins(e) < NOW]
    assert min(begins(e) for e in past) < NOW - timedelta(days=600)
    # Work meetings sit in working hours, London time.
    for event in past:
        value = event["DTSTART"].dt
        if isinstance(value, datetime) and "newco.example" in str(event["ORGANIZER"]):
            assert str(value.tzinfo) == "Europe/London"
            assert 8 <= value.hour < 18
