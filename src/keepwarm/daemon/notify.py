"""Tell systemd how the service is doing: the sd_notify datagram protocol, for `Type=notify`.

Hand-written rather than a dependency: the protocol is one datagram of newline-separated
KEY=VALUE lines to the AF_UNIX socket named by $NOTIFY_SOCKET ("@" = abstract namespace), as
sd_notify(3) documents it. On PyPI, `sdnotify` has had no release since 2017, while
`systemd-python` and `cysystemd` are C extensions that need libsystemd headers to build, for
what is a dozen lines here.

Every method is a no-op without $NOTIFY_SOCKET (run by hand, in tests, under another manager)
and never raises into the service: a failed send is logged once, at debug.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """The service's voice towards systemd; safe to share between threads."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        given = env.get("NOTIFY_SOCKET", "")
        # "@name" is an abstract socket: its address starts with a NUL byte instead.
        self._address = "\0" + given[1:] if given.startswith("@") else given
        self._watchdog = _watchdog_interval(env)
        self._socket: socket.socket | None = None
        self._failed = False
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether a service manager is listening ($NOTIFY_SOCKET is set)."""
        return bool(self._address)

    def ready(self, status: str | None = None) -> None:
        """Start-up is finished (READY=1), with the first status line."""
        self._send("READY=1", *_status(status))

    def status(self, text: str) -> None:
        """One line `systemctl status` shows, e.g. "3 accounts, 0 failing, next poll in 42 s"."""
        self._send(*_status(text))

    def watchdog(self) -> None:
        """Still alive (WATCHDOG=1); send every `watchdog_interval()` seconds."""
        self._send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> None:
        """Shutting down (STOPPING=1): systemd no longer expects watchdog pings."""
        self._send("STOPPING=1", *_status(status))

    def reloading(self) -> None:
        """Reloading the config (RELOADING=1); send `ready()` when done.

        MONOTONIC_USEC is what `Type=notify-reload` (systemd 253+) requires; older managers
        ignore it.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def extend_timeout(self, seconds: float) -> None:
        """Ask for `seconds` more to finish starting or stopping (EXTEND_TIMEOUT_USEC)."""
        self._send(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}")

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of $WATCHDOG_USEC), None when not asked for."""
        return self._watchdog

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def _send(self, *lines: str) -> None:
        if not self._address or not lines:
            return
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.sendto("\n".join(lines).encode(), self._address)
            except (OSError, ValueError) as exc:
                if not self._failed:  # once: a missing manager must not flood the log
                    self._failed = True
                    log.debug("systemd notification failed", error=str(exc), sent=lines[0])


def _status(text: str | None) -> tuple[str, ...]:
    # A newline would end the STATUS= field and start a bogus one.
    return () if text is None else ("STATUS=" + " ".join(text.splitlines()),)


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):  # the watchdog is another process's (we were forked)
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None
