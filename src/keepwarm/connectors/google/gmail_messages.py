"""A Gmail message resource (format=metadata) -> `MessageMeta`, by Gmail's labels.

Gmail answers the headers as a list of name/value pairs, values unfolded and encoded words left
as sent. We rebuild a header block from exactly those and hand it to `detect.headers`, the one
parser every mail connector shares, so Gmail mail is read as IMAP or Maildir mail would be.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from keepwarm.detect.headers import parse_headers
from keepwarm.errors import MalformedInput
from keepwarm.model import MessageMeta, Skip

# Not correspondence: spam, the bin, drafts (not sent yet) and Hangouts/Chat transcripts.
EXCLUDED_LABELS = frozenset({"SPAM", "TRASH", "DRAFT", "CHAT"})
# `fields` of messages.get: no snippet (a piece of the body), no sizes, no parts.
GET_FIELDS = "id,labelIds,internalDate,payload/headers"
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII but the colon


def excluded(labels: Iterable[str]) -> bool:
    return not EXCLUDED_LABELS.isdisjoint(labels)


def internal_date(resource: dict[str, Any]) -> int | None:
    """Gmail's receipt time in milliseconds, if it is there and a number."""
    value = resource.get("internalDate")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def header_block(headers: Iterable[Any]) -> bytes:
    """The header block Gmail's name/value pairs stand for (CR/LF inside values dropped)."""
    lines = []
    for header in headers:
        if not isinstance(header, dict):
            continue
        name, value = str(header.get("name", "")), str(header.get("value", ""))
        if _FIELD_NAME.fullmatch(name):
            lines.append(f"{name}: {value.replace(chr(13), ' ').replace(chr(10), ' ')}\r\n")
    return ("".join(lines) + "\r\n").encode("utf-8", "surrogateescape")


def to_meta(resource: dict[str, Any], source_id: str, now: datetime) -> MessageMeta | Skip | None:
    """The message's metadata, a Skip when it cannot be read, None when its labels exclude it."""
    labels = [str(label) for label in resource.get("labelIds") or ()]
    if excluded(labels):
        return None
    headers = (resource.get("payload") or {}).get("headers") or ()
    try:
        return parse_headers(
            header_block(headers),
            source_id,
            sent=True if "SENT" in labels else None,
            folder="SENT" if "SENT" in labels else None,
            now=now,
        )
    except MalformedInput as exc:
        return Skip(source_id, exc.reason, exc.detail)
