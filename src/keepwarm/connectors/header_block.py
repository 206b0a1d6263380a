"""A message file's header block, read without its body (Maildir files)."""

from __future__ import annotations

import os

from keepwarm.detect.headers import MAX_HEADER_BYTES
from keepwarm.errors import MalformedInput

_FIRST_READ = 16_384  # most header blocks fit; bigger ones are read on in doubling chunks


def _end_of_headers(data: bytes, start: int) -> int:
    """Where the blank line ending the header block ends, or -1. bytes.find (memchr-fast) rather
    than a regex: a leading alternation kept the regex engine from its fast search."""
    if start == 0 and data[:1] == b"\n":
        return 1
    if start == 0 and data[:2] == b"\r\n":
        return 2
    ends = [i + n for i, n in ((data.find(b"\n\n", start), 2), (data.find(b"\n\r\n", start), 3))
            if i >= 0]  # fmt: skip
    return min(ends) if ends else -1


def read_header_block(path: str) -> bytes:
    """The file's bytes up to and including the blank line ending its header block.

    Raises MalformedInput("too-large") when no blank line comes within MAX_HEADER_BYTES, and
    OSError when the file cannot be read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        data = os.read(fd, _FIRST_READ)
        searched = 0
        while True:
            end = _end_of_headers(data, max(0, searched - 3))
            if end >= 0:
                return data[:end]
            if len(data) > MAX_HEADER_BYTES:
                raise MalformedInput("too-large", f"no end of header block in {len(data)} bytes")
            searched = len(data)
            more = os.read(fd, max(_FIRST_READ, len(data)))
            if not more:  # a message without a body: the whole file is its header block
                return data
            data += more
    finally:
        os.close(fd)
