"""The IMAP cursor: per folder UIDVALIDITY, the last UID read, UIDNEXT and HIGHESTMODSEQ, plus
the folder plan found by the last LIST, as compact JSON only this package reads.

A folder is *complete* when it was read up to the UIDNEXT its SELECT reported (`uidnext` > 0);
then a poll compares one STATUS with the stored values and reads nothing when they agree. While
a first read is under way `uidnext` is 0 and `since` holds its SEARCH SINCE bound, so a resumed
first read keeps the same backfill limit.

A changed UIDVALIDITY makes the folder's UIDs meaningless: it is read again from scratch, and
natural keys (Message-ID + Date, or a hash of the header block, see `connector.py`) keep
anything already stored from counting twice. The resync guard: a server whose UIDVALIDITY
changes again and again (a broken server, a folder recreated by a script every night) would
make every poll a full resync; after `GUARD_COUNT` resyncs within `GUARD_WINDOW` seconds the
resync reads only from two days before the folder's last complete read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta

from keepwarm.errors import CursorExpired

VERSION = 1
GUARD_COUNT = 3
GUARD_WINDOW = 7 * 86_400
GUARD_MARGIN = timedelta(days=2)
REDISCOVER_AFTER = 86_400  # seconds: LIST again once a day, for a sent folder created since


@dataclass(slots=True)
class FolderState:
    uidvalidity: int
    last_uid: int = 0  # every UID up to this one was read or left out by the backfill bound
    uidnext: int = 0  # UIDNEXT when the folder was last read to the end; 0: read under way
    modseq: int | None = None  # HIGHESTMODSEQ from STATUS, where CONDSTORE is offered
    since: str | None = None  # ISO date: the SEARCH SINCE bound of a first read under way
    synced: int = 0  # epoch seconds of the last complete read
    resyncs: list[int] = field(default_factory=list)  # epoch seconds of UIDVALIDITY changes

    @property
    def complete(self) -> bool:
        return self.uidnext > 0

    def since_date(self) -> date | None:
        return date.fromisoformat(self.since) if self.since else None


@dataclass(slots=True)
class Cursor:
    folders: dict[str, FolderState] = field(default_factory=dict)
    plan: list[tuple[str, str]] | None = None  # (folder name, role) from the last LIST
    plan_key: str = ""
    planned_at: int = 0
    gmail: bool = False


def load(text: str | None) -> Cursor:
    """The cursor from its JSON; None is a first sync. Raises CursorExpired when unreadable."""
    if text is None:
        return Cursor()
    try:
        data = json.loads(text)
        if data["v"] != VERSION:
            raise ValueError(f"version {data['v']}")
        folders = {str(name): _folder(value) for name, value in data["folders"].items()}
        plan = data.get("plan")
        return Cursor(
            folders=folders,
            plan=[(str(n), str(r)) for n, r in plan] if plan is not None else None,
            plan_key=str(data.get("key", "")),
            planned_at=int(data.get("at", 0)),
            gmail=bool(data.get("gmail", False)),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CursorExpired(f"unreadable IMAP cursor: {exc}") from exc


def _folder(value: dict[str, object]) -> FolderState:
    state = FolderState(**value)  # type: ignore[arg-type]
    for name in ("uidvalidity", "last_uid", "uidnext", "synced"):
        if not isinstance(getattr(state, name), int):
            raise TypeError(f"{name} is not an integer")
    if state.since is not None:
        date.fromisoformat(state.since)
    return state


def dump(cursor: Cursor) -> str:
    data: dict[str, object] = {
        "v": VERSION,
        "folders": {name: _compact(state) for name, state in cursor.folders.items()},
        "key": cursor.plan_key,
        "at": cursor.planned_at,
        "gmail": cursor.gmail,
    }
    if cursor.plan is not None:
        data["plan"] = [list(entry) for entry in cursor.plan]
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _compact(state: FolderState) -> dict[str, object]:
    # Not asdict(): its deep copy of every field made dump() twice as slow, for JSON that copies.
    found = ((f.name, getattr(state, f.name)) for f in fields(state))
    return {k: v for k, v in found if v not in (None, [])}


def start_over(
    old: FolderState | None, uidvalidity: int, now: datetime, backfill_days: int
) -> tuple[FolderState, bool]:
    """A folder's state for reading it from scratch: its first read, or after UIDVALIDITY
    changed. Returns the state and whether the resync guard narrowed the read."""
    stamp = int(now.timestamp())
    since = (now - timedelta(days=backfill_days)).date()
    if old is None:
        return FolderState(uidvalidity, since=since.isoformat()), False
    resyncs = [t for t in old.resyncs if stamp - t < GUARD_WINDOW] + [stamp]
    guarded = len(resyncs) > GUARD_COUNT and old.synced > 0
    if guarded:
        last_read = datetime.fromtimestamp(old.synced, now.tzinfo) - GUARD_MARGIN
        since = max(since, last_read.date())
    state = FolderState(uidvalidity, since=since.isoformat(), resyncs=resyncs[-GUARD_COUNT - 1 :])
    state.synced = old.synced
    return state, guarded
