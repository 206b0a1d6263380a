"""Idle-daemon benchmark (issue 8): `keepwarm run` with 100 IMAP accounts and nothing new.

Targets: one poll round (every account polled once, nothing new) in under 1 s of CPU; the RSS
of an idle daemon under 100 MB. Usage:

    .venv/bin/python bench/daemon_idle.py [--accounts 100] [--rounds 3] [--idle-seconds 60]

A private Dovecot (tests/servers/dovecot.py) gets one user per account, each with a small
mailbox (`--messages`, INBOX and Sent, from tests/servers/mailgen.py). The daemon is the real
command, `keepwarm --config F --log-level info run`, in its own process with a SQLite store in a
temp dir, one `kind = "imap"` account per user (password_file, interval_seconds = 10, jitter 0),
with push on (one IDLE watcher per account, as a user would have it) and again with
`[daemon] push = false`. Its JSON log lines ("account synced", one per poll) say when every
account's first sync is done; from there each window ends when every account has been polled
once more. CPU is utime+stime of the daemon (/proc/PID/stat, every thread), RSS is VmRSS,
RssAnon and RssFile of /proc/PID/status after the last round, while idle.

Reference, in the same run and a fresh process: a bare imapclient loop doing what an unchanged
poll must do for each account (connect, LOGIN, STATUS of INBOX and Sent, LOGOUT), its CPU time.
A round window also holds the daemon's idle work between polls (about one interval), so a second
daemon per mode, polling every `--idle-interval` s, measures CPU per minute with no poll at all:
the loop, its background jobs, the IDLE watchers. Also: `keepwarm --help`, best of 5.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import child_report, line, machine, run_child

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.servers

from imapclient import IMAPClient
from tests.servers.dovecot import Dovecot, running_dovecot
from tests.servers.mailgen import OWNER, mailbox

NOW = datetime(2026, 11, 20, tzinfo=UTC)
FOLDERS = ("INBOX", "Sent")
STATUS_ITEMS = ["UIDNEXT", "UIDVALIDITY", "MESSAGES", "HIGHESTMODSEQ"]  # what the connector asks
TICK = os.sysconf("SC_CLK_TCK")
_BIN = Path(sys.executable).parent / "keepwarm"  # the console script, as a user starts it
KEEPWARM = [str(_BIN)] if _BIN.exists() else [sys.executable, "-m", "keepwarm"]


def reference(port: str, users_file: str) -> None:
    """In a child: connect, LOGIN, STATUS of both folders, LOGOUT, for every account."""
    users = json.loads(Path(users_file).read_text())
    wall, cpu = time.perf_counter(), time.process_time()
    for username, password in users:
        with IMAPClient("127.0.0.1", int(port), ssl=False, timeout=30) as client:
            client.login(username, password)
            for folder in FOLDERS:
                client.folder_status(folder, STATUS_ITEMS)
    child_report(cpu=time.process_time() - cpu, seconds=time.perf_counter() - wall)


# --- the daemon as a user runs it --------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def memory(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon, RssFile and VmHWM of `pid` in MB, and its thread count."""
    found: dict[str, float] = {}
    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = text.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            found[name] = int(value.split()[0]) / 1024
        elif name == "Threads":
            found[name] = int(value)
    return found


def write_config(folder: Path, users: list[tuple[str, str]], port: int, *, push: bool,
                 interval: int) -> Path:  # fmt: skip
    """A config with one IMAP account per user, each reading its password from a 0600 file."""
    out = [f'[owner]\naddresses = ["{OWNER}"]\n', f'[store]\nurl = "sqlite:///{folder}/kw.db"\n',
           f"[daemon]\njitter = 0\npush = {str(push).lower()}\n"]  # fmt: skip
    for i, (username, password) in enumerate(users):
        secret = folder / f"pw{i}"
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        out.append(
            f'[[accounts]]\nname = "a{i:03d}"\nkind = "imap"\nhost = "127.0.0.1"\n'
            f'port = {port}\nsecurity = "none"\nusername = "{username}"\n'
            f'password_file = "{secret}"\ninterval_seconds = {interval}\n'
        )
    path = folder / "keepwarm.toml"
    path.write_text("\n".join(out))
    return path


class Daemon:
    """`keepwarm run` as a subprocess; a thread reads its JSON log and counts polls."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [*KEEPWARM, "--config", str(config), "--log-level", "info", "run"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.pid = self.process.pid
        self.polls: Counter[str] = Counter()
        self.new = 0
        self.problems: list[str] = []
        self.tail: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for text in self.process.stderr:
            self.tail = [*self.tail[-30:], text]
            try:
                event = json.loads(text)
            except ValueError:
                continue
            with self._changed:
                if event.get("event") == "account synced":
                    self.polls[event["account"]] += 1
                    self.new += event.get("new", 0)
                elif event.get("level") in ("error", "warning", "critical"):
                    self.problems.append(text.strip())
                self._changed.notify_all()

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        """Block until `condition()` (checked as each log line arrives); the daemon's CPU then."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                if self.process.poll() is not None or time.monotonic() > deadline:
                    gone = "exited" if self.process.poll() is not None else "timed out"
                    raise SystemExit(f"daemon {gone} waiting for {what}:\n{''.join(self.tail)}")
                self._changed.wait(0.5)
            return cpu_seconds(self.pid)

    def polled(self, accounts: int, times: int) -> Callable[[], bool]:
        return lambda: len(self.polls) == accounts and min(self.polls.values()) >= times

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def rounds_run(users: list[tuple[str, str]], port: int, push: bool, rounds: int) -> dict[str, Any]:
    """Interval 10 s: CPU of each window in which every account is polled once more, RSS after."""
    with tempfile.TemporaryDirectory(prefix="kw-idle-") as tmp:
        daemon = Daemon(write_config(Path(tmp), users, port, push=push, interval=10))
        try:
            n = len(users)
            started = time.monotonic()
            cpu = daemon.wait(daemon.polled(n, 1), 600, "every account's first sync")
            first = time.monotonic() - started
            new_after_first = daemon.new
            windows = []
            for k in range(2, rounds + 2):
                wall = time.monotonic()
                now = daemon.wait(daemon.polled(n, k), 300, f"round {k}")
                windows.append((now - cpu, time.monotonic() - wall))
                cpu = now
            mem = memory(daemon.pid)
            if daemon.new != new_after_first:
                raise SystemExit(f"rounds after the first found {daemon.new - new_after_first} new")
        finally:
            daemon.stop()
    return {"first": first, "windows": windows, "memory": mem, "problems": daemon.problems}


def idle_run(users: list[tuple[str, str]], port: int, push: bool, interval: int,
             seconds: float) -> dict[str, Any]:  # fmt: skip
    """Interval `interval`: after every first sync and a settling pause, CPU over `seconds`."""
    with tempfile.TemporaryDirectory(prefix="kw-idle-") as tmp:
        daemon = Daemon(write_config(Path(tmp), users, port, push=push, interval=interval))
        try:
            daemon.wait(daemon.polled(len(users), 1), 600, "every account's first sync")
            time.sleep(5)  # the projection of the first syncs, the first status check
            before, wall = cpu_seconds(daemon.pid), time.monotonic()
            time.sleep(seconds)
            used, wall = cpu_seconds(daemon.pid) - before, time.monotonic() - wall
            if sum(daemon.polls.values()) != len(users):
                raise SystemExit("an account was polled during the idle window: raise the interval")
            mem = memory(daemon.pid)
        finally:
            daemon.stop()
    return {"per_minute": used / wall * 60, "memory": mem}


def best_wall(command: list[str], repeat: int = 5) -> float:
    """The fastest of `repeat` runs of a command, wall seconds (start-up time)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    return best


# --- the report ---------------------------------------------------------------------------------


def populate(dovecot: Dovecot, accounts: int, messages: int) -> list[tuple[str, str]]:
    """One new user per account, its mailbox written into its Maildir; (username, password)s."""
    users = []
    for i in range(accounts):
        user = dovecot.add_user()
        mail = list(mailbox(messages, seed=1000 + i, now=NOW, people=15))
        for folder in FOLDERS:
            dovecot.write_maildir(user, ((m.data, m.stamp) for m in mail if m.folder == folder),
                                  folder)  # fmt: skip
        users.append((user.username, user.password))
    return users


def mb(mem: dict[str, float]) -> str:
    return (f"VmRSS {mem['VmRSS']:.0f} MB (anon {mem['RssAnon']:.0f}, file {mem['RssFile']:.0f});"
            f" peak {mem['VmHWM']:.0f} MB; {mem['Threads']:.0f} threads")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--messages", type=int, default=20, help="per account, INBOX and Sent")
    parser.add_argument("--rounds", type=int, default=3, help="unchanged rounds timed; best counts")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--idle-interval", type=int, default=900, help="poll interval, idle runs")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        reference(*args.child)
        return
    line("machine", machine())
    line("load average", " ".join(f"{x:.1f}" for x in os.getloadavg()))
    python = best_wall([sys.executable, "-c", "pass"])
    helped = best_wall([*KEEPWARM, "--help"])
    with running_dovecot() as dovecot, tempfile.TemporaryDirectory() as tmp:
        users = populate(dovecot, args.accounts, args.messages)
        users_file = Path(tmp) / "users.json"
        users_file.write_text(json.dumps(users))
        child = [str(dovecot.port), str(users_file)]
        script = str(Path(__file__))
        run_child(script, child)  # Dovecot gives the new Maildirs their UIDs and index here
        refs = [run_child(script, child) for _ in range(args.rounds)]
        runs = {push: rounds_run(users, dovecot.port, push, args.rounds) for push in (True, False)}
        idle = {push: idle_run(users, dovecot.port, push, args.idle_interval, args.idle_seconds)
                for push in (True, False)}  # fmt: skip
        refs += [run_child(script, child) for _ in range(args.rounds)]
    ref = min(r["cpu"] for r in refs)
    ref_runs = " ".join(f"{r['cpu']:.2f}" for r in refs)
    print(f"-- {args.accounts} IMAP accounts, {args.messages} messages each, nothing new")
    line("keepwarm --help (best of 5)", f"{helped:.2f} s wall; python -c pass {python:.3f} s")
    line(
        "reference: imapclient, all accounts",
        f"{ref:.3f} s CPU, {min(r['seconds'] for r in refs):.2f} s wall (best of {len(refs)};"
        f" runs {ref_runs})",
    )
    for push, run in runs.items():
        name = "push on " if push else "push off"
        cpu, wall = min(run["windows"])
        idle_rate = idle[push]["per_minute"]
        polls_only = cpu - idle_rate * wall / 60
        line(f"{name}: first sync of all", f"{run['first']:.1f} s wall")
        line(
            f"{name}: CPU per round (best)",
            f"{cpu:.2f} s over {wall:.1f} s; ratio {cpu / ref:.1f}x the reference"
            f" (target < 1 s: {'met' if cpu < 1 else 'MISSED'};"
            f" rounds {' '.join(f'{c:.2f}' for c, _ in run['windows'])})",
        )
        line(
            f"{name}: polls alone (less idle)", f"{polls_only:.2f} s; ratio {polls_only / ref:.1f}x"
        )
        line(f"{name}: idle CPU per minute", f"{idle_rate:.2f} s ({idle_rate / 60:.1%} of a core)")
        verdict = "met" if run["memory"]["VmRSS"] < 100 else "MISSED"
        line(f"{name}: RSS while idle", f"{mb(run['memory'])} (target < 100: {verdict})")
        line(f"{name}: RSS, idle run", mb(idle[push]["memory"]))
        for problem in run["problems"][:3]:
            line(f"{name}: logged", problem[:200])


if __name__ == "__main__":
    main()
