"""Raw header bytes -> `MessageMeta`. Bodies are never read, let alone kept.

The header block is split by hand rather than with `email.parser`: the stdlib parser builds a
Message object with every field (Received chains included) and the default policy's header
objects cost far more than the fields we read, while ingest must keep up with thousands of
messages a second. Address lists still go through the stdlib parser whenever they are not of
the plain `Name <a@b.c>` shape (see `addresses.parse_people`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from functools import lru_cache

from keepwarm.detect.addresses import decode_text, parse_people
from keepwarm.errors import MalformedInput
from keepwarm.model import MessageMeta

# The fields detection reads; the IMAP and Gmail connectors fetch exactly these.
ADDRESS_FIELDS = ("From", "Sender", "To", "Cc", "Bcc", "Reply-To")
THREAD_FIELDS = ("Date", "Message-ID", "In-Reply-To", "References", "Subject")
# Automated-mail signals, kept in `MessageMeta.signals` (see `automated.py` for their meaning).
# Return-Path: RFC 3834 auto-responses, bounces and receipts are sent with a null path (<>).
# Content-Type / Content-Class: calendar invitations. Feedback-ID and vendor X-headers are
# deliberately absent: relays such as Amazon SES stamp them on person-to-person mail too.
SIGNAL_FIELDS = (
    "List-Id", "List-Post", "List-Unsubscribe", "Precedence", "Auto-Submitted",
    "X-Auto-Response-Suppress", "X-Autoreply", "X-Autorespond", "Return-Path",
    "Content-Type", "Content-Class",
)  # fmt: skip
WANTED: tuple[str, ...] = ADDRESS_FIELDS + THREAD_FIELDS + SIGNAL_FIELDS

MAX_HEADER_BYTES = 1_000_000
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
# Clocks are wrong and time zones mis-set; a day or two ahead is tolerated, more is a lie.
FUTURE_SLACK = timedelta(days=2)
MAX_VALUE_CHARS = 1000  # a subject or signal longer than this is truncated, not stored whole

_SIGNALS_LOWER = tuple(name.lower() for name in SIGNAL_FIELDS)


def _names_regex(names: list[str]) -> str:
    """A case-insensitive regex matching exactly `names`, factored by prefix (F|Fr|From...).

    Explicit [Ff] classes and a prefix tree: a flat re.IGNORECASE alternation tries every
    name at every line start and makes this, the hottest regex, about twice as slow.
    """
    groups: dict[str, list[str]] = {}
    for name in names:
        if name:
            groups.setdefault(name[0].lower(), []).append(name[1:])
    branches = [
        (f"[{first.upper()}{first}]" if first.isalpha() else re.escape(first)) + _names_regex(rest)
        for first, rest in sorted(groups.items())
    ]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if "" in names else body


# A wanted field at the start of a line ("Subject :" tolerated) with its continuation lines;
# the text searched starts with "\n" so that the first line is a line start too.
_FIELD = re.compile(
    r"\n(" + _names_regex([name.lower() for name in WANTED]) + r")[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)"
)
_ANY_FIELD = re.compile(r"^[^\s:]+[ \t]*:", re.MULTILINE)
_DATE = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?"
    r"(?:\s+([+-]\d{4}))?(?:\s*\([^()]*\))?\s*"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
# The end of the header block (an input starting with an empty line is checked apart: a
# leading alternative would cost the regex its fast literal scan for "\n").
_BLANK_LINE = re.compile(rb"\n\r?\n")
_MSGID = re.compile(r"<([^<>]*)>")


def parse_headers(
    raw: bytes,
    source_id: str,
    *,
    sent: bool | None = None,
    folder: str | None = None,
    now: datetime | None = None,
) -> MessageMeta:
    """Parse a message's header block (the input may be the whole message; the body is ignored).

    Raises MalformedInput with reason "too-large", "bad-header", "no-date", "bad-date",
    "implausible-date" (before 1990 or over two days after `now`) or "no-sender".
    """
    fields, any_field = _fields(_header_block(raw))
    if not any_field:
        raise MalformedInput("bad-header", "no header fields")

    date_text = _first(fields, "date")
    if date_text is None:
        raise MalformedInput("no-date")
    date = _parse_date(date_text, now)

    sender = parse_people(_joined(fields, "from"))
    if not sender:
        # A message without a usable From but with a Sender still has a known author.
        sender = parse_people(_joined(fields, "sender"))
    if not sender:
        raise MalformedInput("no-sender", _clip(_first(fields, "from") or ""))

    message_id = _message_id(_first(fields, "message-id"))
    in_reply_to = _message_id(_first(fields, "in-reply-to"))
    references = _references(_joined(fields, "references"))
    subject_text = _first(fields, "subject")
    subject = decode_text(subject_text) if subject_text else None
    signals = tuple(
        (name, _clip(" ".join(fields[name][0].split())))
        for name in _SIGNALS_LOWER
        if name in fields
    )
    return MessageMeta(
        source_id=source_id,
        message_id=message_id,
        date=date,
        sender=sender,
        to=parse_people(_joined(fields, "to")),
        cc=parse_people(_joined(fields, "cc")),
        bcc=parse_people(_joined(fields, "bcc")),
        reply_to=parse_people(_joined(fields, "reply-to")),
        subject=_clip(subject) if subject else None,
        in_reply_to=in_reply_to,
        references=references,
        signals=signals,
        sent=sent,
        folder=folder,
    )


def _header_block(raw: bytes) -> bytes:
    """The bytes before the first empty line, refusing blocks over MAX_HEADER_BYTES."""
    if raw[:1] == b"\n" or raw[:2] == b"\r\n":
        return b""
    # Search no further than the limit, so a whole 30 MB message is never scanned.
    blank = _BLANK_LINE.search(raw, 0, MAX_HEADER_BYTES + 4)
    end = blank.start() if blank is not None else len(raw)
    if end > MAX_HEADER_BYTES:
        raise MalformedInput("too-large", f"header block over {MAX_HEADER_BYTES} bytes")
    return raw[:end]


def _decode(block: bytes) -> str:
    """UTF-8 where it is valid, else line by line UTF-8 then Latin-1 (which never fails)."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        lines = []
        for line in block.split(b"\n"):
            try:
                lines.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append(line.decode("latin-1"))
        text = "\n".join(lines)
    # NUL cannot be stored in PostgreSQL text and means nothing in a header.
    return text.replace("\x00", "") if "\x00" in text else text


def _fields(block: bytes) -> tuple[dict[str, list[str]], bool]:
    """Wanted fields by lower-case name, each occurrence unfolded, in order of appearance,
    and whether the block held any field at all."""
    text = _decode(block)
    fields: dict[str, list[str]] = {}
    # One regex pass finds the wanted fields and skips the rest (Received, DKIM, ...) in C.
    for name, value in _FIELD.findall("\n" + text):
        if "\n" in value:
            # Unfolding removes the line breaks and keeps the whitespace that follows them.
            value = value.replace("\r", "").replace("\n", "")
        fields.setdefault(name.lower(), []).append(value.strip())
    return fields, bool(fields) or _ANY_FIELD.search(text) is not None


def _first(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def _joined(fields: dict[str, list[str]], name: str) -> str:
    values = fields.get(name)
    if not values:
        return ""
    # Repeated address fields (against RFC 5322 but seen) are read as one list.
    return values[0] if len(values) == 1 else ", ".join(values)


def _parse_date(text: str, now: datetime | None) -> datetime:
    if not text.strip():
        raise MalformedInput("no-date")
    try:
        date = _fast_date(text) or parsedate_to_datetime(text)
        # "-0000" (and no zone at all) means "local time unknown": UTC is the best guess.
        date = date.replace(tzinfo=UTC) if date.tzinfo is None else date.astimezone(UTC)
    except (ValueError, TypeError, OverflowError, IndexError) as exc:
        raise MalformedInput("bad-date", _clip(text)) from exc
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    latest = now + FUTURE_SLACK
    if date < EARLIEST or date > latest:
        raise MalformedInput("implausible-date", date.isoformat())
    return date


def _fast_date(text: str) -> datetime | None:
    """The common `Tue, 12 Mar 2024 03:15:00 -0700` shape without the stdlib's general parser,
    which costs several times more; None sends anything else to `parsedate_to_datetime`."""
    found = _DATE.fullmatch(text)
    month = _MONTHS.get(found.group(2).lower()) if found is not None else None
    if found is None or month is None:
        return None
    day, _, year, hour, minute, second, zone = found.groups()
    tz = _zone(zone) if zone else None
    return datetime(int(year), month, int(day), int(hour), int(minute), int(second or 0), 0, tz)


@lru_cache(maxsize=256)
def _zone(offset: str) -> timezone:
    minutes = int(offset[1:3]) * 60 + int(offset[3:5])
    return timezone(timedelta(minutes=-minutes if offset[0] == "-" else minutes))


def _message_id(text: str | None) -> str | None:
    """The id inside the first <...>, or the first word when there are no brackets."""
    if text is None:
        return None
    found = _MSGID.search(text)
    value = found.group(1) if found is not None else (text.split() or [""])[0]
    # Folding may have put whitespace inside a long id; it is never part of it.
    value = "".join(value.split())
    return value[:MAX_VALUE_CHARS] or None


def _references(text: str) -> tuple[str, ...]:
    ids = _MSGID.findall(text) if "<" in text else text.split()
    cleaned = ("".join(item.split())[:MAX_VALUE_CHARS] for item in ids)
    return tuple(item for item in cleaned if item)


def _clip(text: str) -> str:
    return text[:MAX_VALUE_CHARS]
