"""A seeded generator of realistic mailboxes for tests that load thousands of messages at once.

`mailbox(count, seed=..., now=...)` yields `Generated` messages for INBOX and Sent: people
writing to the owner (some in Cc, some to a few others too), the owner's replies and new threads
in Sent, threads with In-Reply-To/References, encoded-word display names, a message Cc'd to the
owner's own address (so the same Message-ID sits in both folders), messages without a
Message-ID, mailing-list posts, no-reply notifications and auto-replies (filtered by detection),
a group too big to count, and about 1% malformed messages detection must skip (no Date, no From,
an unreadable Date, a date in 1970, no header fields at all).

The same seed always gives the same bytes, so a clean run and a crashed run read equal mail.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime

OWNER = "me@example.org"
OWNER_NAME = "Morgan Example"
_FIRST = (
    "Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Greta", "Hugo", "Inès", "Jon", "Kai",
    "Lena", "Mio", "Nora", "Otto", "Priya", "Quinn", "Rosa", "Sven", "Tomás", "Uma",
)  # fmt: skip
_LAST = (
    "Smith", "García", "Müller", "Rossi", "Dubois", "Novak", "Tanaka", "Okafor", "Silva",
    "Jensen", "Kowalski", "Nguyen",
)  # fmt: skip
_DOMAINS = ("example.com", "example.net", "acme.example", "globex.example", "initech.example",
            "gmail.com", "outlook.com", "uni.example.edu")  # fmt: skip
_SUBJECTS = ("Lunch next week?", "Re: the draft", "Quick question", "Photos from Saturday",
             "Contract v3", "Café tomorrow?", "Notes from the call", "Happy birthday!")  # fmt: skip
# Share of each kind of message, in this order; the rest are ordinary mail from a contact.
_KINDS = (
    ("sent", 0.25), ("list", 0.05), ("noreply", 0.05), ("autoreply", 0.01), ("self_cc", 0.01),
    ("no_id", 0.01), ("big_group", 0.01), ("malformed", 0.012),
)  # fmt: skip
MALFORMED_REASONS = ("no-date", "no-sender", "bad-date", "implausible-date", "bad-header")


@dataclass(frozen=True, slots=True)
class Generated:
    folder: str  # "INBOX" or "Sent"
    data: bytes  # the whole message, CRLF line ends
    stamp: float  # arrival time (epoch seconds): the Maildir mtime, IMAP INTERNALDATE


@dataclass(frozen=True, slots=True)
class _Contact:
    name: str
    address: str


def contacts(rng: random.Random, count: int) -> list[_Contact]:
    people = []
    for i in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        local = f"{first.lower()}.{last.lower()}{i}".encode("ascii", "ignore").decode()
        people.append(_Contact(f"{first} {last}", f"{local}@{rng.choice(_DOMAINS)}"))
    return people


def mailbox(
    count: int, *, seed: int, now: datetime, days: int = 700, people: int = 400
) -> Iterator[Generated]:
    """`count` messages over the `days` before `now` (oldest first), INBOX and Sent mixed."""
    rng = random.Random(seed)
    everyone = contacts(rng, people)
    # A few close people write often, most rarely: relationship data worth projecting.
    weights = [1.0 / (1 + i) ** 0.8 for i in range(people)]
    start = now - timedelta(days=days)
    step = days * 86_400 / count
    recent: list[str] = []  # Message-IDs a reply may answer
    made = 0
    for n in range(count):
        if made >= count:
            return
        when = start + timedelta(seconds=n * step + rng.uniform(0, step))
        kind = _kind(rng)
        other = rng.choices(everyone, weights)[0]
        mid = f"<{seed}.{n}.{rng.getrandbits(32):08x}@{other.address.split('@')[1]}>"
        headers = _headers(rng, kind, other, everyone, when, mid, recent)
        folder = "Sent" if kind in ("sent", "self_cc") else "INBOX"
        yield Generated(folder, _render(headers), when.timestamp())
        made += 1
        if kind == "self_cc" and made < count:  # the owner's own Cc delivers a copy to INBOX
            yield Generated("INBOX", _render(headers), when.timestamp() + 1)
            made += 1
        if kind in ("sent", "plain") and len(recent) < 50:
            recent.append(mid)
        elif kind in ("sent", "plain"):
            recent[rng.randrange(50)] = mid


def _kind(rng: random.Random) -> str:
    roll = rng.random()
    for kind, share in _KINDS:
        if roll < share:
            return kind
        roll -= share
    return "plain"


def _headers(
    rng: random.Random,
    kind: str,
    other: _Contact,
    everyone: list[_Contact],
    when: datetime,
    mid: str,
    recent: list[str],
) -> list[tuple[str, str]]:
    me = _address(OWNER_NAME, OWNER)
    them = _address(other.name, other.address)
    date = format_datetime(when.astimezone(_zone(rng)))
    subject = rng.choice(_SUBJECTS)
    out = [("Received", f"from mx.example.org by mail.example.org; {date}")]
    if kind not in ("sent", "self_cc"):  # delivered mail carries the envelope sender
        out.insert(0, ("Return-Path", f"<{other.address}>"))
    if kind == "malformed":
        malformed = _malformed(rng, them, me, mid, date)
        return malformed if malformed[0][0] == "X-Garbage" else out + malformed
    others = [_address(c.name, c.address) for c in rng.sample(everyone, rng.choice((0, 0, 1, 2)))]
    if kind == "sent":
        out += [("From", me), ("To", ", ".join([them, *others[:1]]))]
        if others[1:]:
            out.append(("Cc", others[1]))
    elif kind == "self_cc":
        out += [("From", me), ("To", ", ".join([them, *others])), ("Cc", me)]
    elif kind == "big_group":
        crowd = [_address(c.name, c.address) for c in rng.sample(everyone, 14)]
        out += [("From", them), ("To", ", ".join([me, *crowd]))]
    elif kind == "list":
        out += [("From", them), ("To", "<dev@lists.example.org>"),
                ("List-Id", "Dev talk <dev.lists.example.org>"),
                ("List-Unsubscribe", "<mailto:leave@lists.example.org>"),
                ("Precedence", "list")]  # fmt: skip
    elif kind == "noreply":
        out += [("From", "Shop <no-reply@shop.example>"), ("To", me),
                ("Auto-Submitted", "auto-generated")]  # fmt: skip
        subject = "Your order has shipped"
    elif kind == "autoreply":
        out += [("From", them), ("To", me), ("Auto-Submitted", "auto-replied")]
        subject = "Out of office"
    else:
        out += [("From", them), ("To", ", ".join([me, *others[:1]]))]
        if others[1:]:
            out.append(("Cc", others[1]))
    out += [("Subject", _encoded(subject)), ("Date", date)]
    if kind != "no_id":
        out.append(("Message-ID", mid))
    if recent and rng.random() < 0.3:
        parent = rng.choice(recent)
        out += [("In-Reply-To", parent), ("References", parent)]
    out += [("MIME-Version", "1.0"), ("Content-Type", "text/plain; charset=utf-8")]
    return out


def _malformed(
    rng: random.Random, them: str, me: str, mid: str, date: str
) -> list[tuple[str, str]]:
    reason = rng.choice(MALFORMED_REASONS)
    if reason == "no-date":
        return [("From", them), ("To", me), ("Subject", "no date"), ("Message-ID", mid)]
    if reason == "no-sender":
        return [("To", me), ("Subject", "anonymous"), ("Date", date), ("Message-ID", mid)]
    if reason == "bad-date":
        return [("From", them), ("To", me), ("Date", "sometime next week"), ("Message-ID", mid)]
    if reason == "implausible-date":
        epoch = "Thu, 01 Jan 1970 00:00:00 +0000"
        return [("From", them), ("To", me), ("Date", epoch), ("Message-ID", mid)]
    return [("X-Garbage", "\x01\x02")]  # bad-header: nothing detection reads at all


def _zone(rng: random.Random) -> timezone:
    return timezone(timedelta(hours=rng.choice((-8, -5, 0, 0, 1, 2, 5.5, 9))))


def _address(name: str, address: str) -> str:
    if name.isascii():
        return f"{name} <{address}>"
    return f"{Header(name, 'utf-8').encode()} <{address}>"


def _encoded(text: str) -> str:
    return text if text.isascii() else Header(text, "utf-8").encode()


def _render(headers: list[tuple[str, str]]) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return (head + "\r\nHello,\r\n\r\nsee you soon.\r\n").encode("utf-8")
