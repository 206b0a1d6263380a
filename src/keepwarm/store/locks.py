"""Named locks that hold across every process sharing one database.

PostgreSQL: a session-level advisory lock on a connection of its own, released when the block
ends or when the process dies (the server drops a dead session's locks). SQLite: `flock` on a
lock file beside the database (`keepwarm.db-<name>.lock`), which the kernel also releases when
its holder dies; an in-memory database is one process's, so a thread lock serves.
"""

from __future__ import annotations

import fcntl
import os
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

_MEMORY: dict[tuple[int, str], threading.Lock] = {}
_GUARD = threading.Lock()


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[None]:
    """Run the block alone among the holders of `name`, in any process, on any host."""
    if engine.dialect.name == "postgresql":
        with _advisory(engine, name):
            yield
        return
    database = engine.url.database
    if not database or database == ":memory:":
        with _GUARD:
            lock = _MEMORY.setdefault((id(engine), name), threading.Lock())
        with lock:
            yield
        return
    # flock conflicts between two open() of one file even within a process: threads too wait.
    fd = os.open(f"{database}-{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def _advisory(engine: Engine, name: str) -> Iterator[None]:
    key = zlib.crc32(f"keepwarm:{name}".encode())  # advisory lock keys are integers
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            conn.commit()
