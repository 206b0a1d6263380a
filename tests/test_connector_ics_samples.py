"""Every real-world-like sample in tests/data/ics either yields meetings or says why not.

One row per file: the start of every meeting it yields (UTC, in order) and the reasons of
every event skipped. A new sample without a row fails, so the folder cannot grow untested.
The rows were checked by hand against each exporter's zone rules (see the comments).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from keepwarm.connectors.icalendar_meetings import meetings_from_calendar
from keepwarm.model import Attendee, MeetingMeta, Person

DATA = Path(__file__).parent / "data" / "ics"
WINDOW = {
    "window_start": datetime(2023, 1, 1, tzinfo=UTC),
    "window_end": datetime(2025, 1, 1, tzinfo=UTC),
}
REASONS = {"bad-calendar", "bad-event", "bad-recurrence", "bad-timezone", "no-start", "no-uid",
           "too-frequent"}  # fmt: skip

# file -> (meeting starts as "MM-DDTHH:MM" in UTC of 2024 unless a year is given, skip reasons)
EXPECTED: dict[str, tuple[list[str], list[str]]] = {
    "all_day.ics": (["2023-06-12T12:00", "02-29T12:00", "04-08T12:00", "06-12T12:00"], []),
    "bom_lf_folded.ics": (["07-05T15:00"], []),  # a BOM, bare LF, folds with space and tab
    "broken_event.ics": (
        ["06-01T09:00", "06-05T09:00"],
        ["bad-event", "bad-event", "no-start", "no-uid", "too-frequent"],
    ),
    # The booking tool's VTIMEZONE lacks TZOFFSETFROM; its Windows name still says +02:00.
    "broken_vtimezone.ics": (["06-14T07:00", "06-15T08:00"], ["bad-timezone"]),
    "exchange_cancelled.ics": (["06-20T11:00"], []),  # METHOD:CANCEL; London on BST
    # "(UTC+01:00) Amsterdam, Berlin, …" defined by its VTIMEZONE; tzone://Microsoft/Utc.
    "exchange_legacy_tzid.ics": (["09-12T14:30", "09-13T08:00"], []),
    # Second Thursday, 09:00 Melbourne: AEDT (+11) until 7 April, then AEST (+10).
    "fastmail.ics": (["03-13T22:00", "04-10T23:00", "05-08T23:00"], []),
    "floating.ics": (["03-01T09:30", "03-02T08:00"], []),
    # 09:30 New York (EST after 3 Nov): the 5th is an EXDATE, the 6th moved, the 7th cancelled.
    "google_cancelled_instance.ics": (
        ["11-04T14:30", "11-06T16:30", "11-07T14:30", "11-08T14:30"],
        [],
    ),
    "google_x_wr_timezone.ics": (["03-18T09:00", "03-25T09:00", "04-01T08:00"], []),
    "icloud_invite.ics": (["04-12T22:30", "07-15T12:00"], []),  # 18:30 EDT; an all-day week
    "latin1.ics": (["08-08T07:00"], []),
    # Tuesdays 14:00 Berlin (CET): the 23 January is an EXDATE, 6 February moved to 16:00.
    "nextcloud_recurring.ics": (
        [
            "01-09T13:00",
            "01-16T13:00",
            "01-30T13:00",
            "02-06T15:00",
            "02-13T13:00",
            "02-20T13:00",
            "02-27T13:00",
        ],
        [],
    ),
    "outlook_all_day.ics": (["05-01T12:00"], []),  # local midnight to midnight, all-day flag
    "outlook_windows_tz.ics": (["01-15T17:00", "02-05T04:30", "07-10T12:00"], []),
    "people.ics": (["05-10T12:00", "05-11T12:00", "05-12T12:00", "05-13T12:00"], []),
    # 18:00 London: GMT on 19 March, BST on 2 April; the 26th is excluded; a PERIOD in UTC.
    "rdate_period.ics": (["03-19T18:00", "04-02T17:00", "04-10T17:00"], []),
    "recurring.ics": (
        [
            "03-18T09:00",
            "03-20T16:00",
            "03-27T16:00",
            "04-02T13:00",
            "04-04T16:00",
            "04-08T08:00",
            "04-15T08:00",
            "04-22T08:00",
        ],
        [],
    ),
    "teams_invite.ics": (["04-15T08:00"], []),  # 10:00 "Romance Standard Time" in summer
    # RANGE=THISANDFUTURE moves 20 May and every later instance from 10:00 to 14:00 Berlin.
    "this_and_future.ics": (
        ["05-06T08:00", "05-13T08:00", "05-20T12:00", "05-27T12:00", "06-03T12:00"],
        [],
    ),
    # 01:30 Chicago on the night clocks go forward: still CST (-6).
    "thunderbird.ics": (["03-10T07:30"], []),
    "two_calendars_same_uid.ics": (["03-22T19:00"], []),  # two VCALENDARs, one UID: once
    "zoom_invite.ics": (["06-11T18:00"], []),  # 11:00 PDT
}


def read(name: str) -> tuple[list[MeetingMeta], list[str]]:
    meetings, skipped = meetings_from_calendar((DATA / name).read_bytes(), source="f", **WINDOW)
    return meetings, sorted(skip.reason for skip in skipped)


def test_every_sample_has_a_row() -> None:
    assert sorted(p.name for p in DATA.glob("*.ics")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_yields_its_meetings_or_says_why_not(name: str) -> None:
    meetings, reasons = read(name)
    starts, expected_reasons = EXPECTED[name]
    shown = sorted(m.start.strftime("%Y-%m-%dT%H:%M").removeprefix("2024-") for m in meetings)
    assert (shown, reasons) == (sorted(starts), expected_reasons)
    assert meetings or reasons
    assert set(reasons) <= REASONS
    for meeting in meetings:
        assert meeting.start.tzinfo is UTC
        assert meeting.end is None or meeting.end >= meeting.start
        assert meeting.source_id.startswith(f"f:{meeting.uid}")


def by_summary(name: str) -> dict[str | None, MeetingMeta]:
    return {m.summary: m for m in read(name)[0]}


def test_thisandfuture_instances_keep_their_own_recurrence_ids() -> None:
    meetings, _ = read("this_and_future.ics")
    assert [m.recurrence_id for m in meetings] == [
        f"2024-{day}T08:00:00Z" for day in ("05-06", "05-13", "05-20", "05-27", "06-03")
    ]
    assert {m.summary for m in meetings[2:]} == {"Design review (afternoons from now on)"}


def test_apple_attendees_named_by_their_email_parameter() -> None:
    pizza = by_summary("icloud_invite.ics")["Pizza with the old team"]
    assert pizza.organizer == Person("carol@icloud.example", "Carol Diaz")
    assert [(a.address, a.partstat) for a in pizza.attendees] == [
        ("bob@example.org", "accepted"),
        ("carol@icloud.example", "accepted"),
        ("me@example.net", "tentative"),
    ]
    lake = by_summary("icloud_invite.ics")["Lake house"]
    assert (lake.all_day, lake.end) == (True, datetime(2024, 7, 21, 12, tzinfo=UTC))


def test_outlook_all_day_events_keep_their_dates() -> None:
    [exam] = read("outlook_all_day.ics")[0]
    assert (exam.all_day, exam.start.date().isoformat(), exam.end) == (
        True,
        "2024-05-01",
        datetime(2024, 5, 4, 12, tzinfo=UTC),
    )


def test_invitations_and_cancellations() -> None:
    [teams] = read("teams_invite.ics")[0]
    assert teams.organizer == Person("pauline.martin@contoso.example", "Pauline Martin")
    assert [a.partstat for a in teams.attendees] == ["needs-action"] * 3
    [zoom] = read("zoom_invite.ics")[0]
    assert (zoom.organizer, zoom.attendees) == (Person("dana.lee@example.org", "Dana Lee"), ())
    [cancelled] = read("exchange_cancelled.ics")[0]
    assert cancelled.status == "cancelled"
    google = read("google_cancelled_instance.ics")[0]
    assert [m.status for m in google] == ["confirmed", "confirmed", "cancelled", "confirmed"]


def test_names_survive_old_encodings_and_declines_are_kept() -> None:
    [breakfast] = read("latin1.ics")[0]
    assert breakfast.organizer == Person("juergen@groupware.example", "Jürgen Müller")
    club = read("fastmail.ics")[0][0]
    assert Attendee("noah@example.org", "Noah Kim", "declined") in club.attendees
    [call] = read("thunderbird.ics")[0]
    assert call.end == datetime(2024, 3, 10, 8, 30, tzinfo=UTC)  # 03:30 CDT: one hour later
