"""Maildir (and Maildir++ / nested "verbatim" subfolders) on a local disk: header blocks only.

Incremental reading rests on the inode change time (ctime): it is set when a message is
delivered or renamed into `new/` or `cur/` and cannot be set back. The cursor keeps per folder a
high-water mark on ctime and the unique names seen at exactly that mark (coarse file-system clocks
give many files the same ctime). A poll stats every entry but opens only files at or above the
mark, in ctime order, so each batch's cursor only moves forward.

The mark never moves past `now - SETTLE`: a file delivered while a scan runs can carry an earlier
ctime than a file the scan already saw (a client renaming an old message in between), and would
be missed for good. Files changed in the last seconds are read again by the next poll instead;
natural keys make that harmless. A flag change (`new/` -> `cur/`, `:2,S`) also renames, so that
message is read again once; `last_poll.reread` estimates how often.

Memory: one header block at a time, plus a (ctime, subdir, name, mtime) entry (~240 bytes,
measured) per file of the window being read: a folder is read in windows of the `WINDOW`
oldest unread files (a heap keeps them while the directory is scanned), so a first sync holds
at most ~12 MB of entries whatever the folder's size. Each further window rescans the folder
(stat only, files below the window's start are dropped unopened): a folder of 1M messages is
scanned 20 times, a cost paid once, by the first sync; an incremental poll needs one window.

Folders: all of them, except trash, junk, drafts and outbox by name (`folders` brings any of
those back); names like Sent, Sent Items, Gesendet, Envoyés (or `sent_folder`) mark mail as sent.
The names themselves, and Dovecot's modified UTF-7 folder names, are in `folders.py`.
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import structlog

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, SourceProblem, register
from keepwarm.connectors.folders import SKIPPED_NAMES, folder_leaf
from keepwarm.connectors.folders import decode_mutf7 as decode_mutf7  # re-exported (tests)
from keepwarm.connectors.folders import is_sent_folder as is_sent_folder  # re-exported (mbox)
from keepwarm.connectors.header_block import read_header_block as read_header_block  # tests
from keepwarm.detect.headers import parse_headers
from keepwarm.errors import CursorExpired, MalformedInput, TransientError
from keepwarm.model import Batch, MessageMeta, Skip

log = structlog.get_logger(__name__)

BATCH_SIZE = 1000
WINDOW = 50_000  # files held per scan of a folder (see Memory above)
SETTLE_NS = 2_000_000_000  # larger than file-system clock granularity and small NFS clock skew


@dataclass(slots=True)
class PollStats:
    """What the last poll did, for logs and tests."""

    read: int = 0  # files opened
    skipped: int = 0
    reread: int = 0  # files opened again because a rename (flag change) gave them a new ctime


@dataclass(slots=True)
class _Folder:
    name: str  # "INBOX", "Sent", "Archive/2023"
    path: str
    sent: bool


@register("maildir")
class MaildirConnector:
    """Reads a Maildir tree's header blocks; see the module docstring for the cursor."""

    def __init__(self, account: AccountConfig, context: ConnectorContext) -> None:
        if not account.path:
            raise SourceProblem(f"account {account.name!r} has no path", "set accounts.path")
        self.account = account
        self.context = context
        self.root = os.path.expanduser(account.path)
        self.last_poll = PollStats()

    def close(self) -> None:
        """Nothing is held open between polls."""

    def poll(self, cursor: str | None) -> Iterator[Batch]:
        """Yield batches of new messages in ctime order, each with the cursor after it."""
        saved = _load(cursor)
        horizon = int(self.context.now().timestamp() * 1e9) - SETTLE_NS
        self.last_poll = stats = PollStats()
        folders = self._folders()
        # Folders that disappeared are forgotten; if they come back they are read again.
        states = {f.name: saved.get(f.name, (0, set())) for f in folders}
        batch = Batch()
        for folder in folders:
            start_mark, names = states[folder.name]
            mark = start_mark
            for ctime, sub, name, mtime in self._scan(folder, mark, names, batch):
                unique = name.split(":", 1)[0]
                self._read(folder, sub, name, unique, batch, stats)
                if sub == "cur" and 0 < mtime <= start_mark:
                    stats.reread += 1  # old content, new ctime: most likely a flag rename
                if ctime <= horizon:
                    if ctime > mark:
                        mark, names = ctime, set()
                    names.add(unique)
                    states[folder.name] = (mark, names)
                if len(batch.items) + len(batch.skipped) >= BATCH_SIZE:
                    batch.cursor = _dump(states)
                    yield batch
                    batch = Batch()
        batch.cursor = _dump(states)
        log.info("maildir polled", read=stats.read, skipped=stats.skipped, reread=stats.reread)
        yield batch

    def _read(
        self, folder: _Folder, sub: str, name: str, unique: str, batch: Batch, stats: PollStats
    ) -> None:
        source_id = f"{folder.name}/{unique}"
        try:
            raw = read_header_block(os.path.join(folder.path, sub, name))
            stats.read += 1
            meta: MessageMeta = parse_headers(
                raw, source_id, sent=True if folder.sent else None, folder=folder.name,
                now=self.context.now(),
            )  # fmt: skip
        except FileNotFoundError:
            return  # renamed or deleted since the scan: a new name is found by the next poll
        except OSError as exc:
            batch.skipped.append(Skip(source_id, "unreadable", f"{exc.strerror or exc}"))
        except MalformedInput as exc:
            batch.skipped.append(Skip(source_id, exc.reason, exc.detail))
        else:
            batch.items.append(meta)
            return
        stats.skipped += 1

    def _scan(
        self, folder: _Folder, mark: int, names: set[str], batch: Batch
    ) -> Iterator[tuple[int, str, str, int]]:
        """Every file at or above the mark, in ctime order, one window of files at a time.

        The scan position is kept apart from the cursor's mark, which stops short of files
        changed in the last seconds: the next window starts after the last file read.
        """
        position, seen = mark, set(names)
        while True:
            window = self._entries(folder, position, seen, batch)
            yield from window
            if len(window) < WINDOW:
                return
            last = window[-1][0]
            if last != position:
                position, seen = last, set()
            seen.update(name.split(":", 1)[0] for ctime, _, name, _ in window if ctime == last)

    def _entries(
        self, folder: _Folder, mark: int, names: set[str], batch: Batch
    ) -> list[tuple[int, str, str, int]]:
        """(ctime, subdir, file name, mtime) of the `WINDOW` oldest files at or above the mark
        (and not among `names` at it), in ctime order."""
        # A max-heap on ctime (ctimes negated) of at most WINDOW entries: memory stays bounded
        # however many files the folder holds.
        heap: list[tuple[int, str, str, int]] = []
        for sub in ("new", "cur"):
            try:
                with os.scandir(os.path.join(folder.path, sub)) as entries:
                    for entry in entries:
                        if entry.name.startswith("."):
                            continue
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        ctime = st.st_ctime_ns
                        if ctime < mark or (ctime == mark and entry.name.split(":", 1)[0] in names):
                            continue
                        item = (-ctime, sub, entry.name, st.st_mtime_ns)
                        if len(heap) < WINDOW:
                            heapq.heappush(heap, item)
                        elif ctime < -heap[0][0]:
                            heapq.heapreplace(heap, item)
            except FileNotFoundError:
                continue  # a folder without new/ (some tools never create it)
            except PermissionError as exc:
                batch.skipped.append(Skip(folder.name, "unreadable-folder", str(exc)))
                return []
            except OSError as exc:  # EIO, ESTALE on a network file system: try again later
                raise TransientError(f"cannot list {folder.path}/{sub}: {exc}") from exc
        return sorted((-ctime, sub, name, mtime) for ctime, sub, name, mtime in heap)

    def _folders(self) -> list[_Folder]:
        """The root and every subfolder holding cur/, minus trash, junk and drafts."""
        root = self.root
        try:
            top = sorted(os.listdir(root))
        except FileNotFoundError as exc:
            raise SourceProblem(
                f"Maildir {root} does not exist", "fix accounts.path or mount the disk"
            ) from exc
        except PermissionError as exc:
            raise SourceProblem(
                f"Maildir {root} is not readable by this user", "grant read access to the tree"
            ) from exc
        except NotADirectoryError as exc:
            raise SourceProblem(f"{root} is a file, not a Maildir", "use kind = 'mbox'") from exc
        except OSError as exc:
            raise TransientError(f"cannot list {root}: {exc}") from exc
        folders: list[_Folder] = []
        if "cur" in top or "new" in top:
            folders.append(self._folder("INBOX", root))
        for entry in top:
            path = os.path.join(root, entry)
            if entry in (".", "..", "cur", "new", "tmp") or not os.path.isdir(path):
                continue
            if entry.startswith("."):  # Maildir++: ".Archive.2023" is Archive/2023
                if os.path.isdir(os.path.join(path, "cur")):
                    folders.append(self._folder(decode_mutf7(entry[1:]).replace(".", "/"), path))
            else:
                folders.extend(self._nested(entry, path, depth=1))
        wanted = {name.casefold() for name in self.account.folders}
        kept = [
            f
            for f in folders
            if folder_leaf(f.name) not in SKIPPED_NAMES or f.name.casefold() in wanted or f.sent
        ]
        if not kept:
            raise SourceProblem(
                f"{root} holds no Maildir (no cur/ or new/ in it or its subfolders)",
                "point accounts.path at the Maildir itself",
            )
        return kept

    def _nested(self, name: str, path: str, depth: int) -> Iterator[_Folder]:
        """Subfolders stored as plain directories (mbsync "SubFolders Verbatim")."""
        if os.path.isdir(os.path.join(path, "cur")):
            yield self._folder(name, path)
        if depth >= 8:
            return
        try:
            children = sorted(os.listdir(path))
        except OSError:
            return
        for child in children:
            sub = os.path.join(path, child)
            if (
                child not in ("cur", "new", "tmp")
                and not child.startswith(".")
                and (os.path.isdir(sub))
            ):
                yield from self._nested(f"{name}/{child}", sub, depth + 1)

    def _folder(self, name: str, path: str) -> _Folder:
        return _Folder(name, path, is_sent_folder(name, self.account.sent_folder))


_State = tuple[int, set[str]]  # (ctime mark in ns, unique names seen at exactly the mark)


def _load(cursor: str | None) -> dict[str, _State]:
    if not cursor:
        return {}
    try:
        folders = json.loads(cursor)["folders"]
        return {str(k): (int(v[0]), {str(n) for n in v[1]}) for k, v in folders.items()}
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise CursorExpired(f"unreadable Maildir cursor: {exc}") from exc


def _dump(states: dict[str, _State]) -> str:
    folders = {name: [mark, sorted(names)] for name, (mark, names) in states.items()}
    return json.dumps({"v": 1, "folders": folders}, separators=(",", ":"), ensure_ascii=False)
