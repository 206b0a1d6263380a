"""Push: IMAP IDLE (RFC 2177) on one folder, over a connection of its own.

`IdleWatch.wait(timeout)` returns True as soon as the server reports more messages (`* N
EXISTS` above the count it knew), False when the timeout passes first. IDLE stays open between
calls, so a daemon may call `wait` in a loop with short timeouts (to notice its own stop
signal) without a round trip each time; it is ended and re-issued every `renew` seconds because
servers may drop an IDLE after 29 minutes. Without IDLE on the server, `wait` checks STATUS
UIDNEXT every `fallback_interval` seconds instead; with `idle = false` in the account's config
it only sleeps.

IDLE is spoken with imaplib's public `send`/`readline` on imapclient's `IMAP4` object (as
`fetch.py` does), because imapclient's `idle_check` hides a closed connection (it returns an
empty list on EOF, again and again) and cannot tell a line already buffered from none.
"""

from __future__ import annotations

import imaplib
import itertools
import math
import re
import select
import ssl
import time
from collections.abc import Callable

import structlog
from imapclient import IMAPClient

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.imap import client as imap

log = structlog.get_logger(__name__)

IDLE_RENEW = 25 * 60.0  # seconds; RFC 2177 servers may end an IDLE after 29 minutes
FALLBACK_INTERVAL = 60.0  # seconds between STATUS checks on a server without IDLE

_EXISTS = re.compile(rb"\* (\d+) EXISTS\b", re.IGNORECASE)
_EXPUNGE = re.compile(rb"\* \d+ EXPUNGE\b", re.IGNORECASE)
_LITERAL = re.compile(rb"\{(\d+)\}\r\n\Z")
_tags = itertools.count(1)


class IdleWatch:
    """Waits for new mail in one folder; see the module docstring."""

    def __init__(
        self,
        connect: Callable[[], IMAPClient],
        account: AccountConfig,
        folder: str,
        known_uidnext: int | None = None,
        *,
        renew: float = IDLE_RENEW,
        fallback_interval: float = FALLBACK_INTERVAL,
    ) -> None:
        self._connect = connect
        self.account = account
        self.folder = folder
        self.renew = renew
        self.fallback_interval = fallback_interval
        self._known = known_uidnext  # UIDNEXT the caller has read up to
        self._client: IMAPClient | None = None
        self._poller: select.poll | None = None  # the client's socket, registered once
        self._push = True
        self._exists = 0
        self._tag: bytes | None = None  # the IDLE command in progress
        self._since = 0.0  # monotonic time the current IDLE began
        self._news = False  # seen while starting or ending an IDLE: reported by the next wait
        self._next_check = 0.0  # monotonic time of the next STATUS check without IDLE
        self.idles = 0  # IDLE commands sent, for logs and tests

    def wait(self, timeout: float) -> bool:
        """True when new mail arrived (or had arrived since `known_uidnext`), else False
        after `timeout` seconds. Raises TransientError / AuthError like a poll."""
        if not self.account.idle:
            time.sleep(max(0.0, timeout))
            return False
        deadline = time.monotonic() + max(0.0, timeout)
        try:
            with imap.imap_errors(self.account):
                if self._client is None and self._open():
                    return True
                if not self._push:
                    return self._poll_status(deadline)
                return self._idle_until(deadline)
        except BaseException:
            self._drop()
            raise

    def close(self) -> None:
        """End IDLE and log out; never raises."""
        if self._client is not None and self._tag is not None:
            try:
                self._end_idle()
            except Exception:
                self._drop()
        self._drop()

    # -- connection --------------------------------------------------------------------------

    def _open(self) -> bool:
        """Connect and take the folder's baseline; True when it already holds news."""
        client = self._client = self._connect()
        self._poller = select.poll()
        self._poller.register(client.socket().fileno(), select.POLLIN)
        self._push = b"IDLE" in imap.capabilities(client)
        if self._push:
            selected = client.select_folder(self.folder, readonly=True)
            self._exists = int(selected.get(b"EXISTS", 0))
            uidnext = selected.get(b"UIDNEXT")
        else:
            uidnext = client.folder_status(self.folder, ["UIDNEXT"]).get(b"UIDNEXT")
            self._next_check = time.monotonic() + self.fallback_interval
        news = self._known is not None and uidnext is not None and uidnext > self._known
        self._known = uidnext
        return bool(news)

    def _drop(self) -> None:
        if self._client is not None:
            imap.disconnect(self._client)
        self._client, self._tag, self._poller = None, None, None

    # -- IDLE --------------------------------------------------------------------------------

    def _idle_until(self, deadline: float) -> bool:
        while True:
            if self._tag is None:
                self._start_idle()
                if not self._push:
                    return self._poll_status(deadline)
            if self._news:
                self._news = False
                return True
            now = time.monotonic()
            if now - self._since >= self.renew:
                self._end_idle()
                continue
            line = self._next_line(min(deadline, self._since + self.renew) - now)
            if line is not None:
                self._take(line)
            elif time.monotonic() >= deadline:
                return False

    def _start_idle(self) -> None:
        assert self._client is not None
        tag = b"KWI%d" % next(_tags)
        self._wire().send(tag + b" IDLE\r\n")
        while True:
            line = self._read_line()
            if line.startswith(b"+"):
                break
            if line.startswith(tag + b" "):  # refused: fall back to STATUS checks
                log.warning("the server refused IDLE; checking STATUS instead")
                self._push = False
                return
            self._take(line)
        self._tag, self._since = tag, time.monotonic()
        self.idles += 1

    def _end_idle(self) -> None:
        tag, self._tag = self._tag, None
        self._wire().send(b"DONE\r\n")
        while tag is not None:
            line = self._read_line()
            if line.startswith(tag + b" "):
                return
            self._take(line)

    def _take(self, line: bytes) -> None:
        """Note what an untagged line says about the folder."""
        if line.startswith(b"* BYE"):
            raise imaplib.IMAP4.abort(line.decode("utf-8", "replace").strip())
        if self._tag is not None and line.startswith(self._tag + b" "):
            self._tag = None  # the server ended the IDLE itself: start another
            return
        exists = _EXISTS.match(line)
        if exists is not None:
            count = int(exists[1])
            if count > self._exists:
                self._news = True
            self._exists = count
        elif _EXPUNGE.match(line):
            self._exists = max(0, self._exists - 1)

    def _next_line(self, timeout: float) -> bytes | None:
        """The next line from the server, or None when none came within `timeout`."""
        assert self._poller is not None
        # Rounded up: truncating left a sub-millisecond rest that the caller's loop then spun
        # on with poll(0) until its deadline passed, every call (most of a watcher's idle CPU).
        if not self._buffered() and not self._poller.poll(max(0, math.ceil(timeout * 1000))):
            return None
        return self._read_line()

    def _buffered(self) -> bool:
        """Whether a line is already read off the socket (imaplib's buffer, or TLS's)."""
        assert self._client is not None
        sock = self._client.socket()
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        saved = sock.gettimeout()
        sock.setblocking(False)
        try:
            return bool(self._client._imap.file.peek(1))
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        finally:
            sock.settimeout(saved)

    def _read_line(self) -> bytes:
        wire = self._wire()
        line = wire.readline()
        if not line:
            raise imaplib.IMAP4.abort("socket error: EOF")
        literal = _LITERAL.search(line)
        if literal is not None:  # nothing we wait for carries one, but keep the stream in step
            wire.read(int(literal[1]))
            wire.readline()
        return line

    def _wire(self) -> imaplib.IMAP4:
        assert self._client is not None
        wire: imaplib.IMAP4 = self._client._imap
        return wire

    # -- without IDLE ------------------------------------------------------------------------

    def _poll_status(self, deadline: float) -> bool:
        assert self._client is not None
        while True:
            now = time.monotonic()
            if now < self._next_check:
                if now >= deadline:
                    return False
                time.sleep(min(self._next_check, deadline) - now)
                continue
            self._next_check = now + self.fallback_interval
            uidnext = self._client.folder_status(self.folder, ["UIDNEXT"]).get(b"UIDNEXT")
            news = self._known is not None and uidnext is not None and uidnext > self._known
            self._known = uidnext
            if news:
                return True
