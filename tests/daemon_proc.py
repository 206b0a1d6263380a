"""`keepwarm run` as a child process whose JSON log lines a test can wait for."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Event = dict[str, Any]


class Daemon:
    """A running daemon; `events` grows as it logs."""

    def __init__(self, config: Path, env: Mapping[str, str] | None = None, level: str = "debug"):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keepwarm", "--config", str(config), "--log-level", level,
             "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        self.lines: list[str] = []
        self.events: list[Event] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.events.append(event)

    def log(self) -> str:
        return "".join(self.lines)

    def matching(self, event: str, **fields: Any) -> list[Event]:
        return [
            e
            for e in list(self.events)
            if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
        ]

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited ({self.process.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not seen in {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def wait_event(self, event: str, count: int = 1, timeout: float = 30.0, **fields: Any) -> Event:
        self.wait_for(lambda: len(self.matching(event, **fields)) >= count, timeout, event)
        return self.matching(event, **fields)[count - 1]

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            self.kill()
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextmanager
def running(config: Path, env: Mapping[str, str] | None = None) -> Iterator[Daemon]:
    daemon = Daemon(config, env)
    try:
        yield daemon
    finally:
        daemon.kill()
