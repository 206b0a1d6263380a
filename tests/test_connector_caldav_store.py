"""CalDAV through the whole sync into a real store: a deleted or cancelled event changes only
future meetings, and never takes back a touchpoint that happened."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from tests.cli_runner import run_cli
from tests.servers.radicale import NOW, DavUser, dav_user, ics, radicale, vevent

from keepwarm.config.schema import Config, OwnerConfig, StoreConfig
from keepwarm.daemon.sync import sync_all
from keepwarm.store import Store

__all__ = ["dav_user", "radicale"]  # fixtures: imported so that pytest finds them


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_deleted_and_cancelled_events_only_change_the_future(
    dav_user: DavUser, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'keepwarm.db'}"
    config = Config(
        owner=OwnerConfig(addresses=("me@example.net",)),
        store=StoreConfig(url=url),
        accounts=(dav_user.account,),
    )
    work = dav_user.calendar("work")
    first = NOW - timedelta(days=15)  # weekly: 15, 8 and 1 day ago, in 6 and 13 days
    series = vevent("weekly@x", first, "RRULE:FREQ=WEEKLY;COUNT=5")
    work.save_event(ics(series))
    for uid, days in (("past@x", -2), ("future@x", 2), ("stays@x", 3)):
        work.save_event(ics(vevent(uid, NOW + timedelta(days=days))))
    store = Store.open(url)
    try:

        def sync(at: datetime) -> tuple[set[str], set[str]]:
            [result] = sync_all(store, config, now=lambda: at)
            assert result.ok, result.error
            logged = {t.natural_key for t in store.iter_touchpoints()}
            return logged, {t.natural_key for t in store.planned_meetings()}

        weekly = [f"evt:weekly@x:{stamp(first + timedelta(days=7 * i))}" for i in range(5)]
        logged, planned = sync(NOW)
        assert logged == {"evt:past@x:", *weekly[:3]}
        assert planned == {"evt:future@x:", "evt:stays@x:", *weekly[3:]}

        # The past meeting and a future one are deleted, the next weekly instance cancelled.
        work.event_by_uid("past@x").delete()
        work.event_by_uid("future@x").delete()
        cancelled = vevent(
            "weekly@x", first + timedelta(days=21),
            f"RECURRENCE-ID:{first + timedelta(days=21):%Y%m%dT%H%M%SZ}\r\nSTATUS:CANCELLED",
        )  # fmt: skip
        work.save_event(ics(series, cancelled))
        logged, planned = sync(NOW + timedelta(hours=1))
        assert logged == {"evt:past@x:", *weekly[:3]}  # what happened stays
        assert planned == {"evt:stays@x:", weekly[4]}

        # Time passes: the kept meeting happens and joins the log.
        logged, planned = sync(NOW + timedelta(days=4))
        assert logged == {"evt:past@x:", "evt:stays@x:", *weekly[:3]}
        assert planned == {weekly[4]}
        counterparts = {t.counterpart for t in store.iter_touchpoints()}
        assert counterparts == {"alice@example.org"}
    finally:
        store.close()


def test_keepwarm_sync_and_status_with_a_caldav_account(
    dav_user: DavUser, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dav_user.calendar("work").save_event(ics(vevent("met@x", NOW - timedelta(days=2))))
    dav_user.calendar("home").save_event(ics(vevent("soon@x", NOW + timedelta(days=2))))
    config = tmp_path / "keepwarm.toml"
    config.write_text(
        f'[owner]\naddresses = ["me@example.net"]\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "kw.db"}"\n'
        f'[[accounts]]\nname = "dav"\nkind = "caldav"\nurl = "{dav_user.server.url}"\n'
        f'username = "{dav_user.name}"\npassword_file = "{dav_user.account.password_file}"\n'
    )
    assert run_cli(capsys, "--config", str(config), "config", "check").code == 0
    assert run_cli(capsys, "--config", str(config), "sync").code == 0
    [account] = run_cli(capsys, "--config", str(config), "status", "--format", "json").json()[
        "accounts"
    ]
    assert (account["kind"], account["error"], account["touchpoints"]) == ("caldav", None, 1)
    [alice] = run_cli(capsys, "--config", str(config), "contacts", "--format", "json").json()
    assert alice["address"] == "alice@example.org"
    assert alice["next_meeting"] is not None  # the planned meeting in two days
