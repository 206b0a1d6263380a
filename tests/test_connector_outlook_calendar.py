"""The Outlook calendar connector against the local identity platform and Graph emulators: the
contract suite, then meetings as a Microsoft 365 / Outlook.com user has them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
import structlog
from tests.connector_contract import ConnectorContract, final_cursor
from tests.emulators.microsoft import (
    USER,
    Emulators,
    OpensslMissing,
    emulators,
    outlook_account,
    sign_in,
)

from keepwarm.config.schema import AccountConfig, Config
from keepwarm.connectors.base import ConnectorContext, SourceProblem, create
from keepwarm.daemon.ingest import sync_account
from keepwarm.detect.touchpoints import Detector
from keepwarm.model import Attendee, Batch, MeetingMeta, Person
from keepwarm.store import Store

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _plain_logging() -> None:
    # CLI tests configure structlog to print to a captured stderr that is closed afterwards;
    # a warning logged by a later test would then fail on the closed file.
    structlog.reset_defaults()


@pytest.fixture
def em() -> Emulators:
    try:
        found = emulators()
    except OpensslMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    found.reset()
    return found


@pytest.fixture
def context(tmp_path: Path) -> ConnectorContext:
    return ConnectorContext(state_dir=tmp_path / "state", now=lambda: NOW)


@pytest.fixture
def account(em: Emulators, context: ConnectorContext) -> AccountConfig:
    found = outlook_account(em, "outlook_calendar")
    sign_in(found, context.state_dir)
    return found


class GraphCalendar:
    """The contract's source: meetings (two days ago) on the emulated primary calendar."""

    def __init__(self, em: Emulators, account: AccountConfig) -> None:
        self.em = em
        self.account = account

    def add(self, keys: list[str]) -> None:
        for i, key in enumerate(keys):
            self.em.graph.add_event(
                USER, uid=key, start=NOW - timedelta(days=2, seconds=i), attendees=((USER, "none"),)
            )

    def add_bad(self, key: str) -> None:
        item = self.em.graph.add_event(USER, uid=key, start=NOW - timedelta(days=2))
        self.em.graph.update(USER, item.id, start={"dateTime": "soon", "timeZone": "UTC"})


class TestOutlookCalendarContract(ConnectorContract):
    many: ClassVar[int] = 2_500

    @pytest.fixture
    def context(self, tmp_path: Path) -> ConnectorContext:
        return ConnectorContext(state_dir=tmp_path / "state", now=lambda: NOW)

    @pytest.fixture
    def source(self, em: Emulators, context: ConnectorContext) -> GraphCalendar:
        found = outlook_account(em, "outlook_calendar")
        sign_in(found, context.state_dir)
        return GraphCalendar(em, found)


def poll(
    account: AccountConfig, context: ConnectorContext, cursor: str | None = None
) -> list[Batch]:
    connector = create(account, context)
    try:
        return list(connector.poll(cursor))
    finally:
        connector.close()


def meetings(batches: list[Batch]) -> dict[str, MeetingMeta]:
    return {(m.summary or m.uid): m for b in batches for m in b.items if isinstance(m, MeetingMeta)}


# --- what a meeting says ------------------------------------------------------------------


def test_attendees_answers_and_the_owners_own_answer(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    g, start = em.graph, NOW - timedelta(days=3)
    g.add_event(
        USER,
        uid="u1",
        subject="Review",
        start=start,
        organizer="alice@example.org",
        response="accepted",
        attendees=(
            (USER, "none"),
            ("bob@example.org", "tentativelyAccepted"),
            ("room-1@example.org", "accepted"),
            ("carol@example.org", "declined"),
        ),
    )
    g.add_event(
        USER,
        uid="u2",
        subject="Skipped",
        start=start,
        organizer="alice@example.org",
        response="declined",
        attendees=(("bob@example.org", "accepted"),),
    )
    g.add_event(
        USER,
        uid="u3",
        subject="Mine",
        start=start,
        organizer="me.alias@example.net",
        is_organizer=True,
        response="organizer",
        attendees=(("dan@example.org", "accepted"),),
    )
    g.add_event(USER, uid="u4", subject="Off", start=start, cancelled=True)
    batches = poll(account, context)
    found = meetings(batches)
    review = found["Review"]
    assert review.organizer == Person("alice@example.org")
    assert review.attendees == (
        Attendee(USER, None, "accepted"),  # responseStatus, not the attendee row's "none"
        Attendee("bob@example.org", None, "tentative"),
        Attendee("room-1@example.org", None, "accepted", resource=True),
        Attendee("carol@example.org", None, "declined"),
    )
    assert (review.start, review.end) == (start, start + timedelta(hours=1))
    assert review.recurrence_id is None
    assert found["Off"].status == "cancelled"
    assert "me.alias@example.net" in {i for b in batches for i in b.identities}
    # What detection makes of it: the declined meeting is no touchpoint; the owner's own is.
    detector = Detector(Config(accounts=(account,)), account, frozenset({USER}))
    assert detector.meeting(found["Skipped"]).filtered == "not-attended"
    assert detector.meeting(found["Off"]).filtered == "cancelled"
    mine = found["Mine"]
    identities = frozenset({USER, "me.alias@example.net"})
    [touch] = Detector(Config(accounts=(account,)), account, identities).meeting(mine).touchpoints
    assert (touch.counterpart, touch.direction.value) == ("dan@example.org", "out")


def test_times_all_day_events_windows_zones_and_series(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    g = em.graph
    g.honour_timezone = False  # the answer keeps each event's own (Windows) zone
    berlin = datetime(2024, 7, 10, 12, 0, tzinfo=UTC)  # 14:00 W. Europe Summer Time
    g.add_event(USER, uid="tz", subject="Planning", start=berlin, zone="W. Europe Standard Time")
    g.add_event(
        USER,
        uid="day",
        subject="Offsite",
        start=datetime(2024, 2, 29, tzinfo=UTC),
        end=datetime(2024, 3, 1, tzinfo=UTC),
        all_day=True,
        zone="Pacific Standard Time",
    )
    series = "040000008200E00074C5B7101A82E00800000000D0F1A2B3C4D5E601000000000000000010000000"
    instance = series[:32] + "07E8070A" + series[40:]  # 2024-07-10 in the instance bytes
    g.add_event(
        USER,
        uid=instance,
        subject="Weekly",
        start=berlin + timedelta(hours=2),
        kind="exception",
        series_master="AAkALmaster",
        original_start=berlin + timedelta(hours=1),
    )
    found = meetings(poll(replace(account, backfill_days=3650), context))
    assert found["Planning"].start == berlin
    offsite = found["Offsite"]
    assert (offsite.all_day, offsite.start) == (True, datetime(2024, 2, 29, 12, tzinfo=UTC))
    weekly = found["Weekly"]
    assert weekly.uid == series  # the series' UID, as CalDAV or an .ics export shows it
    assert weekly.recurrence_id == "2024-07-10T13:00:00Z"
    assert weekly.start == berlin + timedelta(hours=2)


def test_delta_asks_for_utc_and_the_future_list_selects_no_bodies(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    em.graph.add_event(USER, uid="f", subject="Soon", start=NOW + timedelta(days=10))
    poll(account, context)
    [delta] = em.graph.paths("calendarView/delta")
    assert 'outlook.timezone="UTC"' in delta.prefer
    assert "$select" not in delta.query  # Graph refuses $select on calendarView delta
    [listing] = [r for r in em.graph.paths("calendarView") if not r.path.endswith("delta")]
    assert "body" not in listing.query["$select"].split(",")


# --- future meetings, cancellations, the moving window -------------------------------------


def test_future_meetings_come_in_one_complete_batch_and_cancellations_leave_it(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    g = em.graph
    g.add_event(USER, uid="past", subject="Past", start=NOW - timedelta(days=5))
    soon = g.add_event(USER, uid="soon", subject="Soon", start=NOW + timedelta(days=10))
    later = g.add_event(USER, uid="later", subject="Later", start=NOW + timedelta(days=40))
    first = poll(account, context)
    [complete] = [b for b in first if b.future_complete]
    assert sorted(m.uid for m in complete.items) == ["later", "soon"]
    assert [m.uid for b in first if not b.future_complete for m in b.items] == ["past"]
    g.update(USER, soon.id, isCancelled=True)
    g.remove(USER, later.id)
    second = poll(account, context, final_cursor(first))
    [complete] = [b for b in second if b.future_complete]
    assert [(m.uid, m.status) for m in complete.items] == [("soon", "cancelled")]
    # Nothing changed: one request, and no future list.
    em.graph.requests.clear()
    third = poll(account, context, final_cursor(second))
    assert [b.future_complete for b in third] == [False]
    assert len(em.graph.requests) == 1


def test_planned_meetings_follow_cancellations_in_the_store(
    em: Emulators, account: AccountConfig, context: ConnectorContext, tmp_path: Path
) -> None:
    g = em.graph
    g.add_event(
        USER,
        uid="lunch",
        start=NOW + timedelta(days=3),
        organizer="ann@example.org",
        attendees=((USER, "accepted"),),
    )
    config = Config(accounts=(replace(account, addresses=(USER,)),))
    with Store.open(f"sqlite:///{tmp_path / 'keepwarm.db'}") as store:
        assert sync_account(store, config, config.accounts[0], context, now=lambda: NOW).ok
        assert [t.counterpart for t in store.planned_meetings()] == ["ann@example.org"]
        [event] = list(g.mailbox(USER).items.values())
        g.update(USER, event.id, isCancelled=True)
        assert sync_account(store, config, config.accounts[0], context, now=lambda: NOW).ok
        assert store.planned_meetings() == []


def test_the_window_moves_after_a_week(
    em: Emulators, account: AccountConfig, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    sign_in(account, state)
    cursor = final_cursor(poll(account, ConnectorContext(state_dir=state, now=lambda: NOW)))
    em.graph.requests.clear()
    later = NOW + timedelta(days=8)
    poll(account, ConnectorContext(state_dir=state, now=lambda: later), cursor)
    deltas = em.graph.paths("calendarView/delta")
    assert ["$deltatoken" in r.query for r in deltas] == [True, False]
    opened = datetime.fromisoformat(deltas[1].query["startDateTime"].replace("Z", "+00:00"))
    assert opened == later - timedelta(days=30)


def test_an_expired_calendar_delta_is_read_again(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    em.graph.add_event(USER, uid="a", subject="A", start=NOW - timedelta(days=1))
    cursor = final_cursor(poll(account, context))
    em.graph.expire_delta(410, "resyncRequired")
    again = poll(account, context, cursor)
    assert list(meetings(again)) == ["A"]
    assert poll(account, context, final_cursor(again))[0].items == []


def test_named_calendars(em: Emulators, account: AccountConfig, context: ConnectorContext) -> None:
    em.graph.calendar(USER, "Team")
    em.graph.add_event(
        USER, uid="t", subject="Standup", start=NOW - timedelta(days=1), calendar="Team"
    )
    em.graph.add_event(USER, uid="p", subject="Private", start=NOW - timedelta(days=1))
    found = meetings(poll(replace(account, calendars=("team",)), context))
    assert list(found) == ["Standup"]
    assert found["Standup"].calendar == "team"
    with pytest.raises(SourceProblem, match="no calendar 'Holidays'"):
        poll(replace(account, calendars=("Holidays",)), context)


def test_app_only_access_reads_the_mailboxs_calendar(
    em: Emulators, context: ConnectorContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = "board@example.net"
    em.graph.mailbox(room)
    em.identity.client_secrets["app-id"] = "s3cret"
    monkeypatch.setenv("KW_SECRET", "s3cret")
    account = outlook_account(
        em, "outlook_calendar", client_id="app-id", client_secret_env="KW_SECRET", mailbox=room
    )
    em.graph.add_event(
        room, uid="b", subject="Board", start=NOW - timedelta(days=1), organizer="chair@example.org"
    )
    assert list(meetings(poll(account, context))) == ["Board"]
    assert all(r.path.startswith(f"/v1.0/users/{room}/") for r in em.graph.requests)
