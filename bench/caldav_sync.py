"""CalDAV benchmark: the connector against a private Radicale holding 10,000 events and 50
recurring series over three years, in two calendars.

Issue 6: time the first sync and an unchanged poll; an unchanged poll is one request per
calendar (counted on the server, from Radicale's request log). Usage:

    .venv/bin/python bench/caldav_sync.py [--rounds 3] [--no-end-to-end]

Measured, each in a fresh child process (its own peak RSS), best of `rounds`:
- reference: one raw calendar-query REPORT per calendar over the same window, through the same
  HTTP client (the caldav library's DAVClient), answer read and dropped. It is what any CalDAV
  client pays to get the data; most of it is Radicale filtering its items.
- first sync: `CaldavConnector.poll(None)` to the end: discovery from the principal, the
  calendar-query of each calendar over the backfill window and the next 365 days, and local
  expansion of every object into meetings.
- unchanged poll: `poll(cursor)` with the first sync's cursor: one sync-collection REPORT per
  calendar, nothing to read.
- a change: one event edited, then `poll(cursor)`: the sync REPORTs, a calendar-multiget of the
  changed object and the future window of every calendar (the batch holds every future meeting).
Also once: `keepwarm sync` end to end (connector, detection, store, projection) into a new
SQLite store.

The calendars are made once through the caldav client (MKCALENDAR) and their objects written
straight into Radicale's storage (a PUT per object takes many minutes at this size), then
kept with Radicale's caches under /tmp/keepwarm-bench between runs; a first raw query before
the measurements lets Radicale build its item caches.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import bench_dir, child_report, line, machine, memory_mb, run_child

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.servers.radicale

from tests.servers.radicale import Radicale

from keepwarm.config.schema import AccountConfig, Config, OwnerConfig, StoreConfig
from keepwarm.connectors.base import ConnectorContext
from keepwarm.connectors.caldav_connector import CaldavConnector

GENERATOR = 1
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
EVENTS, SERIES = 10_000, 50
CALENDARS = {"work": 0.7, "home": 0.3}  # share of the events in each calendar
USER, PASSWORD, OWNER = "sam", "bench-password", "sam.rivera@home.example"
BERLIN = """BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r
TZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r
END:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r
DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r
END:VTIMEZONE"""


def calendars() -> dict[str, list[tuple[str, str]]]:
    """The generated calendars: (object name, iCalendar text) per collection name."""
    rng = random.Random(GENERATOR)
    people = [f"person{i}@{rng.choice(('acme.example', 'mail.example'))}" for i in range(400)]
    start = NOW - timedelta(days=3 * 365)
    objects: dict[str, list[tuple[str, str]]] = {name: [] for name in CALENDARS}
    names = list(CALENDARS)
    weights = list(CALENDARS.values())
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//keepwarm bench//EN\r\n" + BERLIN
    for i in range(EVENTS + SERIES):
        if i < EVENTS:
            # Three years back and 90 days ahead, in working hours, some of them all-day.
            days, hour = rng.randrange(3 * 365 + 90), rng.randrange(7, 18)
            at = start + timedelta(days=days, hours=hour)
            name, text = f"ev{i}", _event(f"ev{i}", at, rng, people)
            calendar = rng.choices(names, weights)[0]
        else:
            at = start + timedelta(days=rng.randrange(3 * 365), hours=rng.randrange(8, 17))
            name = f"series{i - EVENTS}"
            text, calendar = _series(name, at, rng, people), names[i % 2]
        objects[calendar].append((f"{name}.ics", f"{head}\r\n{text}\r\nEND:VCALENDAR\r\n"))
    return objects


def _people(rng: random.Random, people: list[str]) -> list[str]:
    organizer = rng.choice([OWNER, *rng.sample(people, 3)])
    lines = [f"ORGANIZER;CN=Organizer:mailto:{organizer}"]
    for person in {OWNER, *rng.sample(people, rng.randint(1, 4))}:
        status = rng.choice(("ACCEPTED", "ACCEPTED", "TENTATIVE", "DECLINED", "NEEDS-ACTION"))
        lines.append(f"ATTENDEE;CN={person.split('@')[0]};PARTSTAT={status}:mailto:{person}")
    return lines


def _event(uid: str, at: datetime, rng: random.Random, people: list[str]) -> str:
    if rng.random() < 0.05:
        when = [
            f"DTSTART;VALUE=DATE:{at:%Y%m%d}",
            f"DTEND;VALUE=DATE:{at + timedelta(days=1):%Y%m%d}",
        ]
    else:
        end = at + timedelta(minutes=rng.choice((30, 45, 60, 90)))
        when = [
            f"DTSTART;TZID=Europe/Berlin:{at:%Y%m%dT%H%M%S}",
            f"DTEND;TZID=Europe/Berlin:{end:%Y%m%dT%H%M%S}",
        ]
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}@bench.example",
        "DTSTAMP:20240101T000000Z",
        *when,
        f"SUMMARY:Meeting {uid}",
        "DESCRIPTION:Agenda: " + "details " * rng.randint(5, 60),
        *_people(rng, people),
        "END:VEVENT",
    ]
    return "\r\n".join(lines)


def _series(uid: str, at: datetime, rng: random.Random, people: list[str]) -> str:
    rule = rng.choice(
        (
            "FREQ=WEEKLY",
            "FREQ=WEEKLY;INTERVAL=2",
            "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
            "FREQ=MONTHLY;BYDAY=1TU",
        )
    )
    if rng.random() < 0.5:
        rule += f";UNTIL={at + timedelta(days=rng.randrange(90, 900)):%Y%m%dT%H%M%SZ}"
    first = f"{at:%Y%m%dT%H%M%S}"
    moved = at + timedelta(days=28)
    common = ["DTSTAMP:20240101T000000Z", *_people(rng, people)]
    master = [
        "BEGIN:VEVENT",
        f"UID:{uid}@bench.example",
        f"SUMMARY:Series {uid}",
        f"DTSTART;TZID=Europe/Berlin:{first}",
        f"DTEND;TZID=Europe/Berlin:{at + timedelta(hours=1):%Y%m%dT%H%M%S}",
        f"RRULE:{rule}",
        f"EXDATE;TZID=Europe/Berlin:{at + timedelta(days=14):%Y%m%dT%H%M%S}",
        *common,
        "END:VEVENT",
    ]
    override = [
        "BEGIN:VEVENT",
        f"UID:{uid}@bench.example",
        f"SUMMARY:Series {uid} (moved)",
        f"RECURRENCE-ID;TZID=Europe/Berlin:{moved:%Y%m%dT%H%M%S}",
        f"DTSTART;TZID=Europe/Berlin:{moved + timedelta(hours=2):%Y%m%dT%H%M%S}",
        f"DTEND;TZID=Europe/Berlin:{moved + timedelta(hours=3):%Y%m%dT%H%M%S}",
        *common,
        "END:VEVENT",
    ]
    return "\r\n".join(master + override)


def server_root() -> Path:
    return bench_dir() / f"caldav-g{GENERATOR}"


def start_server() -> Radicale:
    """Radicale on the kept storage; the calendars are made on the first run."""
    import caldav

    root = server_root()
    done = root / ".complete"
    (root / "radicale.log").unlink(missing_ok=True)
    server = Radicale({USER: PASSWORD}, root=root).start()
    if done.exists():
        return server
    try:
        print(f"writing {EVENTS:,} events and {SERIES} series (once) ...", flush=True)
        client = caldav.DAVClient(server.url, username=USER, password=PASSWORD, timeout=600)
        principal = client.principal()
        for name, objects in calendars().items():
            principal.make_calendar(name=name.title(), cal_id=name)
            # Object files straight into Radicale's storage, as a sync tool would leave them:
            # a PUT per object (or of the whole calendar) takes many minutes at this size.
            folder = server.storage / "collection-root" / USER / name
            for filename, text in objects:
                (folder / filename).write_text(text, newline="")
        done.write_text("ok\n")
    except BaseException:
        server.stop()
        raise
    return server


def account(url: str) -> AccountConfig:
    secret = server_root() / "password"
    secret.write_text(PASSWORD)
    secret.chmod(0o600)
    return AccountConfig(
        name="dav", kind="caldav", url=url, username=USER, password_file=str(secret), timeout=600
    )


def child(mode: str, url: str, cursor_file: str) -> None:
    """One measured run in this fresh process; prints its figures as JSON."""
    started = time.perf_counter()
    if mode == "reference":
        from caldav.davclient import DAVClient

        from keepwarm.connectors.caldav_xml import calendar_query

        client = DAVClient(url, username=USER, password=PASSWORD, timeout=600)
        body = calendar_query(NOW - timedelta(days=1095), NOW + timedelta(days=365), expand=False)
        size = sum(
            len(client.report(f"{url}{USER}/{name}/", body, depth=1).raw) for name in CALENDARS
        )
        child_report(seconds=time.perf_counter() - started, meetings=0, bytes=size, **memory_mb())
        return
    if mode == "end-to-end":
        from keepwarm.daemon.sync import sync_all
        from keepwarm.store import Store

        store_url = f"sqlite:///{cursor_file}"
        config = Config(
            owner=OwnerConfig(addresses=(OWNER,)),
            store=StoreConfig(url=store_url),
            accounts=(account(url),),
        )
        store = Store.open(store_url)
        [result] = sync_all(store, config, now=lambda: NOW)
        store.close()
        child_report(
            seconds=time.perf_counter() - started,
            meetings=result.items,
            touchpoints=result.new,
            **memory_mb(),
        )
        return
    cursor = Path(cursor_file).read_text() if mode != "first" else None
    at = NOW + timedelta(minutes={"first": 0, "unchanged": 15}.get(mode, 30))
    connector = CaldavConnector(account(url), ConnectorContext(Path("/tmp"), now=lambda: at))
    [batch] = list(connector.poll(cursor))
    if mode == "first":
        Path(cursor_file).write_text(batch.cursor or "")
    child_report(
        seconds=time.perf_counter() - started,
        meetings=len(batch.items),
        skipped=len(batch.skipped),
        same=batch.cursor == cursor,
        **memory_mb(),
    )


def edit_one_event(server: Radicale) -> None:
    """Rename one event, as a phone would: a PUT of the whole object (the data stays the same
    size from run to run)."""
    import caldav

    client = caldav.DAVClient(server.url, username=USER, password=PASSWORD, timeout=600)
    [stored] = (server.storage / "collection-root" / USER).glob("*/ev1.ics")
    text = re.sub(r"SUMMARY:[^\r\n]*", f"SUMMARY:Meeting ev1 ({time.time_ns()})",
                  stored.read_bytes().decode())  # fmt: skip
    url = f"{server.url}{USER}/{stored.parent.name}/ev1.ics"
    answer = client.put(url, text, {"Content-Type": "text/calendar"})
    assert answer.status in (201, 204), answer.status


def measure(server: Radicale, mode: str, cursor_file: Path, rounds: int) -> tuple[dict, list]:
    best: dict = {}
    requests: list = []
    for _ in range(rounds):
        if mode == "change":
            edit_one_event(server)
        mark = server.mark()
        figures = run_child(__file__, [mode, server.url, str(cursor_file)])
        if not best or figures["seconds"] < best["seconds"]:
            best, requests = figures, server.requests_since(mark)
    return best, requests


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-end-to-end", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    server = start_server()
    try:
        cursor_file = server_root() / "cursor.json"
        run_child(__file__, ["reference", server.url, str(cursor_file)])  # warm Radicale's caches
        results = {
            mode: measure(server, mode, cursor_file, args.rounds)
            for mode in ("reference", "first", "unchanged", "change")
        }
        if not args.no_end_to_end:
            db = server_root() / "keepwarm.db"
            db.unlink(missing_ok=True)
            results["end-to-end"] = measure(server, "end-to-end", db, 1)
    finally:
        server.stop()
    reference = results["reference"][0]["seconds"]
    print(
        f"CalDAV sync, {EVENTS:,} events + {SERIES} series in {len(CALENDARS)} calendars "
        f"(Radicale), best of {args.rounds} — {machine()}"
    )
    line(
        "reference: raw calendar-query",
        f"{reference:.2f} s, {results['reference'][0]['bytes'] / 1e6:.1f} MB",
    )
    for mode, label in (
        ("first", "first sync"),
        ("unchanged", "unchanged poll"),
        ("change", "one event changed"),
        ("end-to-end", "keepwarm sync, end to end"),
    ):
        if mode not in results:
            continue
        figures, requests = results[mode]
        methods = sorted({m for m, _ in requests})
        counted = ", ".join(f"{sum(m == x for m, _ in requests)} {x}" for x in methods)
        line(
            label,
            f"{figures['seconds']:.2f} s = {figures['seconds'] / reference:.2f}x reference, "
            f"{figures['meetings']:,} meetings, {len(requests)} requests ({counted}), "
            f"peak RSS {figures['peak']:.0f} MB",
        )
    unchanged = results["unchanged"][1]
    assert results["unchanged"][0]["same"], "an unchanged poll changed the cursor"
    assert len(unchanged) == len(CALENDARS), f"unchanged poll sent {unchanged}"
    print(json.dumps({mode: figures for mode, (figures, _) in results.items()}))


if __name__ == "__main__":
    main()
