"""Which UIDs to read, and their header fields, streamed: never a body, never a whole folder.

UIDs: `UID SEARCH` over windows of `SEARCH_WINDOW` message sequence numbers (dense, unlike
UIDs), with `UID last+1:*` and, for a first read, `SINCE <date>`; each window's answer is at
most a window of UIDs, so a folder of a million messages is never listed into memory whole.
Sequence numbers follow UID order, so the messages above the last UID read are the last ones:
an incremental read searches only the tail the UIDNEXT difference allows.

Headers: `UID FETCH <explicit UIDs> (UID BODY.PEEK[HEADER.FIELDS (<what detection reads>)])`,
read off the connection by a narrow parser of our own. imapclient's general response parser
tokenises every byte of every literal-bearing response in Python and caps near 16k messages/s
on this machine, while the server answers at about 180k/s; the shape Dovecot, Gmail, Exchange
and Cyrus answer this FETCH with is fixed (one line, one literal, a closing line), so that shape
is read with two regular expressions and anything else (several literals, a quoted or NIL
header, labels with quoting) goes through imapclient's parser, which is correct on everything.
The connection is read with imaplib's public `readline`/`read`/`send` on imapclient's
underlying `IMAP4` object; the command uses a tag of its own and every line up to its tagged
answer is consumed here, so imaplib's bookkeeping is untouched.
"""

from __future__ import annotations

import imaplib
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from imapclient import IMAPClient
from imapclient.response_parser import parse_fetch_response

SEARCH_WINDOW = 5_000
FETCH_BATCH = 1_000

_FETCH = re.compile(rb"\* \d+ FETCH \(")
_LITERAL = re.compile(rb"\{(\d+)\}\r\n\Z")
_UID = re.compile(rb"[( ]UID (\d+)")
_GM_MSGID = re.compile(rb"[( ]X-GM-MSGID (\d+)")
_GM_LABELS = re.compile(rb"[( ]X-GM-LABELS \(([^()\"]*)\)")
_BODY_LITERAL = re.compile(rb"BODY\[HEADER\.FIELDS \([^)]*\)\] \{\d+\}\r\n\Z", re.IGNORECASE)
_tags = itertools.count(1)


class Wire(Protocol):
    """What this module reads the connection through (imaplib.IMAP4's public methods)."""

    def readline(self) -> bytes: ...

    def read(self, size: int) -> bytes: ...

    def send(self, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Fetched:
    uid: int
    header: bytes  # the requested header fields as the server sent them, blank line included
    gm_msgid: int | None = None
    gm_labels: frozenset[str] | None = None  # Gmail labels, system ones like "\\Sent"


def candidate_uids(
    client: IMAPClient,
    exists: int,
    last_uid: int,
    uidnext: int | None,
    since: date | None,
    window: int = SEARCH_WINDOW,
) -> Iterator[list[int]]:
    """UIDs above `last_uid` (and received since `since`), ascending, a window at a time."""
    if exists <= 0:
        return
    start = 1
    if last_uid and uidnext:
        newer = uidnext - 1 - last_uid  # at most this many messages can be above last_uid
        if newer <= 0:
            return
        start = max(1, exists - newer + 1)
    for low in range(start, exists + 1, window):
        criteria: list[Any] = [f"{low}:{min(low + window - 1, exists)}"]
        if last_uid:
            criteria += ["UID", f"{last_uid + 1}:*"]
        if since is not None:
            criteria += ["SINCE", since]
        # `n:*` matches the highest UID even when it is below n: filter, never trust.
        found = sorted(uid for uid in client.search(criteria) if uid > last_uid)
        if found:
            yield found


def uid_set(uids: Sequence[int]) -> str:
    """Ascending UIDs as a compact IMAP set: runs become ranges (1:5,9,11:12)."""
    parts: list[str] = []
    start = prev = uids[0]
    for uid in uids[1:]:
        if uid != prev + 1:
            parts.append(f"{start}:{prev}" if prev != start else str(start))
            start = uid
        prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


def fetch_items(fields: Sequence[str], gmail: bool) -> str:
    names = " ".join(f.upper() for f in fields)
    extra = "X-GM-MSGID X-GM-LABELS " if gmail else ""
    return f"(UID {extra}BODY.PEEK[HEADER.FIELDS ({names})])"


def fetch_headers(
    client: IMAPClient, uids: Sequence[int], fields: Sequence[str], *, gmail: bool = False
) -> Iterator[Fetched]:
    """The header fields of `uids` (ascending, known to exist) in the selected folder."""
    if not uids:
        return
    # imapclient's underlying imaplib.IMAP4: see the module docstring for why and how.
    wire: Wire = client._imap
    tag = b"KW%d" % next(_tags)
    command = f"UID FETCH {uid_set(uids)} {fetch_items(fields, gmail)}".encode("ascii")
    wire.send(tag + b" " + command + b"\r\n")
    yield from read_fetch_responses(wire, tag)


def read_fetch_responses(wire: Wire, tag: bytes) -> Iterator[Fetched]:
    """Every FETCH answer up to the tagged completion of `tag`; other untagged lines are
    consumed and ignored. Raises imaplib's `abort` when the connection ends half-way and its
    `error` when the command fails."""
    done = tag + b" "
    while True:
        line = _line(wire)
        if line.startswith(done):
            status = line[len(done) :].split(b" ", 1)[0].upper()
            if status != b"OK":
                text = line[len(done) :].decode("utf-8", "replace").strip()
                raise imaplib.IMAP4.error(f"UID FETCH failed: {text}")
            return
        if line.startswith(b"* BYE"):
            raise imaplib.IMAP4.abort(line.decode("utf-8", "replace").strip())
        texts, literals = [line], []
        while (size := _LITERAL.search(texts[-1])) is not None:
            literals.append(wire.read(int(size[1])))
            if len(literals[-1]) != int(size[1]):
                raise imaplib.IMAP4.abort("socket error: EOF in a literal")
            texts.append(_line(wire))
        if _FETCH.match(line):
            fetched = _fast(texts, literals) or _general(texts, literals)
            if fetched is not None:
                yield fetched


def _line(wire: Wire) -> bytes:
    line = wire.readline()
    if not line:
        raise imaplib.IMAP4.abort("socket error: EOF")
    if not line.endswith(b"\r\n"):
        raise imaplib.IMAP4.abort("socket error: unterminated line")
    return line


def _fast(texts: list[bytes], literals: list[bytes]) -> Fetched | None:
    """The common shape: one literal, which is the header fields; None for anything else."""
    if len(literals) != 1 or not _BODY_LITERAL.search(texts[0]):
        return None
    outside = texts[0] + texts[1]
    uid = _UID.search(outside)
    if uid is None:
        return None
    if b"X-GM-" not in outside:
        return Fetched(int(uid[1]), literals[0])
    msgid = _GM_MSGID.search(outside)
    labels = _GM_LABELS.search(outside)
    if msgid is None or labels is None:
        return None  # quoted labels, or labels with parentheses: the general parser
    names = frozenset(labels[1].decode("utf-8", "replace").split())
    return Fetched(int(uid[1]), literals[0], int(msgid[1]), names)


def _general(texts: list[bytes], literals: list[bytes]) -> Fetched | None:
    """imapclient's parser, for any other shape; None for a FETCH that carries no header
    fields (an unsolicited flag update) or no UID."""
    # Rebuild what imaplib would have collected: ("5 (UID 5 ... {n}", literal) pairs, then
    # the closing text, each without "* " and " FETCH" and the line ends.
    first = texts[0][2:-2].replace(b" FETCH ", b" ", 1)
    pieces: list[Any] = []
    head = first
    for literal, text in zip(literals, texts[1:], strict=True):
        pieces.append((head, literal))
        head = text[:-2]
    pieces.append(head)
    if _UID.search(b"".join(texts)) is None:
        return None  # keyed by sequence number: not an answer to our UID FETCH
    parsed = parse_fetch_response(pieces, normalise_times=False, uid_is_key=True)
    for uid, items in parsed.items():
        key = next((k for k in items if k.upper().startswith(b"BODY[")), None)
        if key is None:
            return None
        header = items[key]  # None for NIL
        labels = items.get(b"X-GM-LABELS")
        return Fetched(
            uid,
            header if isinstance(header, bytes) else b"",
            items.get(b"X-GM-MSGID"),
            frozenset(_label(v) for v in labels) if labels is not None else None,
        )
    return None


def _label(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
