"""`keepwarm show` and `keepwarm digest` read the status changes the status check recorded."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from tests.cli_world import NOW, World, world

from keepwarm.config.load import load
from keepwarm.daemon.status_check import record_status_changes
from keepwarm.store import Store

BOB = "bob@old.example"  # wrote weekly for three months, until five days ago
COOLING = NOW + timedelta(days=17)
COLD = NOW + timedelta(days=38)


@pytest.fixture
def home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> World:
    """Bob's Maildir, synced, then checked as the daemon would as weeks pass without a word:
    the commands then run on the day of the last check."""
    w = world(tmp_path, capsys, monkeypatch)
    w.maildir("home")
    w.exchange("Bob Old", BOB, [5 + 7 * i for i in range(12)])
    w.write_config()
    w.ok("sync")
    config = load(w.config)
    with Store.open(f"sqlite:///{w.db}") as store:
        for when in (NOW, COOLING, COLD):  # warm, cooling, cold
            record_status_changes(store, config, when)
    monkeypatch.setenv("KEEPWARM_NOW", COLD.isoformat())
    return w


def test_show_lists_the_status_history_newest_first(home: World) -> None:
    doc = home.ok("show", BOB, "--format", "json").json()
    assert doc["status"] == "cold"
    history = [(e["old"], e["new"], datetime.fromisoformat(e["at"])) for e in doc["status_history"]]
    assert history == [("cooling", "cold", COLD), ("warm", "cooling", COOLING), (None, "warm", NOW)]
    assert {e["address"] for e in doc["status_history"]} == {BOB}
    limited = home.ok("show", BOB, "--limit", "1", "--format", "json").json()
    assert [e["new"] for e in limited["status_history"]] == ["cold"]

    text = home.ok("show", BOB).out.splitlines()
    start = next(i for i, line in enumerate(text) if line.startswith("  history: "))
    assert text[start : start + 3] == [
        f"  history: {COLD:%Y-%m-%d %H:%M}  cooling → cold",
        f"           {COOLING:%Y-%m-%d %H:%M}  warm → cooling",
        f"           {NOW:%Y-%m-%d %H:%M}  warm (first recorded)",
    ]


def test_show_says_when_no_status_was_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world(tmp_path, capsys, monkeypatch)
    w.maildir("home")
    w.exchange("Bob Old", BOB, [43, 50])
    w.write_config()
    w.ok("sync")
    # As right after an upgrade, before any status check has run.
    db = sqlite3.connect(w.db)
    try:
        with db:
            db.execute("DELETE FROM status_events")
            db.execute("DELETE FROM contact_status")
    finally:
        db.close()
    assert "  history: no status recorded yet" in w.ok("show", BOB).out
    assert w.ok("show", BOB, "--format", "json").json()["status_history"] == []


def test_the_digest_marks_bob_newly_cold(home: World) -> None:
    doc = json.loads(home.ok("digest", "--format", "json").out)
    [bob] = doc["sections"]["going_cold"]
    assert (bob["address"], bob["news"], bob["previous_status"]) == (BOB, "newly cold", "cooling")
    assert doc["news"]["going_cold"] == 1
    assert "(1 new)" in doc["headline"]
    text = home.ok("digest").out
    assert "newly cold since" in text
