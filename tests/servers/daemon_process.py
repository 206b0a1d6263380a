"""keepwarm as its user runs it, for tests that kill, break and compare: `keepwarm run` as a
subprocess (started, SIGKILLed, stopped with SIGTERM), one-shot commands, and a snapshot of
what a store holds (the log through the Store API, per-account counts, the contact list) that
two runs can be compared by.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from tests.servers.mailgen import OWNER

from keepwarm.store import Store

# The clock `keepwarm contacts` assesses at, the same for every store compared.
CONTACTS_NOW = "2030-01-01T00:00:00+00:00"
LOG_KEYS = ("touchpoints", "skipped", "skipped_reasons", "filtered")


def write_config(folder: Path, store_url: str, accounts: str, daemon: str = "") -> Path:
    """A config file with the owner, the store, `accounts` (TOML) and a [daemon] table."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "keepwarm.toml"
    path.write_text(
        f'[owner]\naddresses = ["{OWNER}"]\n[store]\nurl = "{store_url}"\n'
        f"[daemon]\n{daemon}\n{accounts}"
    )
    return path


def secret_file(folder: Path, value: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "secret"
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def command(config: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """`keepwarm --config CONFIG ARGS...` as a subprocess; its stdout (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", "keepwarm", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"keepwarm {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done.stdout


class Daemon:
    """`keepwarm run` on one config; every start appends its stderr to `log`."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running:
            self.kill()

    def start(self) -> None:
        assert not self.running
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "keepwarm", "--config", str(self.config),
                 "--log-level", "info", "run"],
                stdout=subprocess.DEVNULL,
                stderr=out,
            )  # fmt: skip

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, no transaction commits, no socket is closed politely."""
        process = self._alive("SIGKILL")
        process.kill()
        process.wait(30)
        self.process = None

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code."""
        process = self._alive("SIGTERM")
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout)
        self.process = None
        return code

    def _alive(self, what: str) -> subprocess.Popen[bytes]:
        process = self.process
        assert process is not None
        code = process.poll()
        assert code is None, f"the daemon exited on its own ({code}) before {what}:\n{self.tail()}"
        return process

    def tail(self, size: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-size:]

    def problems(self) -> list[str]:
        """Log lines of tracebacks and of errors no code path meant to report."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if "Traceback" in line or '"exception"' in line or "crashed" in line:
                found.append(line[:2000])
        return found


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, daemon: Daemon | None = None
) -> None:
    """Poll `condition` every 10 ms; AssertionError naming `what` after `timeout` seconds or
    as soon as `daemon` has died."""
    deadline = time.monotonic() + timeout
    while not condition():
        if daemon is not None and not daemon.running:
            raise AssertionError(f"the daemon died waiting for {what}:\n{daemon.tail()}")
        if time.monotonic() > deadline:
            tail = f":\n{daemon.tail()}" if daemon is not None else ""
            raise AssertionError(f"timed out waiting for {what}{tail}")
        time.sleep(0.01)


@dataclass(frozen=True)
class Snapshot:
    """What one store says: every log row, each account's counts, and the contact list."""

    rows: list[tuple[Any, ...]]
    accounts: dict[str, dict[str, Any]]
    contacts: list[dict[str, Any]]


def log_rows(store_url: str) -> list[tuple[Any, ...]]:
    """Every touchpoint in the log as a tuple of all its fields, in the log's replay order."""
    store = Store.open(store_url)
    try:
        return [astuple(tp) for tp in store.iter_touchpoints()]
    finally:
        store.close()


def states(store_url: str) -> list[dict[str, Any]]:
    """The projection's cached contact states."""
    store = Store.open(store_url)
    try:
        return store.load_states()
    finally:
        store.close()


def snapshot(config: Path, store_url: str) -> Snapshot:
    status = json.loads(command(config, "status", "--format", "json"))
    accounts = {row["name"]: {k: row[k] for k in LOG_KEYS} for row in status["accounts"]}
    listed = command(config, "contacts", "--format", "json", env={"KEEPWARM_NOW": CONTACTS_NOW})
    return Snapshot(log_rows(store_url), accounts, json.loads(listed))


def differences(got: Snapshot, want: Snapshot) -> list[str]:
    """What differs between two snapshots, in words (empty: the same)."""
    out = []
    if len(set(got.rows)) != len(got.rows):
        out.append(f"{len(got.rows) - len(set(got.rows))} rows are in the log twice")
    missing = sorted(map(repr, set(want.rows) - set(got.rows)))
    extra = sorted(map(repr, set(got.rows) - set(want.rows)))
    if missing or extra:
        out.append(
            f"log: {len(missing)} rows missing, {len(extra)} extra (of {len(want.rows)}); "
            f"missing e.g. {missing[:3]}, extra e.g. {extra[:3]}"
        )
    if got.accounts != want.accounts:
        out.append(f"account counts: got {got.accounts}, want {want.accounts}")
    if got.contacts != want.contacts:
        mine = {c["address"]: c for c in got.contacts}
        theirs = {c["address"]: c for c in want.contacts}
        changed = sorted(a for a in mine.keys() & theirs.keys() if mine[a] != theirs[a])
        out.append(
            f"contacts: {len(theirs.keys() - mine.keys())} missing, "
            f"{len(mine.keys() - theirs.keys())} extra, {len(changed)} different of "
            f"{len(theirs)}; e.g. {[(mine[a], theirs[a]) for a in changed[:1]]}"
        )
    return out
