"""The outbox's rules, apart from its storage (store/outbox.py) and its driver (daemon/digest_due).

Exactly once, and where it is only at least once:
1. Before talking to the server, the sender writes the outbox row for (recipient, period):
   status pending, the Message-ID, the whole message, and a claim (`claimed_by`, until when).
   Only one sender can create or claim a row at a time (see store/outbox.py).
2. It sends. When the server answers DATA with 250, it marks the row sent with that reply.
3. A failure before the 250 leaves the row pending with the error and a retry time.

A crash between the server's 250 and step 2's commit (milliseconds, or longer if the database
is unreachable right then), or a connection lost after the message was sent but before the
server's reply, leaves a pending row without a reply: the next attempt cannot tell whether the
server took it, so it sends again, byte for byte the same (same Message-ID, same Date). That
window is the only way two copies arrive; clients and providers that collapse duplicate
Message-IDs show one. A pending row is retried after its claim runs out (`lease`), or at once
by a process on the same host when the claim's holder is gone (`holder_is_dead`).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from keepwarm.digest.send import Retry

# The daemon's waits after a failed delivery: transient failures start at 5 minutes, permanent
# ones (a 5xx, a wrong password) at an hour, since they wait for a person to change something;
# `keepwarm digest --send` ignores the wait.
TRANSIENT_BACKOFF = (timedelta(minutes=5), timedelta(hours=6))
PERMANENT_BACKOFF = (timedelta(hours=1), timedelta(hours=24))
LEASE_MARGIN = timedelta(minutes=1)


def owner() -> str:
    """Who is sending: `host:pid`, stored in the claim."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_is_dead(claimed_by: str | None) -> bool:
    """True when the claim belongs to a process on this host that no longer runs.

    Only this host's processes can be checked; another host's claim is waited out (`lease`).
    A reused pid makes a dead holder look alive, which only delays the resend to the lease's end.
    """
    if not claimed_by:
        return False
    host, _, pid_text = claimed_by.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, under another user
    return False


def lease(timeout: float, retry: Retry) -> timedelta:
    """How long a claim holds: longer than the slowest possible delivery, so it never lapses
    while its holder is still talking to the server."""
    return timedelta(seconds=retry.worst_case(timeout)) + LEASE_MARGIN


def retry_at(now: datetime, attempts: int, *, permanent: bool) -> datetime:
    """When the daemon tries a failed period again: exponential, capped."""
    first, cap = PERMANENT_BACKOFF if permanent else TRANSIENT_BACKOFF
    wait: timedelta = min(first * 2 ** max(attempts - 1, 0), cap)
    return now + wait
