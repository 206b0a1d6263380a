"""iCalendar text before it is parsed: the encoding repaired, only the lines keepwarm reads
kept, and many CalDAV objects merged into one calendar that defines each time zone once.

icalendar's parser costs about 0.1–0.2 ms per content line, so what is never parsed is the
cheapest part of a sync: descriptions (an event's body, which keepwarm never keeps anyway),
alarms, tasks and vendor properties are dropped as text, and a CalDAV server's copy of the same
VTIMEZONE in each of 10,000 objects is parsed once. Splitting lines is ~100x cheaper.
"""

from __future__ import annotations

import re

# Properties read by icalendar_meetings (and what its parser and expander need), by component.
WANTED = frozenset({
    b"BEGIN", b"END",
    b"VERSION", b"CALSCALE", b"X-WR-TIMEZONE", b"X-WR-CALNAME",
    b"UID", b"DTSTART", b"DTEND", b"DURATION", b"RRULE", b"RDATE", b"EXDATE", b"RECURRENCE-ID",
    b"SEQUENCE", b"STATUS", b"ORGANIZER", b"ATTENDEE", b"SUMMARY",
    b"X-MICROSOFT-CDO-ALLDAYEVENT", b"X-MICROSOFT-MSNCALENDAR-ALLDAYEVENT",
    b"TZID", b"TZOFFSETFROM", b"TZOFFSETTO",
})  # fmt: skip
# Components nobody meets in: dropped whole, with whatever they hold.
UNWANTED = frozenset({b"VALARM", b"VTODO", b"VJOURNAL", b"VFREEBUSY", b"VAVAILABILITY",
                      b"AVAILABLE", b"VLOCATION", b"VRESOURCE", b"PARTICIPANT"})  # fmt: skip
_VTIMEZONE = re.compile(rb"^BEGIN:VTIMEZONE\r?$.*?^END:VTIMEZONE\r?\n?", re.M | re.S | re.I)
_HEAD = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//keepwarm//merged//EN\r\n"


def utf8(data: bytes) -> bytes:
    """The data as UTF-8 without a byte-order mark: old groupware exports Windows-1252
    ("Jürgen", not "J�rgen")."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace").encode("utf-8")
    return data


def wanted_lines(data: bytes) -> bytes:
    """Only the content lines in WANTED (with their folded continuations), outside UNWANTED."""
    out: list[bytes] = []
    keep = False
    skipping = 0  # depth inside an unwanted component
    for line in data.split(b"\n"):
        if line[:1] in (b" ", b"\t"):  # a folded continuation of the line before
            if keep:
                out.append(line)
            continue
        name = _name(line)
        if skipping:
            skipping += 1 if name == b"BEGIN" else -1 if name == b"END" else 0
            keep = False
            continue
        if name == b"BEGIN" and _value(line) in UNWANTED:
            skipping, keep = 1, False
            continue
        keep = name in WANTED
        if keep:
            out.append(line)
    return b"\n".join(out)


def without_timezones(data: bytes) -> bytes:
    """The data without its VTIMEZONE components (for a calendar whose zones are broken)."""
    return _VTIMEZONE.sub(b"", data)


def merge(objects: list[bytes]) -> tuple[bytes, list[int]]:
    """CalDAV objects (one VCALENDAR each) as one calendar with each VTIMEZONE once, and the
    indexes of the objects to parse on their own: not a single plain VCALENDAR, a calendar-level
    X-WR-TIMEZONE, or a time zone of the same name defined differently by another object."""
    zones: dict[bytes, bytes] = {}
    events: list[bytes] = []
    alone: list[int] = []
    for index, data in enumerate(objects):
        blocks = _blocks(data)
        if blocks is None:
            alone.append(index)
            continue
        mine = {tzid: block for kind, tzid, block in blocks if kind == b"VTIMEZONE"}
        if any(_same(zones.get(tzid), block) is False for tzid, block in mine.items()):
            alone.append(index)
            continue
        for tzid, block in mine.items():
            zones.setdefault(tzid, block)
        events.extend(block for kind, _, block in blocks if kind == b"VEVENT")
    return _HEAD + b"".join(zones.values()) + b"".join(events) + b"END:VCALENDAR\r\n", alone


def _blocks(data: bytes) -> list[tuple[bytes, bytes, bytes]] | None:
    """The components directly inside the object's one VCALENDAR as (kind, TZID, text)."""
    found: list[tuple[bytes, bytes, bytes]] = []
    depth, calendars = 0, 0
    kind, tzid = b"", b""
    lines: list[bytes] = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        name = _name(line) if line[:1] not in (b" ", b"\t") else b""
        if name == b"BEGIN":
            depth += 1
            if depth == 1:
                calendars += 1
                if calendars > 1 or _value(line) != b"VCALENDAR":
                    return None
                continue
            if depth == 2:
                kind, tzid, lines = _value(line), b"", []
        if depth == 1 and name == b"X-WR-TIMEZONE":
            return None  # the zone of floating times: only meaningful for its own events
        if depth >= 2:
            lines.append(line.rstrip(b"\r"))
            if depth == 2 and name == b"TZID":
                tzid = line.partition(b":")[2].strip()
        if name == b"END":
            if depth == 2:
                found.append((kind, tzid, b"\r\n".join(lines) + b"\r\n"))
            depth -= 1
            if depth < 0:
                return None
    return found if depth == 0 and calendars == 1 else None


def _same(known: bytes | None, block: bytes) -> bool | None:
    return None if known is None else known.replace(b"\r", b"") == block.replace(b"\r", b"")


def _name(line: bytes) -> bytes:
    end = len(line)
    for mark in (b":", b";"):
        found = line.find(mark)
        if 0 <= found < end:
            end = found
    return line[:end].strip().upper()


def _value(line: bytes) -> bytes:
    return line.partition(b":")[2].strip().upper()
