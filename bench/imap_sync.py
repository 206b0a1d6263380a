"""IMAP first-sync benchmark: the connector's first sync of a big mailbox from a private local
Dovecot vs a bare imapclient header FETCH of the same messages, in the same run.

Targets (issue 3): the first sync at most 1.3x the bare FETCH, peak RSS under 200 MB.
Usage:

    .venv/bin/python bench/imap_sync.py [--size 100000] [--rounds 3] [--no-end-to-end]

The mailbox is bench/maildir_ingest.py's generated one (a two-year mailbox with replies, lists,
newsletters, auto-replies and Received/DKIM noise, in INBOX and Sent), copied once into the
home of a Dovecot user under /tmp/keepwarm-bench and kept, with Dovecot's index and cache,
between runs. Each side runs in a fresh child process (its own peak RSS), best of `rounds`:

- reference: imapclient's `fetch()` of `BODY.PEEK[HEADER.FIELDS (<the fields detection
  reads>)]` over both folders, in batches of 1,000 explicit UIDs from one `search(["ALL"])`;
  the results are counted and dropped. It is what "use imapclient" costs, before any parsing.
- connector: `ImapConnector.poll(None)` to the end: LIST, STATUS, EXAMINE, windowed
  UID SEARCH SINCE, the header FETCH read by the connector's own narrow reader, and
  `parse_headers` of every header block into a `MessageMeta`, batch by batch.
- also timed: that narrow reader alone (the same searches and FETCHes, nothing parsed), to
  show what the reader costs beside `parse_headers`.

For context, also printed: the server's own speed (one raw `UID FETCH 1:*` read off a socket,
nothing parsed) and, once, `keepwarm sync` end to end into a new SQLite store (connector,
detection, store transactions, projection).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from _common import bench_dir, child_report, line, machine, memory_mb, run_child
from maildir_ingest import GENERATOR, NOW, OWNER, OWNER_WORK, maildir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.servers.dovecot

from imapclient import IMAPClient
from tests.servers.dovecot import running_dovecot

from keepwarm.config.schema import AccountConfig, Config, OwnerConfig, StoreConfig
from keepwarm.connectors.base import ConnectorContext
from keepwarm.connectors.imap import ImapConnector
from keepwarm.connectors.imap.client import session
from keepwarm.connectors.imap.fetch import candidate_uids, fetch_headers
from keepwarm.daemon.sync import sync_all
from keepwarm.detect.headers import WANTED

FOLDERS = ("INBOX", "Sent")
BATCH = 1000
ITEM = "BODY.PEEK[HEADER.FIELDS (" + " ".join(f.upper() for f in WANTED) + ")]"


def homes(size: int) -> Path:
    """Dovecot homes holding user1's copy of the generated mailbox (copied on first use)."""
    root = bench_dir() / f"imap-homes-g{GENERATOR}-{size}"
    done = root / ".complete"
    if not done.exists():
        source = maildir(size)
        print(f"copying the {size:,}-message Maildir for Dovecot ...", flush=True)
        shutil.rmtree(root, ignore_errors=True)
        target = root / "user1" / "Maildir"
        target.mkdir(parents=True)
        for sub in ("cur", "new", "tmp"):
            shutil.copytree(source / sub, target / sub)
        for sub in ("cur", "new", "tmp"):
            shutil.copytree(source / ".Sent" / sub, target / ".Sent" / sub)
        done.write_text("ok\n")
    return root


def account(port: int, password_env: str) -> AccountConfig:
    return AccountConfig(
        name="bench", kind="imap", host="127.0.0.1", port=port, security="none",
        username="user1", password_env=password_env,
    )  # fmt: skip


# --- the two sides, each in its child process --------------------------------------------------


def reference(port: int, password: str) -> None:
    """Bare imapclient: search, then fetch the header fields 1,000 explicit UIDs at a time."""
    base = memory_mb()["peak"]
    started = time.perf_counter()
    count = 0
    with IMAPClient("127.0.0.1", port, ssl=False) as client:
        client.login("user1", password)
        for folder in FOLDERS:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            for start in range(0, len(uids), BATCH):
                count += len(client.fetch(uids[start : start + BATCH], [ITEM]))
    child_report(seconds=time.perf_counter() - started, messages=count, base_mb=base)


def connector(port: int, password: str) -> None:
    """The connector's first sync, every batch consumed and dropped as the daemon would."""
    os.environ["KEEPWARM_BENCH_IMAP"] = password
    context = ConnectorContext(state_dir=Path(tempfile.gettempdir()), wanted_headers=WANTED)
    base = memory_mb()["peak"]
    started = time.perf_counter()
    items = skipped = 0
    conn = ImapConnector(account(port, "KEEPWARM_BENCH_IMAP"), context)
    try:
        for batch in conn.poll(None):
            items += len(batch.items)
            skipped += len(batch.skipped)
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    child_report(seconds=seconds, messages=items + skipped, items=items, base_mb=base)


def reader(port: int, password: str) -> None:
    """The connector's FETCH reader alone (same UID windows and batches), nothing parsed."""
    base = memory_mb()["peak"]
    started = time.perf_counter()
    count = 0
    with session(account(port, ""), lambda: password) as client:
        for folder in FOLDERS:
            selected = client.select_folder(folder, readonly=True)
            exists, uidnext = selected[b"EXISTS"], selected[b"UIDNEXT"]
            for uids in candidate_uids(client, exists, 0, uidnext, None):
                for start in range(0, len(uids), BATCH):
                    count += sum(
                        1 for _ in fetch_headers(client, uids[start : start + BATCH], WANTED)
                    )
    child_report(seconds=time.perf_counter() - started, messages=count, base_mb=base)


def end_to_end(port: int, password: str, db: str) -> None:
    """`keepwarm sync` of the IMAP account into a new SQLite store."""
    os.environ["KEEPWARM_BENCH_IMAP"] = password
    config = Config(
        owner=OwnerConfig(addresses=(OWNER, OWNER_WORK), name="Sam Rivera"),
        store=StoreConfig(url=f"sqlite:///{db}"),
        accounts=(account(port, "KEEPWARM_BENCH_IMAP"),),
    )
    from keepwarm.store import Store

    with Store.open(f"sqlite:///{db}") as store:
        started = time.perf_counter()
        [result] = sync_all(store, config, now=lambda: NOW)
        seconds = time.perf_counter() - started
        touchpoints = store.count_touchpoints()
    if not result.ok:
        raise SystemExit(f"sync failed: {result.error}")
    child_report(seconds=seconds, messages=result.items, touchpoints=touchpoints)


def raw_server(port: int, password: str) -> tuple[float, int]:
    """One `UID FETCH 1:*` per folder read off a plain socket: the server and wire alone."""
    started = time.perf_counter()
    total = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(f'a LOGIN user1 "{password}"\r\n'.encode())
        _until(reader, b"a ")
        for i, folder in enumerate(FOLDERS):
            sock.sendall(f"s{i} EXAMINE {folder}\r\n".encode())
            _until(reader, f"s{i} ".encode())
            sock.sendall(f"f{i} UID FETCH 1:* (UID {ITEM})\r\n".encode())
            total += _until(reader, f"f{i} ".encode())
        sock.sendall(b"z LOGOUT\r\n")
    return time.perf_counter() - started, total


def _until(reader: object, tag: bytes) -> int:
    """Read responses up to the tagged one, skipping literals; the FETCH responses seen."""
    fetches = 0
    readline, read = reader.readline, reader.read  # type: ignore[attr-defined]
    while True:
        text = readline()
        if text.startswith(tag):
            return fetches
        if b" FETCH " in text:
            fetches += 1
        if text.endswith(b"}\r\n"):
            read(int(text[text.rindex(b"{") + 1 : -3]))


# --- the report ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side; best counts")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the keepwarm sync run")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, port, password, *rest = args.child
        sides = {"reference": reference, "reader": reader, "connector": connector}
        {**sides, "end-to-end": end_to_end}[side](int(port), password, *rest)
        return
    line("machine", machine())
    with running_dovecot(homes(args.size)) as dovecot:
        user = dovecot.add_user()
        assert user.username == "user1"
        dovecot.give_home(user)  # the copied files belong to the mail user
        script = str(Path(__file__))
        child = [str(dovecot.port), user.password]
        print("warming Dovecot's index and cache ...", flush=True)
        warm = run_child(script, ["reference", *child])
        refs, readers, syncs = [], [], []
        for _ in range(args.rounds):
            refs.append(run_child(script, ["reference", *child]))
            readers.append(run_child(script, ["reader", *child]))
            syncs.append(run_child(script, ["connector", *child]))
        raw_seconds, raw_count = min(raw_server(dovecot.port, user.password) for _ in range(3))
        e2e = None
        if not args.no_end_to_end:
            with tempfile.TemporaryDirectory() as tmp:
                e2e = run_child(script, ["end-to-end", *child, f"{tmp}/kw.db"])
    ref = min(refs, key=lambda r: r["seconds"])
    best = min(syncs, key=lambda s: s["seconds"])
    count = warm["messages"]
    print(f"-- {count:,} messages (INBOX and Sent)")
    line(
        "server alone, raw UID FETCH 1:*",
        f"{raw_seconds:7.2f} s  ({raw_count / raw_seconds:,.0f}/s)",
    )
    line(
        "bare imapclient FETCH (best)",
        f"{ref['seconds']:7.2f} s  ({count / ref['seconds']:,.0f}/s)",
    )
    lean = min(r["seconds"] for r in readers)
    line("connector's FETCH reader (best)", f"{lean:7.2f} s  ({count / lean:,.0f}/s, no parsing)")
    line(
        "connector first sync (best)",
        f"{best['seconds']:7.2f} s  ({best['messages'] / best['seconds']:,.0f}/s,"
        f" {best['items']:,.0f} parsed)",
    )
    line(
        "all runs, imapclient / connector",
        " ".join(
            f"{r['seconds']:.2f}/{s['seconds']:.2f}" for r, s in zip(refs, syncs, strict=True)
        ),
    )
    line("ratio connector / imapclient", f"{best['seconds'] / ref['seconds']:.2f}  (target <= 1.3)")
    base = max(s["base_mb"] for s in syncs)
    line(
        "peak RSS, connector",
        f"{max(s['rss_mb'] for s in syncs):.0f} MB  (target < 200; {base:.0f} MB of it imports)",
    )
    line("peak RSS, imapclient", f"{max(r['rss_mb'] for r in refs):.0f} MB")
    if e2e is not None:
        line(
            "keepwarm sync end to end",
            f"{e2e['seconds']:7.2f} s  ({e2e['messages'] / e2e['seconds']:,.0f}/s,"
            f" {e2e['touchpoints']:,.0f} touchpoints, {e2e['rss_mb']:.0f} MB)",
        )


if __name__ == "__main__":
    main()
