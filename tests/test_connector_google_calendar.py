"""The Google Calendar connector with the real googleapiclient and google-auth, against the
local Calendar emulator: sync tokens, windowed reads, time zones, attendance."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from tests.connector_contract import ConnectorContract, final_cursor, keys, skips
from tests.emulators.google import GoogleEmulator
from tests.emulators.google_calendar import all_day, timed
from tests.emulators.google_setup import OWNER, CalendarSource, account
from tests.emulators.google_setup import emulator as emulator  # the fixture

from keepwarm.config.schema import AccountConfig, Config
from keepwarm.connectors.base import ConnectorContext, SourceProblem, create
from keepwarm.connectors.icalendar_meetings import meetings_from_calendar
from keepwarm.daemon.ingest import sync_account
from keepwarm.detect.touchpoints import Detector
from keepwarm.errors import CursorExpired
from keepwarm.model import Batch, MeetingMeta
from keepwarm.store import Store

LIST = "calendar.events.list"
BERLIN = "Europe/Berlin"
ICS = Path(__file__).parent / "data" / "ics" / "recurring.ics"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def poll(acct: AccountConfig, now: datetime, cursor: str | None = None) -> list[Batch]:
    context = ConnectorContext(state_dir=Path("/nonexistent"), now=lambda: now)
    connector = create(acct, context)
    try:
        return list(connector.poll(cursor))
    finally:
        connector.close()


def meetings(batches: list[Batch]) -> list[MeetingMeta]:
    found = [item for batch in batches for item in batch.items]
    assert all(isinstance(m, MeetingMeta) for m in found)
    return sorted(found, key=lambda m: (m.start, m.uid))  # type: ignore[union-attr,return-value]


def meeting(
    uid: str, start: datetime, *, zone: str = BERLIN, minutes: int = 30, **extra: Any
) -> dict[str, Any]:
    return {
        "iCalUID": uid,
        "summary": uid,
        "start": timed(start, zone),
        "end": timed(start + timedelta(minutes=minutes), zone),
        **extra,
    }


def guests(*people: tuple[str, str]) -> list[dict[str, str]]:
    return [{"email": email, "responseStatus": status} for email, status in people]


class TestGoogleCalendarContract(ConnectorContract):
    many: ClassVar[int] = 0  # one batch per poll: it holds every future meeting

    @pytest.fixture
    def source(self, emulator: GoogleEmulator, tmp_path: Path) -> CalendarSource:
        return CalendarSource(emulator, tmp_path)


def test_series_exceptions_and_time_zones_match_the_ics_reading(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    """The ICS sample's weekly series, as Google stores it: the same natural keys and times."""
    cal = emulator.user(OWNER).calendar
    people = {
        "organizer": {"email": "frank@example.org", "displayName": "Frank"},
        "attendees": guests(("frank@example.org", "accepted"), (OWNER, "accepted")),
    }
    master = cal.put(
        {
            **meeting("weekly-1on1@example.org", at("2024-03-18T09:00"), **people),
            "recurrence": [
                "RRULE:FREQ=WEEKLY;COUNT=6",
                "EXDATE;TZID=Europe/Berlin:20240325T100000",
            ],
        }
    )
    moved = meeting("weekly-1on1@example.org", at("2024-04-02T13:00"), **people)
    cal.put({**moved, "id": f"{master['id']}_20240401T080000Z", "recurringEventId": master["id"],
             "originalStartTime": timed(at("2024-04-01T08:00"), BERLIN)})  # fmt: skip
    cal.put({"id": f"{master['id']}_20240408T080000Z", "recurringEventId": master["id"],
             "originalStartTime": timed(at("2024-04-08T08:00"), BERLIN), "status": "cancelled",
             "iCalUID": "weekly-1on1@example.org"})  # fmt: skip
    found = meetings(poll(account(emulator, tmp_path, "google_calendar"), at("2024-06-01T00:00")))
    google = [(m.uid, m.recurrence_id, m.start, m.end) for m in found]
    ics, _ = meetings_from_calendar(
        ICS.read_bytes(), source="f", window_start=at("2024-01-01"), window_end=at("2025-01-01")
    )
    expected = [
        (m.uid, m.recurrence_id, m.start, m.end)
        for m in ics
        if m.uid == "weekly-1on1@example.org" and m.status != "cancelled"
    ]
    assert google == expected
    assert [m.start for m in found] == [
        at("2024-03-18T09:00"), at("2024-04-02T13:00"),  # moved; 25 March excluded
        at("2024-04-15T08:00"), at("2024-04-22T08:00"),  # summer time: 10:00 is 08:00 UTC
    ]  # fmt: skip
    assert found[0].organizer is not None
    assert found[0].organizer.name == "Frank"


def test_time_zones_and_all_day_events_whatever_the_calendars_zone(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    cal = emulator.user(OWNER).calendar
    cal.time_zone = "Asia/Tokyo"
    cal.put(meeting("ny", at("2024-03-10T14:00"), zone="America/New_York"))  # the DST morning
    cal.put({"iCalUID": "leap", "start": all_day(date(2024, 2, 29)),
             "end": all_day(date(2024, 3, 2))})  # fmt: skip
    cal.put({"iCalUID": "birthday", "start": all_day(date(2023, 6, 12)),
             "end": all_day(date(2023, 6, 13)), "recurrence": ["RRULE:FREQ=YEARLY"]})  # fmt: skip
    found = meetings(poll(account(emulator, tmp_path, "google_calendar"), at("2024-07-01T00:00")))
    by = {(m.uid, m.recurrence_id): m for m in found}
    assert by["ny", None].start == at("2024-03-10T14:00")
    leap = by["leap", None]
    assert (leap.start, leap.end, leap.all_day) == (
        at("2024-02-29T12:00"),
        at("2024-03-02T12:00"),
        True,
    )
    assert [(r, m.start) for (u, r), m in by.items() if u == "birthday"] == [
        ("2023-06-12T12:00:00Z", at("2023-06-12T12:00")),
        ("2024-06-12T12:00:00Z", at("2024-06-12T12:00")),
        ("2025-06-12T12:00:00Z", at("2025-06-12T12:00")),  # within the 365-day horizon
    ]


def test_attendance_decides_which_meetings_are_touchpoints(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    cal = emulator.user(OWNER).calendar
    start = at("2024-05-06T09:00")
    crowd = [(f"p{i}@example.org", "accepted") for i in range(14)]
    cases = {
        "organised": {"organizer": {"email": OWNER},
                      "attendees": guests((OWNER, "accepted"), ("ann@example.org", "needsAction"))},
        "accepted": {"organizer": {"email": "bob@example.org"},
                     "attendees": guests((OWNER, "accepted"), ("bob@example.org", "accepted"))},
        "tentative": {"organizer": {"email": "cat@example.org"},
                      "attendees": guests((OWNER, "tentative"), ("cat@example.org", "accepted"))},
        "declined": {"organizer": {"email": "dan@example.org"},
                     "attendees": guests((OWNER, "declined"), ("dan@example.org", "accepted"))},
        "unanswered": {"organizer": {"email": "eve@x.org"},
                       "attendees": guests((OWNER, "needsAction"), ("eve@x.org", "accepted"))},
        "all-hands": {"organizer": {"email": "ceo@example.org"},
                      "attendees": guests((OWNER, "accepted"), *crowd)},
        "cancelled": {"organizer": {"email": "fay@example.org"}, "status": "cancelled",
                      "attendees": guests((OWNER, "accepted"), ("fay@example.org", "accepted"))},
    }  # fmt: skip
    for i, (uid, extra) in enumerate(cases.items()):
        cal.put(meeting(uid, start + timedelta(hours=i), **extra))
    acct = account(emulator, tmp_path, "google_calendar")
    [batch] = poll(acct, at("2024-06-01T00:00"))
    assert batch.identities == {OWNER}  # Google marks the owner's entries `self`
    detector = Detector(Config(accounts=(acct,)), acct, batch.identities)
    outcomes = {m.uid: detector.meeting(m) for m in meetings([batch])}
    assert "cancelled" not in outcomes  # deleted events are not read at all
    touched = {uid: sorted(t.counterpart for t in o.touchpoints) for uid, o in outcomes.items()}
    assert touched["organised"] == ["ann@example.org"]
    assert touched["accepted"] == ["bob@example.org"]
    assert touched["tentative"] == ["cat@example.org"]
    filtered = {uid: o.filtered for uid, o in outcomes.items() if o.filtered}
    assert filtered == {
        "declined": "not-attended",
        "unanswered": "not-attended",
        "all-hands": "too-many-people",
    }


def test_no_change_costs_one_events_list_call_per_calendar(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    source = CalendarSource(emulator, tmp_path)
    source.add(["a@x"])
    now = datetime.now(UTC)
    cursor = final_cursor(poll(source.account, now))
    emulator.reset_counts()
    [batch] = poll(source.account, now + timedelta(hours=1), cursor)
    assert (batch.items, batch.cursor, batch.future_complete) == ([], cursor, False)
    assert emulator.calls == {LIST: 1}
    [(_, params)] = emulator.log
    assert "syncToken" in params
    assert "timeMin" not in params


def test_a_change_rereads_from_the_earliest_changed_start_and_the_whole_future(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    cal = emulator.user(OWNER).calendar
    now = at("2024-06-01T12:00")
    party = {"organizer": {"email": "gus@example.org"},
             "attendees": guests((OWNER, "accepted"), ("gus@example.org", "accepted"))}  # fmt: skip
    cal.put(meeting("old", now - timedelta(days=90), **party))
    soon = cal.put(meeting("soon", now + timedelta(days=3), **party))
    later = cal.put(meeting("later", now + timedelta(days=30), **party))
    acct = account(emulator, tmp_path, "google_calendar", backfill_days=365)
    cursor = final_cursor(poll(acct, now))
    emulator.reset_counts()
    cal.put(meeting("added-late", now - timedelta(days=10), **party))  # logged afterwards
    cal.cancel(soon["id"])
    cal.put({**later, "attendees": guests((OWNER, "declined"), ("gus@example.org", "accepted"))})
    [batch] = poll(acct, now + timedelta(minutes=5), cursor)
    assert batch.future_complete
    assert [m.uid for m in meetings([batch])] == ["added-late", "later"]  # "old" is not read again
    window = [p for method, p in emulator.log if "timeMin" in p]
    assert [p["timeMin"] for p in window] == [["2024-05-22T12:00:00Z"]]
    assert emulator.calls[LIST] == 2  # the changes, then one window


def test_an_expired_sync_token_asks_for_a_full_resync(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    source = CalendarSource(emulator, tmp_path)
    source.add(["a@x"])
    now = datetime.now(UTC)
    cursor = final_cursor(poll(source.account, now))
    source.calendar.expire_tokens()
    with pytest.raises(CursorExpired, match="sync token"):
        poll(source.account, now, cursor)
    assert keys(poll(source.account, now, None)) == ["a@x"]


def test_the_future_is_read_again_weekly_without_changes(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    cal = emulator.user(OWNER).calendar
    now = at("2024-06-01T12:00")
    attendees = guests((OWNER, "accepted"), ("hal@example.org", "accepted"))
    cal.put({**meeting("monthly", now + timedelta(days=2), attendees=attendees),
             "recurrence": ["RRULE:FREQ=MONTHLY"]})  # fmt: skip
    acct = account(emulator, tmp_path, "google_calendar")
    first = poll(acct, now)
    last_seen = max(m.start for m in meetings(first))
    assert poll(acct, now + timedelta(days=6), final_cursor(first))[0].items == []
    [again] = poll(acct, now + timedelta(days=40), final_cursor(first))
    assert again.future_complete
    assert max(m.start for m in meetings([again])) > last_seen  # a new month came into view


def test_several_calendars_and_a_wrong_one(emulator: GoogleEmulator, tmp_path: Path) -> None:
    user = emulator.user(OWNER)
    boss = "boss@corp.example"
    team = user.add_calendar("team@group.calendar.google.com", "Team", "America/Chicago", boss)
    user.calendar.put(
        meeting("mine", at("2024-05-01T10:00"), attendees=guests((OWNER, "accepted")))
    )
    team.put(meeting("theirs", at("2024-05-02T10:00"), zone="America/Chicago",
                     attendees=guests((boss, "accepted"), (OWNER, "accepted"))))  # fmt: skip
    acct = account(emulator, tmp_path, "google_calendar",
                   calendars=("primary", "team@group.calendar.google.com"))  # fmt: skip
    batches = poll(acct, at("2024-06-01T00:00"))
    assert batches[0].identities == {OWNER}  # `self` on the shared calendar marks its owner
    found = meetings(batches)
    assert [(m.uid, m.calendar) for m in found] == [
        ("mine", "primary"),
        ("theirs", "team@group.calendar.google.com"),
    ]
    wrong = account(emulator, tmp_path, "google_calendar", calendars=("nope",))
    with pytest.raises(SourceProblem, match="nope") as caught:
        poll(wrong, at("2024-06-01T00:00"))
    assert "accounts.calendars" in caught.value.fix


def test_planned_meetings_follow_the_calendar_and_become_touchpoints(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    cal = emulator.user(OWNER).calendar
    now = datetime.now(UTC).replace(microsecond=0)
    party = {"organizer": {"email": "ivy@example.org"},
             "attendees": guests((OWNER, "accepted"), ("ivy@example.org", "accepted"))}  # fmt: skip
    lunch = cal.put(meeting("lunch", now + timedelta(days=2), **party))
    cal.put(meeting("review", now + timedelta(days=5), **party))
    acct = account(emulator, tmp_path, "google_calendar")
    config = Config(accounts=(acct,))
    context = ConnectorContext(state_dir=tmp_path / "state", now=lambda: now)
    store = Store.open(f"sqlite:///{tmp_path / 'keepwarm.db'}")
    try:
        assert sync_account(store, config, acct, context, now=lambda: now).ok
        assert sorted(t.natural_key for t in store.planned_meetings()) == [
            "evt:lunch:", "evt:review:",
        ]  # fmt: skip
        cal.cancel(lunch["id"])
        assert sync_account(store, config, acct, context, now=lambda: now).ok
        assert [t.natural_key for t in store.planned_meetings()] == ["evt:review:"]
        promoted = store.promote_planned(now + timedelta(days=6))
        assert [(t.natural_key, t.counterpart) for t in promoted] == [
            ("evt:review:", "ivy@example.org")
        ]
    finally:
        store.close()


def test_an_unreadable_event_is_a_skip(emulator: GoogleEmulator, tmp_path: Path) -> None:
    source = CalendarSource(emulator, tmp_path)
    source.add(["a@x"])
    source.add_bad("bad@x")
    batches = poll(source.account, datetime.now(UTC))
    assert keys(batches) == ["a@x"]
    assert [(s.reason, s.source_id.startswith("primary:")) for s in skips(batches)] == [
        ("bad-event", True)
    ]
