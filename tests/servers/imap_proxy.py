"""A line-aware TCP proxy in front of the private Dovecot, for what a test must see or break.

- `commands`: every command a client sent, as "TAG-less" names ("LOGIN", "STATUS",
  "UID FETCH", "IDLE", "DONE", ...), to count round trips; `lines` the lines themselves and
  `received` every byte the server sent.
- `cut_after(command, nbytes)`: the next time a client sends `command`, the connection is
  closed after `nbytes` more bytes of the server's answer: a response read half-way.
  `stall_after` keeps it open and silent instead: a server that hangs.
- `gmail=True`: Dovecot dressed as Gmail's IMAP (X-GM-EXT-1). Keywords on the stored messages
  carry what Gmail keeps elsewhere: `gmid<hex>` becomes X-GM-MSGID, `gmsent` / `gmdraft` the
  `\\Sent` / `\\Draft` labels and `gmquoted` adds a quoted label with parentheses (the shape
  the connector's fast parser hands to imapclient's). The client asks for
  `X-GM-MSGID X-GM-LABELS`; Dovecot is asked for `FLAGS` instead and its answer rewritten.

- `hide=("IDLE",)`: capabilities left out of what the server announces.

Literals are passed through byte for byte in both directions, so message data is never
mistaken for protocol.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n\Z")
_GM_ITEMS = re.compile(rb"X-GM-MSGID X-GM-LABELS ", re.IGNORECASE)
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


@dataclass
class _Link:
    """One client connection and its upstream twin."""

    client: socket.socket
    server: socket.socket
    budget: int | None = None  # bytes of server data left before the cut
    stall: bool = False  # at the cut, go silent instead of closing
    closed: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        self.closed.set()
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class ImapProxy:
    """See the module docstring. Use as a context manager."""

    def __init__(
        self, upstream_port: int, *, gmail: bool = False, hide: tuple[str, ...] = ()
    ) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.gmail = gmail
        self.hide = tuple(f" {name.upper()}".encode() for name in hide)
        self.commands: list[str] = []
        self.lines: list[bytes] = []  # the command lines themselves
        self.received = bytearray()  # everything the server sent the clients
        self._cut: tuple[str, int] | None = None
        self._stall = False
        self._links: list[_Link] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> ImapProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        for link in self._links:
            link.close()

    def cut_after(self, command: str, nbytes: int) -> None:
        self._cut = (command.upper(), nbytes)
        self._stall = False

    def stall_after(self, command: str, nbytes: int) -> None:
        """Like `cut_after`, but the connection stays open and silent: a hung server."""
        self._cut = (command.upper(), nbytes)
        self._stall = True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            link = _Link(client, socket.create_connection(self.upstream))
            self._links.append(link)
            for target in (self._upstream, self._downstream):
                threading.Thread(target=target, args=(link,), daemon=True).start()

    def _upstream(self, link: _Link) -> None:
        """Client -> server: record commands, arm the cut, rewrite Gmail fetch items."""
        self._relay(link, link.client, link.server, self._command)

    def _downstream(self, link: _Link) -> None:
        """Server -> client: the cut, Gmail's capability and fetch answers."""
        self._relay(link, link.server, link.client, self._answer)

    def _relay(
        self,
        link: _Link,
        source: socket.socket,
        sink: socket.socket,
        edit: Callable[[_Link, bytes], bytes],
    ) -> None:
        reader: BinaryIO = source.makefile("rb")
        try:
            while not link.closed.is_set():
                line = reader.readline()
                if not line:
                    break
                if not self._send(link, sink, edit(link, line), sink is link.client):
                    return
                literal = _LITERAL.search(line)
                if literal is not None:
                    data = reader.read(int(literal[1]))
                    if not self._send(link, sink, data, sink is link.client):
                        return
        except (OSError, ValueError):
            pass
        finally:
            link.close()

    def _send(self, link: _Link, sink: socket.socket, data: bytes, to_client: bool) -> bool:
        if to_client:
            self.received += data
        if to_client and link.budget is not None:
            if len(data) >= link.budget:
                sink.sendall(data[: link.budget])
                link.budget = 0
                if not link.stall:
                    link.close()
                    return False
                return True  # swallowed: the client waits for the rest in vain
            link.budget -= len(data)
        sink.sendall(data)
        return True

    def _command(self, link: _Link, line: bytes) -> bytes:
        words = line.strip().split(b" ")
        if line.strip().upper() == b"DONE":
            name = "DONE"
        elif len(words) >= 2:
            name = words[1].decode("ascii", "replace").upper()
            if name == "UID" and len(words) >= 3:
                name += " " + words[2].decode("ascii", "replace").upper()
        else:
            return line
        self.commands.append(name)
        self.lines.append(line)
        if self._cut is not None and self._cut[0] == name:
            link.budget, link.stall, self._cut = self._cut[1], self._stall, None
        if self.gmail and name == "UID FETCH":
            line = _GM_ITEMS.sub(b"FLAGS ", line)
        return line

    def _answer(self, link: _Link, line: bytes) -> bytes:
        if b"CAPABILITY " in line:
            for name in self.hide:
                line = re.sub(re.escape(name) + rb"(?=[ \]\r])", b"", line)
        if not self.gmail:
            return line
        if b"CAPABILITY " in line and b"X-GM-EXT-1" not in line:
            line = line.replace(b"CAPABILITY ", b"CAPABILITY X-GM-EXT-1 ", 1)
        if b" FETCH (" in line and line.startswith(b"* "):
            line = _FLAGS.sub(_gmail_items, line, count=1)
        return line


def _gmail_items(match: re.Match[bytes]) -> bytes:
    keywords = match[1].split()
    msgid = next((int(k[4:], 16) for k in keywords if k.lower().startswith(b"gmid")), 0)
    labels = [b"\\Inbox"]
    if b"gmsent" in keywords:
        labels = [b"\\Sent"]
    if b"gmdraft" in keywords:
        labels = [b"\\Draft"]
    if b"gmquoted" in keywords:
        labels.append(b'"Old (2019) stuff"')
    return b"X-GM-MSGID %d X-GM-LABELS (%s)" % (msgid, b" ".join(labels))
