"""Shared plumbing of the benchmarks: where data lives, best-of timing, child-process runs.

Every benchmark prints its figure as a ratio against a reference measured in the same run, so
the numbers survive a slower or busier machine. Runs are repeated and the best one kept: on a
shared two-core machine the noise is almost all other work slowing us down, never speeding us up.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from keepwarm.model import Direction, Kind, Role, Touchpoint

T = TypeVar("T")

BENCH_DIR = Path(os.environ.get("KEEPWARM_BENCH_DIR", "/tmp/keepwarm-bench"))
# Synthetic histories run from START to END, three years; a benchmark's "now" is just after.
START = datetime(2023, 12, 1, tzinfo=UTC)
END = datetime(2026, 11, 20, tzinfo=UTC)
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "gmx.de", "proton.me")
FIRST = ("ana", "ben", "chloe", "dev", "emma", "farid", "greta", "hugo", "ines", "jon", "kai")
LAST = ("smith", "garcia", "müller", "rossi", "dubois", "novak", "tanaka", "okafor", "silva")


def bench_dir() -> Path:
    """The directory generated data is kept in between runs (generation is the slow part)."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    return BENCH_DIR


def best_of(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """The fastest of `repeat` calls of `fn` in seconds, and the last call's result."""
    started = time.perf_counter()
    result = fn()
    best = time.perf_counter() - started
    for _ in range(repeat - 1):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def timed(fn: Callable[[], T]) -> tuple[float, float, T]:
    """One call of `fn`: wall seconds, CPU seconds of this process, and its result.

    CPU time is printed beside wall time because the machine is shared: other work stretches
    the wall clock of a CPU-bound run but hardly its CPU time.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def memory_mb() -> dict[str, float]:
    """This process's peak RSS and its current anonymous and file-backed parts, in MB.

    From /proc/self/status (Linux): VmHWM is the peak of this process image only, whereas
    ru_maxrss also counts the parent's memory that a forked (vfork'd) child shared before exec,
    which made a child started by a parent holding a generated log look 400 MB bigger. RssFile
    is mostly SQLite's memory-mapped database: page cache, shared and reclaimable, but counted.
    """
    wanted = {"VmHWM": "peak", "RssAnon": "anon", "RssFile": "file"}
    found: dict[str, float] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for text in status:
                name, _, value = text.partition(":")
                if name in wanted:
                    found[wanted[name]] = int(value.split()[0]) / 1024
    except OSError:
        found["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return found


def child_report(**figures: Any) -> None:
    """In a child process: print the figures, plus its peak RSS, as the last stdout line."""
    print(json.dumps({**figures, "rss_mb": memory_mb()["peak"]}))


def run_child(script: str, args: Sequence[str]) -> dict[str, Any]:
    """Run `script --child ARGS` in a fresh interpreter and return what `child_report` printed.

    A fresh process is the only honest peak RSS: the parent's generated data and caches would
    otherwise count, and ru_maxrss never goes down.
    """
    done = subprocess.run(
        [sys.executable, script, "--child", *args],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({done.returncode}):\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def machine() -> str:
    """One line naming what the figures were measured on."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def line(label: str, value: str) -> None:
    """One aligned `label : value` line of a benchmark's report."""
    print(f"{label:<34}: {value}")


def histories(touchpoints: int, contacts: int, *, seed: int) -> Iterator[list[Touchpoint]]:
    """`contacts` synthetic contact histories (each sorted by time) of `touchpoints` in all."""
    rng = random.Random(seed)
    for c, n in enumerate(_counts(rng, touchpoints, contacts)):
        yield _contact(rng, c, n)


def _counts(rng: random.Random, touchpoints: int, contacts: int) -> list[int]:
    """Touchpoints per contact, heavy-tailed like a real mailbox, summing to `touchpoints`."""
    weights = [rng.lognormvariate(0, 1.2) for _ in range(contacts)]
    scale = (touchpoints - contacts) / sum(weights)
    counts = [1 + int(w * scale) for w in weights]
    for c in rng.choices(range(contacts), weights=weights, k=touchpoints - sum(counts)):
        counts[c] += 1
    return counts


def _contact(rng: random.Random, c: int, n: int) -> list[Touchpoint]:
    """One contact's history: bursts of mail (and some meetings) around a rhythm of its own."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    domain = rng.choice(FREE_MAIL) if rng.random() < 0.3 else f"org{c % 1500}.example"
    address = f"{first}.{last}{c}@{domain}"
    name = f"{first.title()} {last.title()}"
    span = (END - START).total_seconds()
    # Some contacts went quiet a while ago: their history ends early, as after a job change.
    active_from = START.timestamp() + rng.uniform(0, 0.6) * span
    active_to = END.timestamp() - (rng.uniform(0, 0.5) * span if rng.random() < 0.3 else 0)
    bursts = max(1, round(n / rng.choice((1.0, 1.5, 2.0, 3.0))))
    starts = sorted(rng.uniform(active_from, active_to) for _ in range(bursts))
    # Touch i belongs to burst i % bursts, as its (i // bursts)-th exchange. Within a burst the
    # two sides take turns and, nine times in ten, the owner has the last word: a mailbox where
    # half the threads end unanswered would make every other contact an owed reply.
    lengths = [n // bursts + (b < n % bursts) for b in range(bursts)]
    answered = [rng.random() < 0.9 for _ in range(bursts)]
    offsets = [0.0] * bursts
    out: list[Touchpoint] = []
    for i in range(n):
        b, k = i % bursts, i // bursts
        offsets[b] += rng.expovariate(1 / 5400) if k else 0.0
        at = starts[b] + offsets[b]
        meeting = rng.random() < 0.08
        owner_turn = (lengths[b] - 1 - k) % 2 == 0
        direction = Direction.OUT if owner_turn == answered[b] else Direction.IN
        if meeting:
            role = Role.ORGANIZER if direction is Direction.IN else Role.ATTENDEE
            people = rng.choice((2, 2, 3, 4, 6, 8))
        elif rng.random() < 0.18:
            role, people = Role.CC, rng.randint(3, 7)
        else:
            role = Role.FROM if direction is Direction.IN else Role.TO
            people = 2 if rng.random() < 0.8 else rng.randint(3, 6)
        token = hashlib.blake2b(f"{c}.{i}".encode(), digest_size=8).hexdigest()
        account = "work" if domain.startswith("org") else "home"
        key = f"evt:{token}@calendar.example:" if meeting else f"mid:{token}@{domain}"
        out.append(
            Touchpoint(
                natural_key=key,
                counterpart=address,
                occurred_at=datetime.fromtimestamp(math.floor(at), UTC),
                kind=Kind.MEETING if meeting else Kind.EMAIL,
                direction=direction,
                role=role,
                participants=people,
                account=account,
                source=f"{'ics' if meeting else 'maildir'}:{account}/{token}",
                name=name,
                thread_key=None if meeting else f"t:{token[:6]}",
            )
        )
    out.sort(key=lambda tp: (tp.occurred_at, tp.natural_key))
    return out
