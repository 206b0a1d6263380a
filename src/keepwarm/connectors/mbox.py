"""mbox files (one file, or a directory tree of them as Thunderbird keeps): header blocks only.

A message starts at a line beginning with "From " at the start of the file or after a blank
line, and ends where the next one starts. The file is streamed line by line; only the current
message's header block is held, bodies pass by unstored.

The cursor keeps per file its device and inode, its size, the offset after the last complete
message and a sha256 of the 4 KB before that offset. When the same file has grown and those
4 KB are unchanged, reading resumes at the offset; anything else (a rewrite after deleting
mail, a rename over it, a truncation) reads the file again from the start, which natural keys
make harmless. The last message of a file that ends without a blank line may still be being
written: it is left for the next poll unless the file has not changed for `SETTLE` seconds.

`source_id` is "<file>:<byte offset of the From line>"; files named like a sent folder (Sent,
Sent.mbox, sent-mail, ...) or `sent_folder` mark their mail as sent.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import structlog

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, SourceProblem, register
from keepwarm.connectors.maildir import BATCH_SIZE, is_sent_folder
from keepwarm.detect.headers import MAX_HEADER_BYTES, parse_headers
from keepwarm.errors import CursorExpired, MalformedInput, TransientError
from keepwarm.model import Batch, Skip

log = structlog.get_logger(__name__)

SETTLE = 60.0  # seconds without a change after which an unterminated last message is complete
FINGERPRINT_BYTES = 4096
_MAX_LINE = 65_536  # longer lines are read in pieces, so one giant line cannot fill memory
_BLANK = (b"\n", b"\r\n")
# Files a mail client keeps beside its mbox files in the same directory.
_NOT_MBOX = (".msf", ".dat", ".json", ".html", ".js", ".sqlite", ".lock", ".lck", ".bak")
_MBOX_SUFFIXES = (".mbox", ".mbx")


@dataclass(frozen=True, slots=True)
class _State:
    dev: int
    ino: int
    size: int
    offset: int  # after the last complete message read
    fingerprint: str  # sha256 hex of the FINGERPRINT_BYTES before offset


@register("mbox")
class MboxConnector:
    """Reads the header blocks of an mbox file or a directory of them."""

    def __init__(self, account: AccountConfig, context: ConnectorContext) -> None:
        if not account.path:
            raise SourceProblem(f"account {account.name!r} has no path", "set accounts.path")
        self.account = account
        self.context = context
        self.root = os.path.expanduser(account.path)

    def close(self) -> None:
        """Nothing is held open between polls."""

    def poll(self, cursor: str | None) -> Iterator[Batch]:
        """Yield batches of messages added since the cursor, file by file."""
        saved = _load(cursor)
        files = self._files()
        states = {rel: saved[rel] for rel, _ in files if rel in saved}  # removed files forgotten
        current = [Batch()]  # the batch being filled, replaced after each one is yielded
        for rel, path in files:
            for _ in self._read_file(rel, path, states, current):
                current[0].cursor = _dump(states)
                yield current[0]
                current[0] = Batch()
        current[0].cursor = _dump(states)
        yield current[0]

    def _read_file(
        self, rel: str, path: str, states: dict[str, _State], current: list[Batch]
    ) -> Iterator[None]:
        """Read one file from its resume point into `current[0]`, updating `states[rel]`;
        yields whenever that batch is full (the caller then replaces it)."""
        folder = _folder_name(rel)
        sent = True if is_sent_folder(folder, self.account.sent_folder) else None
        now = self.context.now()
        try:
            fh = open(path, "rb")  # noqa: SIM115  (closed in the finally below)
        except FileNotFoundError:
            return  # deleted since the listing
        except OSError as exc:
            current[0].skipped.append(Skip(rel, "unreadable", exc.strerror or str(exc)))
            return
        try:
            st = os.fstat(fh.fileno())
            start = _resume_offset(fh, st, states.get(rel))
            if start is None:
                log.info("mbox changed other than by appending, reading it again", file=rel)
                start = 0

            def settled() -> bool:
                return now.timestamp() - os.fstat(fh.fileno()).st_mtime >= SETTLE

            fh.seek(start)
            offset = start
            for msg_offset, block, end in _messages(fh, start, settled):
                batch = current[0]
                source_id = f"{rel}:{msg_offset}"
                try:
                    if block is None:
                        raise MalformedInput("too-large", f"header block over {MAX_HEADER_BYTES}")
                    batch.items.append(
                        parse_headers(block, source_id, sent=sent, folder=folder, now=now)
                    )
                except MalformedInput as exc:
                    batch.skipped.append(Skip(source_id, exc.reason, exc.detail))
                offset = end
                if len(batch.items) + len(batch.skipped) >= BATCH_SIZE:
                    states[rel] = _state(fh, st, offset)
                    yield
            states[rel] = _state(fh, st, offset)
        except OSError as exc:  # EIO mid-file, a vanished network share: try again later
            raise TransientError(f"cannot read {path}: {exc}") from exc
        finally:
            fh.close()

    def _files(self) -> list[tuple[str, str]]:
        """(name relative to the account path, full path) of every mbox file, sorted."""
        root = self.root
        try:
            if not os.path.isdir(root):
                with open(root, "rb") as fh:
                    head = fh.read(5)
                if head and head != b"From ":
                    raise SourceProblem(
                        f"{root} is not an mbox file (it does not start with 'From ')",
                        "point accounts.path at an mbox file, or use kind = 'maildir'",
                    )
                return [(os.path.basename(root), root)]
        except FileNotFoundError as exc:
            raise SourceProblem(f"mbox {root} does not exist", "fix accounts.path") from exc
        except PermissionError as exc:
            raise SourceProblem(f"mbox {root} is not readable", "grant read access") from exc
        except OSError as exc:
            raise TransientError(f"cannot open {root}: {exc}") from exc
        found: list[tuple[str, str]] = []

        def unreadable(exc: OSError) -> None:
            if exc.filename == root:  # the account's directory itself: nothing can be read
                _raise_walk_error(exc)
            log.warning("mbox subdirectory not readable", path=exc.filename, error=str(exc))

        for directory, subdirs, names in os.walk(root, onerror=unreadable):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for name in sorted(names):
                if name.startswith(".") or name.lower().endswith(_NOT_MBOX):
                    continue
                path = os.path.join(directory, name)
                try:
                    with open(path, "rb") as fh:
                        head = fh.read(5)
                except OSError:
                    head = b""
                if head == b"From ":  # an empty file is not read until it holds mail
                    found.append((os.path.relpath(path, root), path))
        return found


def _messages(
    fh: BinaryIO, start: int, settled: Callable[[], bool]
) -> Iterator[tuple[int, bytes | None, int]]:
    """(offset of the From line, header block or None when too large, offset after the
    message) of each complete message from `start`, which is a message boundary."""
    pos = start
    msg_start: int | None = None
    header: list[bytes] | None = None  # lines of the header being read; None in the body
    header_size = 0
    block: bytes | None = None
    line_start = True  # the piece read starts a line (long lines come in pieces)
    prev_blank = True  # the start of a file and a resume point count as after a blank line
    while line := fh.readline(_MAX_LINE):
        if line_start and prev_blank and line.startswith(b"From "):
            if msg_start is not None:
                yield msg_start, block, pos
            msg_start, header, header_size, block = pos, [], 0, None
        elif header is not None:
            if line_start and line in _BLANK:
                block = b"".join(header) if header_size <= MAX_HEADER_BYTES else None
                header = None
            elif header_size <= MAX_HEADER_BYTES:
                header.append(line)
                header_size += len(line)
        prev_blank = line_start and line in _BLANK
        line_start = line.endswith(b"\n")
        pos += len(line)
    if msg_start is None:
        return
    if header is not None:  # the file ended inside the header block
        block = b"".join(header) if header_size <= MAX_HEADER_BYTES else None
    # A last message without its closing blank line may still be being written.
    if prev_blank or settled():
        yield msg_start, block, pos


def _resume_offset(fh: BinaryIO, st: os.stat_result, state: _State | None) -> int | None:
    """Where to resume: the saved offset when the file only grew; 0 for a new file; None when
    the file changed in another way."""
    if state is None:
        return 0
    if (state.dev, state.ino) != (st.st_dev, st.st_ino) or st.st_size < state.offset:
        return None
    return state.offset if _print(fh, state.offset) == state.fingerprint else None


def _state(fh: BinaryIO, st: os.stat_result, offset: int) -> _State:
    # The file may have grown while it was read: the size is never below the offset.
    return _State(st.st_dev, st.st_ino, max(st.st_size, offset), offset, _print(fh, offset))


def _print(fh: BinaryIO, offset: int) -> str:
    begin = max(0, offset - FINGERPRINT_BYTES)
    return hashlib.sha256(os.pread(fh.fileno(), offset - begin, begin)).hexdigest()


def _folder_name(rel: str) -> str:
    """ "Archives.sbd/2023.mbox" -> "Archives/2023": the folder as a mail client shows it."""
    parts = rel.replace(os.sep, "/").split("/")
    parts = [p[: -len(".sbd")] if p.endswith(".sbd") else p for p in parts]
    last = parts[-1]
    for suffix in _MBOX_SUFFIXES:
        if last.lower().endswith(suffix):
            parts[-1] = last[: -len(suffix)]
    return "/".join(parts)


def _raise_walk_error(exc: OSError) -> None:
    if isinstance(exc, FileNotFoundError):  # deleted between the isdir check and the listing
        raise SourceProblem(f"mbox directory {exc.filename} does not exist", "fix accounts.path")
    if isinstance(exc, PermissionError):
        raise SourceProblem(f"{exc.filename} is not readable", "grant read access")
    raise TransientError(f"cannot list {exc.filename}: {exc}")


def _load(cursor: str | None) -> dict[str, _State]:
    if not cursor:
        return {}
    try:
        files = json.loads(cursor)["files"]
        return {
            str(rel): _State(int(s[0]), int(s[1]), int(s[2]), int(s[3]), str(s[4]))
            for rel, s in files.items()
        }
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise CursorExpired(f"unreadable mbox cursor: {exc}") from exc


def _dump(states: dict[str, _State]) -> str:
    files = {rel: [s.dev, s.ino, s.size, s.offset, s.fingerprint] for rel, s in states.items()}
    return json.dumps({"v": 1, "files": files}, separators=(",", ":"), ensure_ascii=False)
