"""Which IMAP folders an account reads: INBOX, the sent folder, and any configured extras.

The sent folder is `sent_folder` when configured (the user knows best), else the folder the
server marks `\\Sent` (RFC 6154 SPECIAL-USE), else the first whose last name component is a
sent-folder name in one of the languages in `connectors/folders.py` ("Sent Items",
"Gesendet", "Envoyés", "[Gmail]/Sent Mail" ...).

Gmail (capability X-GM-EXT-1) is read once, through `[Gmail]/All Mail` (the folder marked
`\\All`): every message is there exactly once, labels say which were sent (`\\Sent`), and
X-GM-MSGID gives each a stable id. Reading INBOX and Sent as well would only read it twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import structlog
from imapclient import IMAPClient

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.folders import SENT_NAMES

log = structlog.get_logger(__name__)

GMAIL_ALL_MAIL = ("[Gmail]/All Mail", "[Google Mail]/All Mail")
ROLES = ("inbox", "sent", "all", "extra")


@dataclass(frozen=True, slots=True)
class Folder:
    name: str  # as imapclient gives it: decoded from modified UTF-7
    role: str  # one of ROLES

    @property
    def sent(self) -> bool | None:
        """What a message's folder says about who sent it (None: the headers decide)."""
        return True if self.role == "sent" else None


@dataclass(frozen=True, slots=True)
class Plan:
    folders: tuple[Folder, ...]
    gmail: bool  # fetch X-GM-MSGID / X-GM-LABELS


def plan_key(account: AccountConfig) -> str:
    """Changes when the config that shapes the plan changes (then folders are found again)."""
    text = repr((account.sent_folder, account.folders))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def discover(client: IMAPClient, account: AccountConfig, caps: frozenset[bytes]) -> Plan:
    """One LIST: the folders to read, in order (INBOX first)."""
    listing = [
        (frozenset(flag.decode("ascii", "replace").lower() for flag in flags), _text(delim), name)
        for flags, delim, name in client.list_folders()
    ]
    names = {
        str(name): (flags, delim)
        for flags, delim, name in listing
        if not flags & {"\\noselect", "\\nonexistent"}
    }
    gmail = b"X-GM-EXT-1" in caps
    if gmail:
        all_mail = [n for n, (flags, _) in names.items() if "\\all" in flags]
        all_mail += [n for n in GMAIL_ALL_MAIL if n in names]
        if all_mail:
            return Plan((Folder(all_mail[0], "all"),), gmail=True)
        log.warning("gmail's All Mail is hidden from IMAP; reading INBOX and the sent folder")
    chosen = [Folder("INBOX", "inbox")]
    sent = _sent_folder(names, account.sent_folder)
    if sent is not None:
        chosen.append(Folder(sent, "sent"))
    for wanted in account.folders:
        name = _find(names, wanted)
        if name is None:
            log.warning("configured folder not on the server", folder=wanted)
        elif all(f.name != name for f in chosen):
            delim = names[name][1]
            role = "sent" if _leaf(name, delim) in SENT_NAMES else "extra"
            chosen.append(Folder(name, role))
    return Plan(tuple(chosen), gmail=gmail)


def _sent_folder(
    names: dict[str, tuple[frozenset[str], str]], configured: str | None
) -> str | None:
    if configured:
        found = _find(names, configured)
        if found is not None:
            return found
        log.warning("sent_folder not on the server; looking for one", folder=configured)
    flagged = [name for name, (flags, _) in names.items() if "\\sent" in flags]
    if flagged:
        return min(flagged, key=_depth_then_name)
    by_name = [name for name, (_, delim) in names.items() if _leaf(name, delim) in SENT_NAMES]
    return min(by_name, key=_depth_then_name) if by_name else None


def _find(names: dict[str, tuple[frozenset[str], str]], wanted: str) -> str | None:
    if wanted in names:
        return wanted
    folded = [name for name in names if name.casefold() == wanted.casefold()]
    return folded[0] if folded else None


def _leaf(name: str, delim: str) -> str:
    return (name.rsplit(delim, 1)[-1] if delim else name).strip().casefold()


def _depth_then_name(name: str) -> tuple[int, str]:
    # "Sent" before "Archive/Sent", and the same choice every time.
    return (sum(name.count(d) for d in "/."), name)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value
