"""A raw TCP proxy that breaks connections on purpose: FIN, RST or silence at a chosen byte.

It knows nothing of the protocol it carries and counts the bytes servers send to clients over
all its connections together. `arm(kind, after)` sets a fault off once `after` more of those
bytes have passed: the connection that carries that byte gets exactly the bytes before it, then

- `drop`: an orderly close (FIN), like a server that exits or a NAT that gives up politely;
- `reset`: an RST (SO_LINGER with a zero timeout before close), like a crashed peer or a
  firewall;
- `stall`: nothing ever again, while the connection stays open: only the client's own read
  timeout can end it. What the client sends meanwhile is read and dropped; the connection is
  closed once the client closes its side.

Counting over all connections makes the moment independent of how a client spreads its work
over connections (a poll's, a push watcher's): a fault lands wherever the traffic is. `fired`
lists each fault that went off with its connection and the client's last command line there.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["drop", "reset", "stall"]
KINDS: tuple[FaultKind, ...] = ("drop", "reset", "stall")
_CHUNK = 65_536


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    at: int  # the proxy's total of server bytes when it goes off


@dataclass(frozen=True, slots=True)
class Fired:
    fault: Fault
    connection: int  # connections are numbered from 0 in the order they were opened
    offset: int  # server bytes that connection had carried when the fault hit it
    command: str  # the client's last line on that connection (what the answer was to)


class _Link:
    """One client connection, its upstream twin, and how they end (once)."""

    def __init__(self, number: int, client: socket.socket, server: socket.socket) -> None:
        self.number = number
        self.client = client
        self.server = server
        self.down = 0
        self.last_up = b""
        self.stalled = False
        self._lock = threading.Lock()
        self._done = False

    def close(self, *, reset: bool = False) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        if reset:
            # Linger on with a zero timeout: close() discards the buffers and sends RST.
            with contextlib.suppress(OSError):
                self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            with contextlib.suppress(OSError):
                self.client.shutdown(socket.SHUT_RDWR)
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.close()

    def command(self) -> str:
        """The client's last line here, its first words only (a LOGIN's password stays out)."""
        lines = [line for line in self.last_up.split(b"\r\n") if line.strip()]
        words = lines[-1].split(b" ")[:3] if lines else []
        return b" ".join(words).decode("ascii", "replace")[:60]


class FaultProxy:
    """See the module docstring. Use as a context manager."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.total = 0  # server bytes passed to clients, all connections
        self.opened = 0  # connections accepted
        self.fired: list[Fired] = []
        self._armed: list[Fault] = []
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()

    def arm(self, kind: FaultKind, after: int) -> Fault:
        """Set off `kind` once `after` (>= 0) more server bytes have passed."""
        with self._lock:
            fault = Fault(kind, self.total + after)
            self._armed = sorted([*self._armed, fault], key=lambda f: f.at)
        return fault

    @property
    def armed(self) -> int:
        """Faults that have not gone off yet."""
        with self._lock:
            return len(self._armed)

    def wait_fired(self, count: int, timeout: float) -> None:
        """Block until `count` faults in all have gone off; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while len(self.fired) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.fired)} of {count} faults went off in time")
            time.sleep(0.02)

    # -- plumbing --------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                link = _Link(self.opened, client, server)
                self.opened += 1
                self._links.append(link)
            threading.Thread(target=self._downstream, args=(link,), daemon=True).start()
            threading.Thread(target=self._upstream, args=(link,), daemon=True).start()

    def _downstream(self, link: _Link) -> None:
        """Server -> client, counting bytes; faults go off here."""
        try:
            while data := link.server.recv(_CHUNK):
                with self._lock:
                    fault = None
                    if self._armed and self._armed[0].at < self.total + len(data):
                        fault = self._armed.pop(0)
                        data = data[: max(0, fault.at - self.total)]
                    self.total += len(data)
                link.client.sendall(data)
                link.down += len(data)
                if fault is not None:
                    self._fire(link, fault)
                    return
        except OSError:
            pass
        link.close()

    def _upstream(self, link: _Link) -> None:
        """Client -> server; once stalled, the client's bytes are read and dropped."""
        try:
            while data := link.client.recv(_CHUNK):
                link.last_up = (link.last_up + data)[-400:]
                if not link.stalled:
                    link.server.sendall(data)
        except OSError:
            pass
        link.close()

    def _fire(self, link: _Link, fault: Fault) -> None:
        self.fired.append(Fired(fault, link.number, link.down, link.command()))
        if fault.kind == "stall":
            link.stalled = True  # nothing is relayed from now on; both sockets stay open
            return
        link.close(reset=fault.kind == "reset")
