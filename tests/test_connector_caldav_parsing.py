"""What servers other than Radicale answer, as text: calendar listings of Nextcloud, iCloud and
Fastmail (shared, subscribed, task-only, trash), sync reports with removals and truncation;
and CalDAV objects merged into one calendar give the meetings each gives alone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import icalendar
import pytest
from lxml import etree

from keepwarm.connectors import caldav_xml as xml
from keepwarm.connectors.caldav_select import calendars_in, select
from keepwarm.connectors.icalendar_meetings import meetings_from_calendar
from keepwarm.connectors.icalendar_text import merge, wanted_lines

DATA = Path(__file__).parent / "data" / "ics"
WINDOW = {
    "window_start": datetime(2023, 1, 1, tzinfo=UTC),
    "window_end": datetime(2025, 1, 1, tzinfo=UTC),
}


def multistatus(body: str) -> xml.Multistatus:
    return xml.parse(etree.fromstring(body.encode()), "https://x.example/")


def response(href: str, props: str, status: str = "HTTP/1.1 200 OK") -> str:
    return f"<d:response><d:href>{href}</d:href><d:propstat><d:prop>{props}</d:prop>" \
           f"<d:status>{status}</d:status></d:propstat></d:response>"  # fmt: skip


NS = 'xmlns:d="DAV:" xmlns:cal="urn:ietf:params:xml:ns:caldav" ' \
     'xmlns:cs="http://calendarserver.org/ns/" xmlns:nc="http://nextcloud.com/ns"'  # fmt: skip


def kinds(*names: str) -> str:
    inner = "".join(f"<{n}/>" for n in names)
    return f"<d:resourcetype><d:collection/>{inner}</d:resourcetype>"


def named(name: str) -> str:
    return f"<d:displayname>{name}</d:displayname>"


CAL = kinds("cal:calendar")


def comps(*names: str) -> str:
    inner = "".join(f'<cal:comp name="{n}"/>' for n in names)
    return f"<cal:supported-calendar-component-set>{inner}</cal:supported-calendar-component-set>"


def owner(href: str) -> str:
    return f"<d:owner><d:href>{href}</d:href></d:owner>"


def test_nextcloud_home_keeps_own_event_calendars() -> None:
    base = "/remote.php/dav/calendars/me/"
    me = "/remote.php/dav/principals/users/me/"
    sync = "<d:sync-token>http://sabre.io/ns/sync/42</d:sync-token>"
    ctag = "<cs:getctag>http://sabre.io/ns/sync/42</cs:getctag>"
    bob = owner("/remote.php/dav/principals/users/bob/")
    listing = multistatus(f"""<d:multistatus {NS}>
      {response(base, kinds())}
      {response(base + "personal/", CAL + named("Personal") + owner(me) + comps("VEVENT", "VTODO")
                + sync + ctag)}
      {response(base + "team_shared_by_bob/", CAL + named("Team (Bob)") + bob + comps("VEVENT"))}
      {response(base + "holidays/", kinds("cs:subscribed") + named("Holidays"))}
      {response(base + "tasks/", CAL + named("Tasks") + owner(me) + comps("VTODO"))}
      {response(base + "contact_birthdays/", CAL + named("Contact birthdays") + owner(me)
                + comps("VEVENT"))}
      {response(base + "trashbin/", kinds("nc:trash-bin"))}
      {response(base + "inbox/", kinds("cal:schedule-inbox"))}
      {response(base + "personal/", "<d:quota-used-bytes/>", "HTTP/1.1 404 Not Found")}
    </d:multistatus>""")  # fmt: skip
    home = "https://cloud.example.org" + base
    found = calendars_in(listing, home, "https://cloud.example.org" + me)
    assert [(c.name, c.owned, c.events) for c in found] == [
        ("Contact birthdays", True, True),
        ("Personal", True, True),
        ("Tasks", True, False),
        ("Team (Bob)", False, True),
    ]
    personal = found[1]
    assert (personal.url, personal.sync_token) == (home + "personal/", "http://sabre.io/ns/sync/42")
    default = select(found, (), "https://cloud.example.org/remote.php/dav")
    assert [c.name for c in default] == ["Contact birthdays", "Personal"]
    # Shared calendars are read when named.
    assert [c.name for c in select(found, ("Team (Bob)",), home)] == ["Team (Bob)"]


def test_icloud_home_on_another_host_and_shared_marker() -> None:
    home = "https://p42-caldav.icloud.com:443/1234567/calendars/"
    listing = multistatus(f"""<d:multistatus {NS}>
      {response(home + "home/", CAL + named("Home") + comps("VEVENT")
                + "<d:sync-token>HwoQEgwAAA</d:sync-token>")}
      {response("/1234567/calendars/8A1B/", kinds("cal:calendar", "cs:shared")
                + named("Climbing club"))}
      {response("/1234567/calendars/tasks/", CAL + named("Reminders") + comps("VTODO"))}
      {response("/1234567/calendars/notification/", kinds("cs:notification"))}
    </d:multistatus>""")  # fmt: skip
    found = calendars_in(listing, home, "https://p42-caldav.icloud.com:443/1234567/principal/")
    assert [(c.name, c.url, c.owned, c.events) for c in found] == [
        ("Climbing club", home + "8A1B/", False, True),
        ("Home", home + "home/", True, True),
        ("Reminders", home + "tasks/", True, False),
    ]
    assert [c.name for c in select(found, (), "https://caldav.icloud.com/")] == ["Home"]


def test_properties_a_server_refuses_are_just_absent() -> None:
    listing = multistatus(f"""<d:multistatus {NS}><d:response><d:href>/dav/me/work/</d:href>
      <d:propstat><d:prop>{CAL}<d:displayname>Work</d:displayname></d:prop>
        <d:status>HTTP/1.1 200 OK</d:status></d:propstat>
      <d:propstat><d:prop><d:owner/><d:sync-token/></d:prop>
        <d:status>HTTP/1.1 403 Forbidden</d:status></d:propstat>
    </d:response></d:multistatus>""")
    [work] = calendars_in(listing, "https://dav.example/dav/me/", "/dav/principals/me/")
    assert (work.name, work.owned, work.sync_token, work.ctag) == ("Work", True, None, None)


def test_sync_report_with_removals_and_truncation() -> None:
    answer = multistatus(f"""<d:multistatus {NS}>
      {response("/dav/me/work/a.ics", '<d:getetag>"1"</d:getetag>')}
      <d:response><d:href>/dav/me/work/gone.ics</d:href>
        <d:status>HTTP/1.1 404 Not Found</d:status></d:response>
      <d:response><d:href>https://x.example/</d:href>
        <d:status>HTTP/1.1 507 Insufficient Storage</d:status></d:response>
      <d:sync-token>token-2</d:sync-token>
    </d:multistatus>""")
    assert answer.sync_token == "token-2"
    assert answer.truncated
    assert [(e.href, e.status, e.text(xml.GETETAG)) for e in answer.entries] == [
        ("/dav/me/work/a.ics", 200, '"1"'),
        ("/dav/me/work/gone.ics", 404, None),
    ]


def test_a_login_page_is_not_a_multistatus() -> None:
    with pytest.raises(ValueError, match="multistatus"):
        xml.parse(etree.fromstring(b"<html><body>Sign in</body></html>"), "https://x.example/")


# --- objects merged before parsing ------------------------------------------------------------


def objects(name: str) -> list[bytes]:
    """A sample file as CalDAV objects: per UID, its events with the file's time zones."""
    calendar = icalendar.Calendar.from_ical((DATA / name).read_bytes())
    zones = list(calendar.walk("VTIMEZONE"))
    found = []
    for uid in dict.fromkeys(str(event["UID"]) for event in calendar.walk("VEVENT")):
        single = icalendar.Calendar()
        single.add("VERSION", "2.0")
        single.add("PRODID", "-//keepwarm tests//EN")
        for component in zones + [e for e in calendar.walk("VEVENT") if str(e["UID"]) == uid]:
            single.add_component(component)
        found.append(single.to_ical())
    return found


def keys(data: bytes) -> set[tuple[str, str | None, datetime, int]]:
    meetings, _ = meetings_from_calendar(data, source="f", **WINDOW)
    return {(m.uid, m.recurrence_id, m.start, len(m.attendees)) for m in meetings}


MERGEABLE = ["recurring.ics", "nextcloud_recurring.ics", "this_and_future.ics", "fastmail.ics",
             "icloud_invite.ics", "outlook_windows_tz.ics", "rdate_period.ics",
             "exchange_legacy_tzid.ics", "thunderbird.ics"]  # fmt: skip


def test_merged_objects_give_the_meetings_of_each_object() -> None:
    parts = [data for name in MERGEABLE for data in objects(name)]
    merged, alone = merge(parts)
    assert alone == []
    separately: set[tuple[str, str | None, datetime, int]] = set()
    for data in parts:
        separately |= keys(data)
    assert keys(merged) == separately
    assert len(separately) > 30
    assert merged.count(b"BEGIN:VTIMEZONE") < sum(data.count(b"BEGIN:VTIMEZONE") for data in parts)


def test_what_cannot_be_merged_is_read_alone() -> None:
    custom = (DATA / "outlook_windows_tz.ics").read_bytes()
    other_custom = custom.replace(b"+0530", b"+0545")  # the same TZID, another offset
    feed = (DATA / "google_x_wr_timezone.ics").read_bytes()  # X-WR-TIMEZONE at the top
    two = (DATA / "two_calendars_same_uid.ics").read_bytes()  # two VCALENDARs in one
    merged, alone = merge([custom, other_custom, feed, two, b"not iCalendar"])
    assert alone == [1, 2, 3, 4]
    assert keys(merged) == keys(custom)


def test_only_the_lines_keepwarm_reads_are_parsed() -> None:
    data = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:a@x\r\n"
        b"DTSTART:20240301T100000Z\r\nDESCRIPTION:the agenda, which is the event's body\r\n"
        b"  and goes on for a while\r\nX-ALT-DESC;FMTTYPE=text/html:<p>agenda</p>\r\n"
        b"ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED:mailto:\r\n bob@example.org\r\n"
        b"BEGIN:VALARM\r\nTRIGGER:-PT5M\r\nACTION:DISPLAY\r\nEND:VALARM\r\n"
        b"END:VEVENT\r\nBEGIN:VTODO\r\nUID:t@x\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
    assert wanted_lines(data).replace(b"\r", b"").split(b"\n") == [
        b"BEGIN:VCALENDAR", b"VERSION:2.0", b"BEGIN:VEVENT", b"UID:a@x",
        b"DTSTART:20240301T100000Z", b"ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED:mailto:",
        b" bob@example.org", b"END:VEVENT", b"END:VCALENDAR",
    ]  # fmt: skip
    [meeting], _ = meetings_from_calendar(data, source="f", **WINDOW)
    assert [a.address for a in meeting.attendees] == ["bob@example.org"]
