"""`sync`, `status`, `contacts`, `show`, `digest`, `rebuild` on a user's Maildir and calendar.

Each test writes real message files (and an .ics file) and a config, runs the real entry point
and checks what a user would look at: the exit code, the words printed and the JSON documents.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.cli_world import ME, NOW, World, ago, world

from keepwarm.store import Store

ALICE = "alice@friends.example"  # writes back and forth every ten days: warm
BOB = "bob@old.example"  # wrote weekly, then nothing for most of a year: cold
STRANGER = "stranger@else.example"  # wrote once, never answered: new


@pytest.fixture
def home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> World:
    """One Maildir holding Alice, Bob, a stranger, a mailing list and a message without a Date."""
    w = world(tmp_path, capsys, monkeypatch)
    w.maildir("home")
    w.exchange("Alice Doe", ALICE, [60, 50, 40, 30, 20, 10, 3])
    w.exchange("Bob Old", BOB, [300 - 7 * i for i in range(10)])
    w.mail(f"Stranger <{STRANGER}>", ME, ago(5), subject="Quick question")
    w.mail("News <news@lists.example>", ME, ago(2), headers=["List-Id: <news.lists.example>"])
    w.mail("Dave <dave@else.example>", ME, None, subject="no date on this one")
    w.write_config()
    return w


def _contacts(w: World, *args: str) -> dict[str, dict[str, Any]]:
    return {c["address"]: c for c in w.ok("contacts", "--format", "json", *args).json()}


def _accounts(w: World) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in w.ok("status", "--format", "json").json()["accounts"]}


def test_sync_stores_touchpoints_then_reads_only_what_is_new(home: World) -> None:
    first = home.ok("sync")
    # 7 + 10 exchanges of two messages, the stranger's and the list's; the undated one is skipped.
    assert "home: 36 read, 35 new touchpoints" in first.out
    assert "skipped 1 (no-date 1)" in first.out
    assert "filtered 1 (mailing-list 1)" in first.out
    assert set(_contacts(home)) == {ALICE, BOB, STRANGER}

    again = home.ok("sync")
    assert "home: 0 read, 0 new touchpoints" in again.out

    home.mail(f"Stranger <{STRANGER}>", ME, ago(1), subject="Following up")
    third = home.ok("sync")
    assert "home: 1 read, 1 new touchpoints" in third.out
    assert _contacts(home)[STRANGER]["touchpoints"] == 2

    (account,) = _accounts(home).values()
    assert account["last_sync"] == NOW.isoformat()
    assert account["error"] is None
    assert account["touchpoints"] == 36
    assert account["skipped"] == 1
    assert account["skipped_reasons"] == {"no-date": 1}
    assert account["filtered"] == {"mailing-list": 1}


MEETING = f"""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:lunch-1@test.example
DTSTAMP:{ago(20):%Y%m%dT%H%M%SZ}
DTSTART:{ago(10):%Y%m%dT%H%M%SZ}
DTEND:{ago(10 - 1 / 24):%Y%m%dT%H%M%SZ}
SUMMARY:Lunch
ORGANIZER;CN=Carol:mailto:carol@lunch.example
ATTENDEE;CN=Carol;PARTSTAT=ACCEPTED:mailto:carol@lunch.example
ATTENDEE;CN=Me;PARTSTAT=ACCEPTED:mailto:{ME}
END:VEVENT
END:VCALENDAR
"""


def test_a_broken_account_fails_alone_and_status_says_how_to_fix_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world(tmp_path, capsys, monkeypatch)
    w.maildir("away")
    w.calendar("calendar", MEETING)
    w.write_config()
    # The disk holding the Maildir is not mounted today.
    (tmp_path / "away").rename(tmp_path / "away-unmounted")

    run = w.cli("sync")
    assert run.code == 1
    assert "away" in run.err
    assert "does not exist" in run.err
    assert "Traceback" not in run.err
    assert "calendar: 1 read, 1 new touchpoints" in run.out
    assert _contacts(w)["carol@lunch.example"]["touchpoints"] == 1

    accounts = _accounts(w)
    away, calendar = accounts["away"], accounts["calendar"]
    assert away["last_sync"] is None
    assert (away["lag_seconds"], calendar["lag_seconds"]) == (None, 0)  # synced "now"
    assert "does not exist" in str(away["error"])
    assert away["fix"]
    assert calendar["error"] is None
    assert calendar["last_sync"] == NOW.isoformat()
    assert calendar["kind"] == "ics"

    text = w.ok("status").out
    assert f"away: {away['fix']}" in text

    # Mounted again: the next sync succeeds and the error is gone.
    (tmp_path / "away-unmounted").rename(tmp_path / "away")
    assert w.ok("sync").code == 0
    assert _accounts(w)["away"]["error"] is None


def test_sync_account_limits_the_sync_to_that_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world(tmp_path, capsys, monkeypatch)
    w.maildir("home")
    w.maildir("work")
    w.exchange("Alice Doe", ALICE, [20, 10], account="home")
    w.exchange("Wendy Work", "wendy@work.example", [20, 10], account="work")
    w.write_config()

    run = w.ok("sync", "--account", "work")
    assert "work:" in run.out
    assert "home:" not in run.out
    assert set(_contacts(w)) == {"wendy@work.example"}
    accounts = _accounts(w)
    assert accounts["home"]["last_sync"] is None
    assert accounts["work"]["last_sync"] == NOW.isoformat()

    unknown = w.cli("sync", "--account", "holiday")
    assert unknown.code == 2
    assert "holiday" in unknown.err
    assert "Traceback" not in unknown.err


def test_contacts_lists_everyone_with_the_documented_fields(home: World) -> None:
    home.ok("sync")
    contacts = _contacts(home)
    # The mailing list is filtered and the undated message skipped: neither makes a contact.
    assert set(contacts) == {ALICE, BOB, STRANGER}
    alice = contacts[ALICE]
    assert alice["addresses"] == [ALICE]
    assert alice["name"] == "Alice Doe"
    assert alice["status"] == "warm"
    # The last touch is ME's reply an hour after Alice's last message, in UTC.
    last = datetime.fromisoformat(str(alice["last_touch"]))
    assert last.tzinfo == UTC
    assert last == ago(3 - 1 / 24)
    assert alice["touchpoints"] == 14
    assert isinstance(alice["warmth"], float)
    assert alice["warmth"] > 0
    assert contacts[BOB]["status"] == "cold"
    # One message that was never answered is not a relationship (yet).
    assert contacts[STRANGER]["status"] == "new"

    cold = _contacts(home, "--status", "cold")
    assert set(cold) == {BOB}
    several = _contacts(home, "--status", "cold", "--status", "new")
    assert set(several) == {BOB, STRANGER}

    table = home.ok("contacts").out.splitlines()
    assert table[0].split()[:3] == ["STATUS", "NAME", "ADDRESS"]
    # Most at risk first.
    assert [line.split()[0] for line in table[1:]] == ["cold", "warm", "new"]
    assert any(ALICE in line and "Alice Doe" in line for line in table)


def test_show_gives_one_contact_with_the_newest_touchpoints_first(home: World) -> None:
    home.ok("sync")
    # Addresses are matched as mail is delivered: the domain and case do not matter.
    doc = home.ok("show", "Alice@Friends.EXAMPLE", "--format", "json").json()
    assert doc["address"] == ALICE
    assert doc["status"] == "warm"
    timeline = doc["timeline"]
    assert len(timeline) == 14
    times = [datetime.fromisoformat(t["occurred_at"]) for t in timeline]
    assert times == sorted(times, reverse=True)
    assert times[0] == ago(3 - 1 / 24)
    assert [t["direction"] for t in timeline[:2]] == ["out", "in"]
    assert all(t["account"] == "home" for t in timeline)

    limited = home.ok("show", ALICE, "--limit", "3", "--format", "json").json()
    assert len(limited["timeline"]) == 3

    text = home.ok("show", ALICE).out
    assert text.startswith(f"Alice Doe <{ALICE}>")
    assert "status:  warm" in text
    assert f"{ago(3 - 1 / 24):%Y-%m-%d %H:%M}" in text

    missing = home.cli("show", "nobody@nowhere.example")
    assert missing.code == 1
    assert "nobody@nowhere.example" in missing.err
    assert missing.out == ""


def test_digest_prints_in_every_format(home: World) -> None:
    home.ok("sync")
    doc = json.loads(home.ok("digest", "--format", "json").out)
    assert BOB in [c["address"] for c in doc["sections"]["going_cold"]]
    assert {"going_cold", "owed_replies", "sync_health"} <= set(doc["sections"])
    # Alice had the last word from ME; the stranger is not (yet) a relationship: nothing is owed.
    assert doc["sections"]["owed_replies"] == []
    text = home.ok("digest", "--format", "text").out
    assert "Bob Old" in text
    html = home.ok("digest", "--preview", "--format", "html").out
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "Bob Old" in html
    assert home.ok("digest").out == text


def test_rebuild_replays_the_log_into_the_same_contacts(home: World) -> None:
    home.ok("sync")
    before = home.ok("contacts", "--format", "json").json()
    run = home.ok("rebuild")
    assert "rebuilt 3 contacts from 35 touchpoints" in run.out
    assert home.ok("contacts", "--format", "json").json() == before


def test_usage_mistakes_exit_2_without_a_traceback(
    home: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    mistakes = [
        ("--no-such-option",),
        ("frobnicate",),
        ("sync", "--bogus"),
        ("contacts", "--status", "lukewarm"),
        ("show",),
        ("show", ALICE, "--limit", "-1"),
        ("tag", ALICE, " "),
        ("--log-level", "chatty", "contacts"),
    ]
    for args in mistakes:
        run = home.cli(*args)
        assert run.code == 2, args
        assert "Traceback" not in run.err
    for name in ("KEEPWARM_NOW", "KEEPWARM_LOG_LEVEL"):
        with monkeypatch.context() as env:
            env.setenv(name, "garbage")
            run = home.cli("contacts")
        assert run.code == 2, name
        assert name in run.err
        assert "garbage" in run.err
        assert "Traceback" not in run.err


def test_disabled_accounts_are_not_synced_and_status_says_so(home: World) -> None:
    home.config.write_text(
        home.config.read_text(encoding="utf-8").replace(
            'kind = "maildir"', 'kind = "maildir"\nenabled = false'
        ),
        encoding="utf-8",
    )
    run = home.ok("sync")
    assert "nothing to sync" in run.err
    assert "disabled" in home.ok("status").out
    # Named on the command line, a disabled account is read all the same.
    assert "home: 36 read" in home.ok("sync", "--account", "home").out


def test_status_names_the_worker_holding_each_account(home: World) -> None:
    home.ok("sync")
    with Store.open(f"sqlite:///{home.db}") as store:
        store.leases.acquire("hostA:41", ["home"], limit=5, duration=timedelta(minutes=2), now=NOW)
        store.leases.heartbeat("hostA:41", 7, duration=timedelta(minutes=2), now=NOW)
    status = home.ok("status", "--format", "json").json()
    assert status["accounts"][0]["worker"] == "hostA:41"
    assert status["workers"] == ["hostA:41"]
    text = home.ok("status").out
    assert "hostA:41" in text
