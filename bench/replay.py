"""Replay benchmark: `keepwarm rebuild` of N touchpoints over C contacts vs a bare streamed SELECT.

Target (issue 2): the rebuild within 3x the time of a bare streamed SELECT of the same rows in
the same run; peak RSS of the rebuild under 500 MB. Usage:

    .venv/bin/python bench/replay.py [--touchpoints 1000000] [--contacts 20000] [--url URL]
                                     [--rounds 3] [--keep]

Reference: the replay's own query (the same twelve columns, the same ORDER BY, on an engine with
the store's connection settings), streamed through SQLAlchemy and thrown away row by row. It is
timed at the rebuild's fetch size (`project.read_batch`) and at 10,000 rows, and the fastest run
of either counts, so the reference is never a slower fetch than the rebuild's. What the rebuild
adds on top of it is keepwarm's work: decoding rows into Touchpoints, folding, and writing the
state cache. The rebuild runs in a child process so its peak RSS is its own.

The log is generated in time order, as a daemon appends it, so walking it in (counterpart, time)
order jumps around the table exactly as a real replay does. A SQLite database is generated once
per size and kept in /tmp/keepwarm-bench. Given a PostgreSQL URL whose database does not exist,
the benchmark creates it and drops it at the end (`--keep` keeps it).
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from functools import partial
from pathlib import Path

import sqlalchemy as sa
from _common import (
    END,
    bench_dir,
    child_report,
    histories,
    line,
    machine,
    memory_mb,
    run_child,
    timed,
)

from keepwarm.config.schema import Config, StoreConfig
from keepwarm.daemon import project
from keepwarm.store import Store
from keepwarm.store import engine as store_engine

# Bump when the generator changes, so a kept database of the old shape is not reused.
GENERATOR = 3
REPLAY_SQL = sa.text(
    "SELECT natural_key, counterpart, occurred_at, kind, direction, role, participants,"
    " account, source, name, thread_key, subject"
    " FROM touchpoints ORDER BY counterpart, occurred_at, natural_key"
)


def generate(store: Store, touchpoints: int, contacts: int) -> None:
    """Fill the log with `touchpoints` rows for `contacts` people, appended in time order."""
    log = [tp for history in histories(touchpoints, contacts, seed=7) for tp in history]
    log.sort(key=lambda tp: tp.occurred_at)
    recorded = END + timedelta(days=1)
    for start in range(0, len(log), 10_000):
        store.ingest("bench", log[start : start + 10_000], [], [], None, now=recorded)


def bare_scan(url: str, batch: int) -> int:
    """The reference: the replay's rows in the replay's order, streamed and thrown away."""
    engine = store_engine.create(url)
    rows = 0
    try:
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(REPLAY_SQL)
            for _ in result:
                rows += 1
    finally:
        engine.dispose()
    return rows


def child(url: str) -> None:
    """In the child process: one full rebuild, timed, with the process's peak RSS."""
    config = Config(store=StoreConfig(url=url))
    with Store.open(url) as store:
        seconds, cpu, contacts = timed(lambda: project.rebuild(store, config))
        # Before closing: closing the store unmaps the database, and RssFile with it.
        end = memory_mb()
    child_report(
        seconds=seconds, cpu=cpu, contacts=contacts, anon_mb=end["anon"], file_mb=end["file"]
    )


def _admin(url: str, statement: str) -> None:
    """CREATE or DROP DATABASE, which PostgreSQL runs only outside a transaction."""
    admin = sa.make_url(url).set(database="postgres")
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _database_exists(url: str) -> bool:
    name = sa.make_url(url).database
    admin = sa.create_engine(sa.make_url(url).set(database="postgres"))
    try:
        with admin.connect() as conn:
            found = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
    finally:
        admin.dispose()
    return found is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--url", default=None, help="default: a SQLite file in /tmp/keepwarm-bench")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side; best counts")
    parser.add_argument("--keep", action="store_true", help="keep a PostgreSQL database made here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    url = args.url or (
        f"sqlite:///{bench_dir()}/replay-g{GENERATOR}-{args.touchpoints}-{args.contacts}.db"
    )
    if args.child:
        child(url)
        return
    created = False
    if url.startswith("postgresql") and not _database_exists(url):
        _admin(url, f'CREATE DATABASE "{sa.make_url(url).database}"')
        created = True
    try:
        run(url, args.touchpoints, args.contacts, args.rounds)
    finally:
        if created and not args.keep:
            _admin(url, f'DROP DATABASE "{sa.make_url(url).database}"')


def run(url: str, touchpoints: int, contacts: int, rounds: int) -> None:
    with Store.open(url) as store:
        if store.count_touchpoints() != touchpoints:
            if store.count_touchpoints():
                raise SystemExit(f"{store_engine.masked(url)} holds another log; use a new one")
            print(f"generating {touchpoints:,} touchpoints for {contacts:,} contacts ...")
            generate(store, touchpoints, contacts)
    # The reference's fetch sizes: the rebuild's own, and the 10,000 rows it used before.
    batches = sorted({project.read_batch(sa.make_url(url).get_backend_name()), 10_000})
    bare_scan(url, batches[-1])  # warm the page cache, so both sides read from memory
    # Alternate the two sides, so a neighbour's load slows both rather than one.
    scans: list[tuple[float, float]] = []
    per_batch: dict[int, list[float]] = {batch: [] for batch in batches}
    rebuilds: list[dict[str, float]] = []
    for _ in range(rounds):
        for batch in batches:
            wall, cpu, _ = timed(partial(bare_scan, url, batch))
            scans.append((wall, cpu))
            per_batch[batch].append(wall)
        rebuilds.append(run_child(str(Path(__file__)), ["--url", url]))
    scan = min(wall for wall, _ in scans)
    rebuild = min(r["seconds"] for r in rebuilds)
    scan_cpu = min(cpu for _, cpu in scans)
    rebuild_cpu = min(r["cpu"] for r in rebuilds)
    rss = max(r["rss_mb"] for r in rebuilds)
    anon = max(r["anon_mb"] for r in rebuilds)
    mapped = max(r["file_mb"] for r in rebuilds)
    line("machine", machine())
    line("database", f"{store_engine.masked(url)}")
    line("log", f"{touchpoints:,} touchpoints, {int(rebuilds[0]['contacts']):,} contacts")
    line("bare streamed SELECT (best)", f"{scan:7.2f} s  ({touchpoints / scan:,.0f} rows/s)")
    line("keepwarm rebuild (best)", f"{rebuild:7.2f} s  ({touchpoints / rebuild:,.0f} rows/s)")
    for batch, walls in per_batch.items():
        line(f"all runs, SELECT by {batch:,}", " ".join(f"{wall:.2f}" for wall in walls))
    line("all runs, rebuild", " ".join(f"{r['seconds']:.2f}" for r in rebuilds))
    line("ratio rebuild / SELECT", f"{rebuild / scan:.2f}  (target <= 3)")
    line("same in CPU time", f"{rebuild_cpu:.2f} / {scan_cpu:.2f} s = {rebuild_cpu / scan_cpu:.2f}")
    line("peak RSS of the rebuild process", f"{rss:.0f} MB  (target < 500)")
    mmap = " (mostly SQLite's memory-mapped database)" if url.startswith("sqlite") else ""
    line("  at its end: anonymous / file", f"{anon:.0f} MB / {mapped:.0f} MB{mmap}")


if __name__ == "__main__":
    main()
