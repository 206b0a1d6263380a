"""The CalDAV connector against a real, private Radicale filled through the caldav client: the
connector contract, discovery and selection, sync-collection and its expiry, what an unchanged
poll costs the server, the daily refresh, and the same meetings with server-side expansion."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import icalendar
import pytest
from tests.connector_contract import ConnectorContract
from tests.servers.radicale import (
    NOW,
    DavUser,
    dav_user,
    ics,
    instances,
    poll,
    radicale,
    uids,
    vevent,
)

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import SourceProblem
from keepwarm.connectors.icalendar_meetings import meetings_from_calendar
from keepwarm.model import MeetingMeta

__all__ = ["dav_user", "radicale"]  # fixtures: imported so that pytest finds them

DATA = Path(__file__).parent / "data" / "ics"
# Contract items lie well in the past: a poll after a change also resends every meeting from
# the previous poll on (so that its batch holds every future meeting); the contract counts new
# items, which is what the past shows.
PAST = NOW - timedelta(days=3)


class RadicaleSource:
    """One calendar of a fresh Radicale user, as the contract drives it."""

    def __init__(self, user: DavUser) -> None:
        self.calendar = user.calendar("work")
        self.account: AccountConfig = user.account
        self.count = 0

    def add(self, keys: list[str]) -> None:
        for key in keys:
            self.calendar.save_event(ics(vevent(key, PAST + timedelta(minutes=self.count))))
            self.count += 1

    def add_bad(self, key: str) -> None:
        # Radicale refuses most broken events; this one it stores, though INTERVAL must be > 0.
        self.calendar.save_event(ics(vevent(key, PAST, "RRULE:FREQ=DAILY;INTERVAL=0")))


class TestCaldavContract(ConnectorContract):
    resends_everything: ClassVar[bool] = False
    many: ClassVar[int] = 0  # one batch per poll, whatever the size

    @pytest.fixture
    def source(self, dav_user: DavUser) -> RadicaleSource:
        return RadicaleSource(dav_user)


# --- discovery and selection -----------------------------------------------------------------


def test_default_is_every_event_calendar_of_the_user(dav_user: DavUser) -> None:
    dav_user.calendar("work").save_event(ics(vevent("w@x", NOW - timedelta(days=1))))
    dav_user.calendar("home", "Family").save_event(ics(vevent("h@x", NOW + timedelta(days=1))))
    todo = dav_user.calendar("todo", supported_calendar_component_set=["VTODO"])
    task = "BEGIN:VTODO\r\nUID:t@x\r\nDTSTAMP:20240101T000000Z\r\nSUMMARY:buy milk\r\nEND:VTODO"
    todo.save_todo(ics(task))
    batch = poll(dav_user.account, None)
    assert uids(batch) == ["h@x", "w@x"]
    names = [c["name"] for c in json.loads(batch.cursor or "")["calendars"]]
    assert names == ["Family", "Work"]  # the task list is not read
    sources = sorted(m.source_id for m in batch.items if isinstance(m, MeetingMeta))
    assert sources == ["Family:h@x", "Work:w@x"]


@pytest.mark.parametrize("wanted", ["Family", "family", "home", "/{user}/home/", "{url}"])
def test_calendars_picks_by_name_id_or_url(dav_user: DavUser, wanted: str) -> None:
    dav_user.calendar("work").save_event(ics(vevent("w@x", NOW - timedelta(days=1))))
    dav_user.calendar("home", "Family").save_event(ics(vevent("h@x", NOW - timedelta(days=1))))
    wanted = wanted.format(user=dav_user.name, url=dav_user.url("home"))
    assert uids(poll(dav_user.account_with(calendars=(wanted,)), None)) == ["h@x"]


def test_a_url_naming_one_calendar_reads_only_that_one(dav_user: DavUser) -> None:
    dav_user.calendar("work").save_event(ics(vevent("w@x", NOW - timedelta(days=1))))
    dav_user.calendar("home").save_event(ics(vevent("h@x", NOW - timedelta(days=1))))
    assert uids(poll(dav_user.account_with(url=dav_user.url("work")), None)) == ["w@x"]


def test_an_unknown_calendar_name_says_which_ones_exist(dav_user: DavUser) -> None:
    dav_user.calendar("work")
    dav_user.calendar("home", "Family")
    with pytest.raises(SourceProblem, match=r"no calendar 'Holidays'.*'Family', 'Work'") as caught:
        poll(dav_user.account_with(calendars=("Holidays", "Work")), None)
    assert "accounts.calendars" in caught.value.fix


def test_a_user_without_calendars_is_told_so(dav_user: DavUser) -> None:
    with pytest.raises(SourceProblem, match="no calendars"):
        poll(dav_user.account, None)


# --- incremental sync ------------------------------------------------------------------------


def test_changes_come_from_sync_collection_with_every_future_meeting(dav_user: DavUser) -> None:
    work = dav_user.calendar("work")
    old = vevent("old@x", NOW - timedelta(days=40))
    work.save_event(ics(old))
    work.save_event(ics(vevent("soon@x", NOW + timedelta(days=2))))
    work.save_event(ics(vevent("gone@x", NOW + timedelta(days=5))))
    first = poll(dav_user.account, None)
    assert uids(first) == ["gone@x", "old@x", "soon@x"]

    later = NOW + timedelta(hours=2)
    # An attendee added to a meeting of 40 days ago, one meeting deleted, one added.
    work.save_event(ics(old.replace("END:VEVENT", "ATTENDEE:mailto:bob@example.org\r\nEND:VEVENT")))
    work.event_by_uid("gone@x").delete()
    work.save_event(ics(vevent("new@x", NOW - timedelta(days=20))))
    second = poll(dav_user.account, first.cursor, later)
    # The changed and the new one from their own objects, the future from the calendar-query:
    # "gone@x" is not among the future meetings, which the store reads as "cancelled".
    assert uids(second) == ["new@x", "old@x", "soon@x"]
    assert second.future_complete
    [changed] = [m for m in second.items if isinstance(m, MeetingMeta) and m.uid == "old@x"]
    assert "bob@example.org" in [a.address for a in changed.attendees]
    assert json.loads(second.cursor or "")["refreshed"] == later.isoformat()


def test_an_unchanged_poll_is_one_request_per_calendar(dav_user: DavUser) -> None:
    for name in ("work", "home", "club"):
        dav_user.calendar(name).save_event(ics(vevent(f"{name}@x", NOW - timedelta(days=1))))
    server = dav_user.server
    mark = server.mark()
    first = poll(dav_user.account, None)
    discovery = server.requests_since(mark)
    assert sum(method == "REPORT" for method, _ in discovery) == 3
    mark = server.mark()
    second = poll(dav_user.account, first.cursor, NOW + timedelta(minutes=15))
    assert (second.items, second.cursor, second.future_complete) == ([], first.cursor, False)
    # The login scheme is remembered too: no 401 round before the first answer.
    assert sorted(server.requests_since(mark)) == [
        ("REPORT", f"/{dav_user.name}/{name}/") for name in ("club", "home", "work")
    ]


def test_an_expired_sync_token_reads_that_calendar_again(dav_user: DavUser) -> None:
    work = dav_user.calendar("work")
    home = dav_user.calendar("home")
    work.save_event(ics(vevent("w1@x", NOW - timedelta(days=9))))
    home.save_event(ics(vevent("h1@x", NOW - timedelta(days=9))))
    first = poll(dav_user.account, None)
    work.save_event(ics(vevent("w2@x", NOW - timedelta(days=8))))
    home.save_event(ics(vevent("h2@x", NOW - timedelta(days=8))))
    # Radicale forgets tokens older than max_sync_token_age by deleting their files.
    tokens = dav_user.server.storage / "collection-root" / dav_user.name / "work"
    for token in (tokens / ".Radicale.cache" / "sync-token").iterdir():
        token.unlink()
    second = poll(dav_user.account, first.cursor, NOW + timedelta(hours=1))
    # Work was read whole again (w1 too), home only for what changed.
    assert uids(second) == ["h2@x", "w1@x", "w2@x"]
    third = poll(dav_user.account, second.cursor, NOW + timedelta(hours=2))
    assert (third.items, third.cursor) == ([], second.cursor)  # the new token works


def test_a_new_calendar_is_found_by_the_daily_discovery(dav_user: DavUser) -> None:
    dav_user.calendar("work").save_event(ics(vevent("w@x", NOW - timedelta(days=3))))
    first = poll(dav_user.account, None)
    dav_user.calendar("club").save_event(ics(vevent("c@x", NOW - timedelta(days=3))))
    assert uids(poll(dav_user.account, first.cursor, NOW + timedelta(hours=1))) == []
    next_day = poll(dav_user.account, first.cursor, NOW + timedelta(days=1, minutes=1))
    assert uids(next_day) == ["c@x"]
    assert next_day.future_complete


def test_a_deleted_calendar_drops_out_with_its_future_meetings(dav_user: DavUser) -> None:
    dav_user.calendar("work").save_event(ics(vevent("w@x", NOW + timedelta(days=3))))
    club = dav_user.calendar("club")
    club.save_event(ics(vevent("c@x", NOW + timedelta(days=3))))
    first = poll(dav_user.account, None)
    club.delete()
    # The sync report answers 404: the calendars are discovered again in the same poll.
    second = poll(dav_user.account, first.cursor, NOW + timedelta(hours=1))
    assert (uids(second), second.future_complete) == (["w@x"], True)
    assert [c["name"] for c in json.loads(second.cursor or "")["calendars"]] == ["Work"]


def test_the_daily_refresh_reads_instances_rolling_into_the_horizon(dav_user: DavUser) -> None:
    work = dav_user.calendar("work")
    start = NOW - timedelta(days=7)
    work.save_event(ics(vevent("weekly@x", start, "RRULE:FREQ=WEEKLY")))
    first = poll(dav_user.account, None)
    horizon = NOW + timedelta(days=365)
    assert max(m.start for m in first.items if isinstance(m, MeetingMeta)) <= horizon
    week_later = NOW + timedelta(days=8)
    again = poll(dav_user.account, first.cursor, week_later)
    assert again.future_complete
    starts = [m.start for m in again.items if isinstance(m, MeetingMeta)]
    assert min(starts) >= NOW - timedelta(hours=1)  # from the last refresh on, not the backfill
    assert max(starts) > horizon  # the week's new instances at the far end


def test_an_event_in_two_calendars_counts_once(dav_user: DavUser) -> None:
    shared = vevent("same@x", NOW - timedelta(days=2), "RRULE:FREQ=DAILY;COUNT=2")
    dav_user.calendar("work").save_event(ics(shared))
    dav_user.calendar("home").save_event(ics(shared))
    batch = poll(dav_user.account, None)
    assert instances(batch) == [
        ("same@x", f"{NOW - timedelta(days=2):%Y-%m-%dT%H:%M:%SZ}"),
        ("same@x", f"{NOW - timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"),
    ]


# --- real-world objects, expanded here and by the server ---------------------------------------


def objects(data: bytes) -> list[tuple[str, str]]:
    """A calendar file as CalDAV objects: per UID, its events with the file's time zones."""
    calendar = icalendar.Calendar.from_ical(data)
    zones = list(calendar.walk("VTIMEZONE"))
    uids = dict.fromkeys(str(event["UID"]) for event in calendar.walk("VEVENT"))
    found = []
    for uid in uids:
        single = icalendar.Calendar()
        single.add("VERSION", "2.0")
        single.add("PRODID", "-//keepwarm tests//EN")
        for component in zones + [e for e in calendar.walk("VEVENT") if str(e["UID"]) == uid]:
            single.add_component(component)
        found.append((uid, single.to_ical().decode()))
    return found


SAMPLES = ["recurring.ics", "all_day.ics", "this_and_future.ics", "nextcloud_recurring.ics"]
WINDOW = (datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC))


@pytest.mark.parametrize("server_expand", [False, True])
def test_stored_samples_give_the_meetings_of_the_file(
    dav_user: DavUser, server_expand: bool
) -> None:
    work = dav_user.calendar("work")
    expected: set[tuple[str, str | None, datetime]] = set()
    for name in SAMPLES:
        data = (DATA / name).read_bytes()
        meetings, _ = meetings_from_calendar(data, source="f", window_start=WINDOW[0],
                                             window_end=WINDOW[1])  # fmt: skip
        expected |= {(m.uid, m.recurrence_id, m.start) for m in meetings}
        for uid, body in objects(data):  # a CalDAV object holds one UID
            answer = work.client.put(
                f"{work.url}{uid}.ics", body, {"Content-Type": "text/calendar"}
            )
            assert answer.status == 201, (name, uid)
    now = WINDOW[1] - timedelta(days=365)
    account = dav_user.account_with(backfill_days=(now - WINDOW[0]).days,
                                    server_expand=server_expand)  # fmt: skip
    batch = poll(account, None, now)
    found = {(m.uid, m.recurrence_id, m.start) for m in batch.items if isinstance(m, MeetingMeta)}
    assert len(expected) > 20
    if not server_expand:
        assert found == expected
        return
    # Radicale 3.9 expands RRULE, RDATE, EXDATE, moved and cancelled instances as we do, but
    # ignores RANGE=THISANDFUTURE: the instances after the change stay at the old time. That is
    # why expansion is local unless asked for.
    moved = {(uid, rid, start) for uid, rid, start in expected
             if rid in ("2024-05-27T08:00:00Z", "2024-06-03T08:00:00Z")}  # fmt: skip
    unmoved = {(uid, rid, start.replace(hour=8)) for uid, rid, start in moved}
    assert (expected - found, found - expected) == (moved, unmoved)


def test_server_expansion_of_a_change_uses_the_same_instances(dav_user: DavUser) -> None:
    work = dav_user.calendar("work")
    account = dav_user.account_with(server_expand=True)
    work.save_event(ics(vevent("s@x", NOW - timedelta(days=3), "RRULE:FREQ=DAILY;COUNT=5")))
    first = poll(account, None)
    assert len(instances(first)) == 5
    work.save_event(ics(vevent("s@x", NOW - timedelta(days=3), "RRULE:FREQ=DAILY;COUNT=2")))
    second = poll(replace(account, server_expand=False), first.cursor, NOW + timedelta(hours=2))
    assert instances(second) == instances(first)[:2]
