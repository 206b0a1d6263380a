"""Emails as RFC 5322 bytes, written straight into a Maildir++ (inbox and `.Sent`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

Addr = tuple[str | None, str]  # (display name, address)
SENT_FOLDER = ".Sent"
# A fixed "pid" in file names: the same (seed, now) must give byte-identical trees.
_PID = 4242


@dataclass(frozen=True, slots=True)
class Email:
    at: datetime  # aware UTC; also the file's mtime
    sender: Addr
    to: tuple[Addr, ...]
    subject: str | None
    message_id: str | None  # without angle brackets
    body: str
    sent: bool = False  # the owner's own message: filed in .Sent
    cc: tuple[Addr, ...] = ()
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # List-Id, Auto-Submitted, ...
    content_type: str = 'text/plain; charset="utf-8"'
    zone: str = "Europe/London"  # the sender's clock, as shown in the Date header
    raw: bytes | None = None  # a deliberately broken message, written as is
    seen: bool = True


def render(mail: Email) -> bytes:
    """The message as it would sit in a mail store (LF line endings, as Maildir keeps them)."""
    if mail.raw is not None:
        return mail.raw
    lines = [f"Date: {format_datetime(mail.at.astimezone(ZoneInfo(mail.zone)))}"]
    lines.append(f"From: {_addr(mail.sender)}")
    lines.append(_address_field("To", mail.to))
    if mail.cc:
        lines.append(_address_field("Cc", mail.cc))
    if mail.subject is not None:
        lines.append(f"Subject: {_text(mail.subject)}")
    if mail.message_id:
        lines.append(f"Message-ID: <{mail.message_id}>")
    if mail.in_reply_to:
        lines.append(f"In-Reply-To: <{mail.in_reply_to}>")
    if mail.references:
        lines.append("References: " + "\n ".join(f"<{ref}>" for ref in mail.references))
    lines.extend(f"{name}: {value}" for name, value in mail.headers)
    lines.append("MIME-Version: 1.0")
    lines.append(f"Content-Type: {mail.content_type}")
    lines.append("Content-Transfer-Encoding: 8bit")
    return ("\n".join(lines) + "\n\n" + mail.body + "\n").encode("utf-8")


def write(root: Path, mails: Iterable[Email]) -> int:
    """Write every email into `root` (inbox) or `root/.Sent`, file mtime = Date; returns count."""
    inbox, sent = root, root / SENT_FOLDER
    for folder in (inbox, sent):
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
    marker = sent / "maildirfolder"  # Maildir++ marks subfolders with this empty file
    marker.touch()
    ordered = sorted(mails, key=lambda m: (m.at, m.message_id or "", m.sent))
    # Plain strings and os calls: pathlib's per-file overhead was a third of the demo's time.
    folders = {False: str(inbox / "cur"), True: str(sent / "cur")}
    for i, mail in enumerate(ordered):
        data = render(mail)
        ts = int(mail.at.timestamp())
        flags = "S" if mail.seen else ""
        path = f"{folders[mail.sent]}/{ts}.M{i}P{_PID}.demo,S={len(data)}:2,{flags}"
        with open(path, "wb") as out:
            out.write(data)
        os.utime(path, (ts, ts))
    if ordered:  # every timestamp in the tree comes from the world, none from the clock
        os.utime(marker, (int(ordered[0].at.timestamp()),) * 2)
    return len(ordered)


@cache
def _addr(addr: Addr) -> str:
    # A few hundred people write ten thousand headers: encode each once.
    return formataddr(addr, charset="utf-8")


def _address_field(name: str, addrs: tuple[Addr, ...]) -> str:
    # One address per line once a list is long, as mail clients fold them.
    sep = ",\n " if len(addrs) > 3 else ", "
    return f"{name}: " + sep.join(_addr(a) for a in addrs)


def _text(value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8").encode()
