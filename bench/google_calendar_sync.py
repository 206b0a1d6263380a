"""Google Calendar: three ways to keep a calendar in sync, measured on one generated calendar.

`syncToken` cannot be combined with `timeMin`/`timeMax` (issue 4 asks to measure and choose):

  W  windowed reads: every poll reads `now - backfill_days .. now + 365 d` with
     `singleEvents=true` (Google expands the series); no token, so no way to see "no change".
  T  token reads of series expanded locally: the first sync reads every event of the calendar's
     whole history (`singleEvents=false`, no time bounds), expands series with
     recurring-ical-events (keepwarm's ICS expander), and keeps the `nextSyncToken`; a poll asks
     what changed (one call). A changed series needs its exceptions to be expanded right, and a
     complete future needs the other series too, so a change means reading it all again.
  H  keepwarm's connector: the token only to learn whether and where something changed (one
     call); then a windowed `singleEvents=true` read from the earliest changed start to the
     horizon (the first sync reads the whole window once).

For each: calls, bytes served and client seconds for a first sync, a poll with nothing new, a
poll after one future meeting moved, and a poll after a weekly series was renamed; and whether
W and T agree instance for instance (the emulator expands with dateutil, T with
recurring-ical-events: two independent expansions). Usage:

    .venv/bin/python bench/google_calendar_sync.py [--years 3]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from _common import line, machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' emulator

from tests.emulators.google import GoogleEmulator
from tests.emulators.google_calendar import Calendar, timed

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext
from keepwarm.connectors.google import service
from keepwarm.connectors.google.calendar import GoogleCalendarConnector
from keepwarm.connectors.google.calendar_events import EVENT_FIELDS, to_meeting
from keepwarm.connectors.google.quota import Pacer
from keepwarm.connectors.icalendar_meetings import meetings_from_calendar

OWNER = "sam.rivera@home.example"
ZONE = "Europe/Berlin"
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
HORIZON = timedelta(days=365)
Key = tuple[str, str]


def generate(cal: Calendar, years: int, rng: random.Random) -> dict[str, Any]:
    """A busy work calendar: one-off meetings, weekly series with exceptions, standups."""
    people = [f"p{i}@corp.example" for i in range(120)]

    def guests(n: int) -> list[dict[str, str]]:
        chosen = rng.sample(people, n)
        return [{"email": OWNER, "responseStatus": "accepted"}] + [
            {"email": p, "responseStatus": rng.choice(("accepted", "tentative", "needsAction"))}
            for p in chosen
        ]

    start = NOW - timedelta(days=365 * years)
    for i in range(int(900 * years)):  # about four one-off meetings a working day
        when = start + timedelta(days=rng.uniform(0, 365 * years + 180))
        when = when.replace(minute=rng.choice((0, 30)), second=0, microsecond=0)
        cal.put(
            event(f"one-{i}@corp.example", when, 30, rng.choice(people), guests(rng.randint(1, 6)))
        )
    weekly = None
    for s in range(10 * years):  # weekly series, a third of them still running
        first = (start + timedelta(days=rng.uniform(0, 365 * years))).replace(
            hour=9 + s % 8, minute=0, second=0, microsecond=0
        )
        rule = "RRULE:FREQ=WEEKLY" + ("" if s % 3 == 0 else f";COUNT={rng.randint(10, 60)}")
        series = event(f"series-{s}@corp.example", first, 45, OWNER, guests(rng.randint(1, 4)))
        master = cal.put({**series, "recurrence": [rule]})
        weekly = weekly or (master if s % 3 == 0 else None)
        for k in rng.sample(range(1, 10), 4):  # two moved, two cancelled instances
            original = first.astimezone(ZoneInfo(ZONE)) + timedelta(weeks=k)  # wall clock
            exception = {"id": f"{master['id']}_{original.astimezone(UTC):%Y%m%dT%H%M%SZ}",
                         "recurringEventId": master["id"], "iCalUID": master["iCalUID"],
                         "originalStartTime": timed(original, ZONE)}  # fmt: skip
            if k % 2:
                moved = original + timedelta(hours=2)
                cal.put({**series, **exception, **event("", moved, 45, OWNER, [])})
            else:
                cal.put({**exception, "status": "cancelled"})
    for d in range(2):  # daily standups, running for years
        # On a Monday: a DTSTART the rule does not produce is an instance for RFC 5545 (and
        # recurring-ical-events) but not for dateutil (the emulator): expanders differ there.
        monday = start + timedelta(days=30 * d - start.weekday())
        first = monday.replace(hour=8, minute=45, second=0, microsecond=0)
        cal.put({"iCalUID": f"standup-{d}@corp.example", "summary": "standup",
                 "start": timed(first, ZONE), "end": timed(first + timedelta(minutes=15), ZONE),
                 "recurrence": ["RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR"],
                 "organizer": {"email": people[d]}, "attendees": guests(6)})  # fmt: skip
    assert weekly is not None
    return weekly


def event(
    uid: str, when: datetime, minutes: int, organizer: str, guests: list[dict[str, str]]
) -> dict[str, Any]:
    """An event resource in ZONE (an empty uid: only the times and people)."""
    found: dict[str, Any] = {
        "start": timed(when, ZONE),
        "end": timed(when + timedelta(minutes=minutes), ZONE),
    }
    if uid:
        found |= {"iCalUID": uid, "summary": uid.split("@")[0], "organizer": {"email": organizer},
                  "attendees": guests}  # fmt: skip
    return found


def pages(api: service.Api, **params: Any) -> Iterator[dict[str, Any]]:
    token = None
    while True:
        request = api.resource.events().list(
            calendarId="primary", maxResults=2500, pageToken=token, **params
        )
        page = api.call(request, "calendar.events.list")
        yield page
        token = page.get("nextPageToken")
        if not token:
            return


def windowed(api: service.Api, low: datetime) -> set[Key]:
    """W's read: Google's instances in the window, turned into meetings."""
    found: set[Key] = set()
    for page in pages(api, singleEvents=True, timeMin=_z(low), timeMax=_z(NOW + HORIZON),
                      fields=EVENT_FIELDS):  # fmt: skip
        for event in page.get("items", []):
            meeting = to_meeting(event, "primary", ZONE)
            if meeting is not None and not hasattr(meeting, "reason"):
                found.add((meeting.uid, meeting.recurrence_id or _z(meeting.start)))  # type: ignore[union-attr]
    return found


def everything(api: service.Api, low: datetime) -> tuple[set[Key], str]:
    """T's read: every event of the calendar, expanded locally; and the sync token."""
    events: list[dict[str, Any]] = []
    token = ""
    for page in pages(api, fields=EVENT_FIELDS.replace("eventType", "eventType,recurrence")):
        events += page.get("items", [])
        token = page.get("nextSyncToken", token)
    meetings, _ = meetings_from_calendar(
        to_ical(events), source="primary", window_start=low, window_end=NOW + HORIZON
    )
    found = {(m.uid, m.recurrence_id or _z(m.start)) for m in meetings if m.status != "cancelled"}
    return found, token


def to_ical(events: list[dict[str, Any]]) -> bytes:
    """API events as iCalendar: series with their rules, exceptions with RECURRENCE-ID."""
    out = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//keepwarm bench//EN"]
    for event in events:
        if event.get("status") == "cancelled" and "recurringEventId" not in event:
            continue
        out += ["BEGIN:VEVENT", f"UID:{event['iCalUID']}"]
        if "originalStartTime" in event:
            out.append(f"RECURRENCE-ID;{_ical(event['originalStartTime'])}")
        if event.get("status") == "cancelled":
            out.append("STATUS:CANCELLED")
            event = {**event, "start": event["originalStartTime"]}
        series = "recurrence" in event or "recurringEventId" in event
        out.append(f"DTSTART;{_ical(event['start'], series=series)}")
        if "end" in event:
            out.append(f"DTEND;{_ical(event['end'], series=series)}")
        out += event.get("recurrence", [])
        if "organizer" in event:
            out.append(f"ORGANIZER:mailto:{event['organizer']['email']}")
        for guest in event.get("attendees", []):
            status = (
                guest.get("responseStatus", "needsAction")
                .upper()
                .replace("NEEDSACTION", "NEEDS-ACTION")
            )
            out.append(f"ATTENDEE;PARTSTAT={status}:mailto:{guest['email']}")
        out.append("END:VEVENT")
    out.append("END:VCALENDAR")
    return ("\r\n".join(out) + "\r\n").encode()


def _ical(value: dict[str, str], *, series: bool = True) -> str:
    if "date" in value:
        return f"VALUE=DATE:{value['date'].replace('-', '')}"
    if not series:  # a one-off: UTC, unambiguous even in the hour clocks go back
        moment = datetime.fromisoformat(value["dateTime"]).astimezone(UTC)
        return f"VALUE=DATE-TIME:{moment:%Y%m%dT%H%M%SZ}"
    moment = datetime.fromisoformat(value["dateTime"]).astimezone(
        ZoneInfo(value.get("timeZone", ZONE))
    )
    return f"TZID={moment.tzinfo}:{moment:%Y%m%dT%H%M%S}"


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def measure(emu: GoogleEmulator, fn: Callable[[], Any]) -> tuple[dict[str, float], Any]:
    emu.reset_counts()
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    calls = sum(emu.calls.values())
    return {"calls": calls, "kb": emu.bytes_out / 1024, "s": seconds}, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=3)
    args = parser.parse_args()
    print(f"google calendar sync strategies, {args.years} years of history; {machine()}")
    rng = random.Random(7)
    with GoogleEmulator() as emu, tempfile.TemporaryDirectory() as tmp:
        cal = emu.user(OWNER).calendar
        cal.time_zone = ZONE
        weekly = generate(cal, args.years, rng)
        credentials = Path(tmp) / "credentials.json"
        credentials.write_text(json.dumps(emu.oauth.authorized_user_info(OWNER)))
        account = AccountConfig(
            name="bench", kind="google_calendar", endpoint=emu.base,
            credentials_file=str(credentials), backfill_days=365 * args.years, rate_limit=1e9,
        )  # fmt: skip
        low = NOW - timedelta(days=account.backfill_days)
        api = service.calendar(account, Path(tmp), None, Pacer.for_rate(1e9))
        context = ConnectorContext(state_dir=Path(tmp), now=lambda: NOW)
        connector = GoogleCalendarConnector(account, context)
        stored = sum(1 for e in cal.events.values() if "recurringEventId" not in e)
        line("calendar", f"{len(cal.events):,} stored events ({stored:,} series and one-offs)")
        rows: dict[str, dict[str, dict[str, float]]] = {"W": {}, "T": {}, "H": {}}
        rows["W"]["first sync"], w_first = measure(emu, lambda: windowed(api, low))
        rows["T"]["first sync"], (t_first, token) = measure(emu, lambda: everything(api, low))
        rows["H"]["first sync"], h_batches = measure(emu, lambda: list(connector.poll(None)))
        cursor = h_batches[-1].cursor
        agree = w_first == t_first
        line("instances in the window", f"W {len(w_first):,}, T {len(t_first):,}, H "
             f"{sum(len(b.items) + len(b.skipped) for b in h_batches):,}")  # fmt: skip
        line("W and T agree", f"{agree} ({len(w_first ^ t_first)} instances differ)")

        def t_poll() -> Any:
            delta = next(pages(api, syncToken=token, fields="items(id),nextSyncToken"))
            return everything(api, low) if delta.get("items") else None

        def h_poll() -> Any:
            return list(connector.poll(cursor))

        rows["W"]["no change"], _ = measure(emu, lambda: windowed(api, low))
        rows["T"]["no change"], _ = measure(emu, t_poll)
        rows["H"]["no change"], _ = measure(emu, h_poll)
        future = next(e for e in cal.events.values() if e["iCalUID"].startswith("one-")
                      and e["start"]["dateTime"] > NOW.isoformat())  # fmt: skip
        moved = datetime.fromisoformat(future["start"]["dateTime"]) + timedelta(days=1)
        cal.put(
            {**future, "start": timed(moved, ZONE), "end": timed(moved + timedelta(hours=1), ZONE)}
        )
        for name, fn in (("W", lambda: windowed(api, low)), ("T", t_poll), ("H", h_poll)):
            rows[name]["one meeting moved"], _ = measure(emu, fn)
        cal.put({**weekly, "summary": "weekly (renamed)"})
        for name, fn in (("W", lambda: windowed(api, low)), ("T", t_poll), ("H", h_poll)):
            rows[name]["series renamed"], _ = measure(emu, fn)
        for name, phases in rows.items():
            print(f"-- {name}")
            for phase, figures in phases.items():
                calls, kb, seconds = figures["calls"], figures["kb"], figures["s"]
                line(phase, f"{calls:>3.0f} calls {kb:>9,.0f} KB {seconds:>7.2f} s")
        for phase in rows["H"]:
            h, w, t = (rows[name][phase] for name in ("H", "W", "T"))
            line(
                f"H / W, H / T: {phase}",
                f"KB {h['kb'] / max(w['kb'], 1e-9):.3f}, {h['kb'] / max(t['kb'], 1e-9):.3f}; "
                f"s {h['s'] / w['s']:.2f}, {h['s'] / t['s']:.2f}",
            )
        api.close()
        connector.close()


if __name__ == "__main__":
    main()
