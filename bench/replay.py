"""Replay benchmark: `keepwarm rebuild` of N touchpoints over C contacts vs a bare streamed SELECT.

Target (issue 2): the replay within 3x the time of a bare streamed SELECT of the same rows in the
same run, peak RSS under 500 MB. Usage:

    .venv/bin/python bench/replay.py [--touchpoints 1000000] [--contacts 20000] [--url URL]

The database is generated once per URL (kept in /tmp/keepwarm-bench by default) and reused.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from keepwarm.config.schema import Config, StoreConfig
from keepwarm.daemon import project
from keepwarm.model import Direction, Kind, Role, Touchpoint
from keepwarm.store import Store


def generate(store: Store, touchpoints: int, contacts: int) -> None:
    """Append `touchpoints` rows for `contacts` people with irregular rhythms, in 10k batches."""
    rng = random.Random(7)
    per = touchpoints // contacts
    start = datetime(2023, 1, 1, tzinfo=UTC)
    batch: list[Touchpoint] = []
    for c in range(contacts):
        address = f"person{c}@org{c % 700}.example"
        at = start + timedelta(days=rng.uniform(0, 300))
        mean_gap = rng.choice((2, 7, 14, 30, 90))
        for i in range(per):
            at += (
                timedelta(minutes=rng.expovariate(1 / 120))
                if rng.random() < 0.5
                else timedelta(days=rng.expovariate(1 / mean_gap))
            )
            meeting = rng.random() < 0.1
            direction = rng.choice((Direction.OUT, Direction.IN))
            role = Role.ATTENDEE if meeting else Role.FROM if direction is Direction.IN else Role.TO
            batch.append(
                Touchpoint(
                    natural_key=f"mid:{c}.{i}@bench.example",
                    counterpart=address,
                    occurred_at=at,
                    kind=Kind.MEETING if meeting else Kind.EMAIL,
                    direction=direction,
                    role=role,
                    participants=rng.randint(2, 6),
                    account="bench",
                    source=f"bench:{c}.{i}",
                    name=f"Person {c}",
                )
            )
            if len(batch) >= 10_000:
                store.ingest("bench", batch, [], [], None, now=datetime.now(UTC))
                batch = []
    if batch:
        store.ingest("bench", batch, [], [], None, now=datetime.now(UTC))


def bare_scan(url: str) -> tuple[float, int]:
    """The reference: stream every log row in the replay's order, doing nothing with it."""
    engine = sa.create_engine(url)
    started = time.perf_counter()
    rows = 0
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=10_000).execute(
            sa.text("SELECT * FROM touchpoints ORDER BY counterpart, occurred_at, natural_key")
        )
        for _ in result:
            rows += 1
    engine.dispose()
    return time.perf_counter() - started, rows


def replay(url: str) -> None:
    """Child process: one full rebuild; prints seconds and peak RSS."""
    config = Config(store=StoreConfig(url=url))
    store = Store.open(url)
    started = time.perf_counter()
    contacts = project.rebuild(store, config)
    elapsed = time.perf_counter() - started
    store.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{elapsed} {contacts} {rss}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--url", default=None, help="default: a SQLite file in /tmp/keepwarm-bench")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    url = args.url or (
        f"sqlite:////tmp/keepwarm-bench/replay-{args.touchpoints}-{args.contacts}.db"
    )
    if args.child:
        replay(url)
        return
    store = Store.open(url)
    if store.count_touchpoints() != args.touchpoints // args.contacts * args.contacts:
        print(f"generating {args.touchpoints} touchpoints for {args.contacts} contacts ...")
        generate(store, args.touchpoints, args.contacts)
    rows = store.count_touchpoints()
    store.close()
    bare_scan(url)  # warm the page cache so both runs read from memory
    scans, replays, rss = [], [], 0.0
    for _ in range(3):
        scans.append(bare_scan(url)[0])
        out = subprocess.run(
            [sys.executable, str(Path(__file__)), "--child", "--url", url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        replays.append(float(out[0]))
        rss = max(rss, float(out[2]))
    scan, rebuild = min(scans), min(replays)
    print(f"rows {rows}, contacts {out[1]}, dialect {url.split(':')[0]}")
    print(f"bare streamed SELECT : {scan:6.2f} s  ({rows / scan:,.0f} rows/s)")
    print(f"keepwarm rebuild     : {rebuild:6.2f} s  ({rows / rebuild:,.0f} rows/s)")
    print(f"ratio rebuild/SELECT : {rebuild / scan:.2f}  (target <= 3)")
    print(f"peak RSS of rebuild  : {rss:.0f} MB  (target < 500)")


if __name__ == "__main__":
    Path("/tmp/keepwarm-bench").mkdir(exist_ok=True)
    main()
