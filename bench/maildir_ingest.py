"""Maildir ingest benchmark: `keepwarm sync` of a fresh Maildir, end to end, vs reading it raw.

Target (issue 2): at least 5,000 messages/s end to end on this machine, with memory flat in the
mailbox size (peak RSS of a first sync of 20k messages vs 100k). Usage:

    .venv/bin/python bench/maildir_ingest.py [--sizes 20000 100000] [--rounds 3]

End to end is `daemon.sync.sync_all` with one maildir account into a new SQLite store: list and
stat the folders, read each header block, parse it, detect touchpoints, `store.ingest` every
batch of 1,000 with its cursor, then the projection update of every touched contact. Each run is
a first sync into an empty store, in a child process whose peak RSS is its own.

Reference, same run, same files: reading every file's header block raw, i.e. listing cur/ and,
per file, open + read(16 KiB) until the blank line (the connector's first read is 16 KiB too),
then close. It is what any Maildir reader must pay; the ratio says what keepwarm adds to it.
Both sides run with the files in the page cache (the reference runs once first to warm it).

The Maildirs are generated once per size into /tmp/keepwarm-bench: a two-year mailbox of one
owner with varied correspondents (To/Cc lists, free-mail and company domains, encoded names),
replies with In-Reply-To/References, mailing-list mail, newsletters, no-reply notifications and
auto-replies, with Received/DKIM/ARC header noise like a real mailbox, in INBOX and Sent.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from functools import partial
from pathlib import Path

from _common import (
    bench_dir,
    best_of,
    child_report,
    line,
    machine,
    memory_mb,
    run_child,
    timed,
)

from keepwarm.config.schema import AccountConfig, Config, OwnerConfig, StoreConfig
from keepwarm.daemon.sync import sync_all
from keepwarm.store import Store

GENERATOR = 1
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
OWNER = "sam.rivera@home.example"
OWNER_WORK = "s.rivera@acme.example"
FIRST = (
    "Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Greta", "Hugo", "Inès", "Jon", "Kai",
    "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tomás", "Uma", "Yuki",
)  # fmt: skip
LAST = (
    "Smith", "García", "Müller", "Rossi", "Dubois", "Novak", "Tanaka", "Okafor", "Silva",
    "Nguyen", "O'Brien", "Kowalski", "Andersson", "Haddad", "Ivanova", "Mensah",
)  # fmt: skip
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.co.uk", "icloud.com", "gmx.de", "proton.me")
LISTS = ("python-dev", "rust-users", "climbing-club", "neighbours", "book-circle")
SENDERS_BULK = (
    ("Shop", "newsletter@shop.example"),
    ("Airline", "no-reply@fly.example"),
    ("Bank", "notifications@bank.example"),
    ("GitHub", "noreply@github.com"),
)
_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
SUBJECTS = (
    "Lunch next week?", "Re: the draft", "Photos from Saturday", "Quick question",
    "Contract renewal", "Notes from today's call", "Trip in March", "Happy birthday!",
    "Intro: two people you should meet", "Invoice 2291", "Weekend plans",
)  # fmt: skip


class Mailbox:
    """Writes a generated owner's mailbox into a Maildir tree, one message at a time."""

    def __init__(self, root: Path, seed: int) -> None:
        self.rng = random.Random(seed)
        self.root = root
        self.n = 0
        for folder in (root, root / ".Sent"):
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
        rng = self.rng
        self.people: list[tuple[str, str]] = []
        for i in range(3000):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            local = f"{first}.{last}".lower().replace("'", "").replace(" ", "")
            domain = rng.choice(FREE_MAIL) if rng.random() < 0.35 else f"co{i % 400}.example"
            self.people.append((f"{first} {last}", f"{local}{i}@{domain}"))
        # Heavy-tailed: a few people make most of the mail, as in any real mailbox.
        self.weights = [1 / (rank + 5) for rank in range(len(self.people))]
        self.ids: list[str] = []  # recent Message-IDs, for replies

    def write(self, count: int) -> None:
        start = NOW - timedelta(days=730)
        for _ in range(count):
            at = start + timedelta(seconds=self.rng.uniform(0, 729 * 86400))
            roll = self.rng.random()
            if roll < 0.25:
                self._personal(at, outbound=True)
            elif roll < 0.70:
                self._personal(at, outbound=False)
            elif roll < 0.85:
                self._list_mail(at)
            elif roll < 0.97:
                self._bulk(at)
            else:
                self._auto_reply(at)

    def _person(self) -> tuple[str, str]:
        return self.rng.choices(self.people, weights=self.weights)[0]

    def _others(self, most: int) -> list[tuple[str, str]]:
        return [self._person() for _ in range(self.rng.choice((0, 0, 0, 1, 1, 2, most)))]

    def _personal(self, at: datetime, *, outbound: bool) -> None:
        rng = self.rng
        them = self._person()
        me = ("Sam Rivera", OWNER if rng.random() < 0.6 else OWNER_WORK)
        cc = self._others(4)
        sender, to = (me, [them, *self._others(2)]) if outbound else (them, [me])
        fields = [("From", _mailbox(*sender)), ("To", ", ".join(_mailbox(*p) for p in to))]
        if cc:
            fields.append(("Cc", ", ".join(_mailbox(*p) for p in cc)))
        subject = rng.choice(SUBJECTS)
        if self.ids and rng.random() < 0.5:
            parent = rng.choice(self.ids[-200:])
            fields += [("In-Reply-To", f"<{parent}>"), ("References", f"<{parent}>")]
            subject = "Re: " + subject.removeprefix("Re: ")
        fields.append(("Subject", _subject(subject, rng)))
        self._save(at, fields, sender[1].rpartition("@")[2], sent=outbound)

    def _list_mail(self, at: datetime) -> None:
        name = self.rng.choice(LISTS)
        sender = self._person()
        fields = [
            ("From", _mailbox(*sender)),
            ("To", f"{name}@lists.example"),
            ("Subject", f"[{name}] " + self.rng.choice(SUBJECTS)),
            ("List-Id", f"<{name}.lists.example>"),
            ("List-Unsubscribe", f"<mailto:{name}-leave@lists.example>"),
            ("List-Post", f"<mailto:{name}@lists.example>"),
            ("Precedence", "list"),
        ]
        self._save(at, fields, "lists.example", sent=False)

    def _bulk(self, at: datetime) -> None:
        name, address = self.rng.choice(SENDERS_BULK)
        fields = [
            ("From", f"{name} <{address}>"),
            ("To", _mailbox("Sam Rivera", OWNER)),
            ("Subject", f"Your {name.lower()} update"),
            ("List-Unsubscribe", f"<https://{address.split('@')[1]}/u?id={self.n}>"),
            ("Precedence", "bulk"),
        ]
        self._save(at, fields, address.split("@")[1], sent=False)

    def _auto_reply(self, at: datetime) -> None:
        sender = self._person()
        fields = [
            ("From", _mailbox(*sender)),
            ("To", _mailbox("Sam Rivera", OWNER)),
            ("Subject", "Automatic reply: " + self.rng.choice(SUBJECTS)),
            ("Auto-Submitted", "auto-replied"),
        ]
        self._save(at, fields, sender[1].rpartition("@")[2], sent=False)

    def _save(
        self, at: datetime, fields: list[tuple[str, str]], domain: str, *, sent: bool
    ) -> None:
        rng = self.rng
        self.n += 1
        mid = f"{rng.getrandbits(64):016x}.{self.n}@{domain}"
        self.ids.append(mid)
        del self.ids[:-1000]
        zone = timezone(timedelta(hours=rng.choice((-8, -5, 0, 1, 2, 9))))
        head = [("Return-Path", f"<bounce-{self.n}@{domain}>")]
        for hop in range(rng.randint(2, 4)):
            head.append((
                "Received",
                f"from mx{hop}.{domain} (mx{hop}.{domain} [192.0.2.{hop + 1}])\r\n"
                f"\tby mail.home.example (Postfix) with ESMTPS id {rng.getrandbits(40):X}\r\n"
                f"\tfor <{OWNER}>; {format_datetime(at.astimezone(zone))}",
            ))  # fmt: skip
        signature = "".join(rng.choice(_BASE64) for _ in range(340))
        head.append((
            "DKIM-Signature",
            f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=s1;\r\n"
            "\th=from:to:cc:subject:date:message-id;\r\n"
            f"\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\tb={signature[:170]}\r\n"
            f"\t {signature[170:]}",
        ))  # fmt: skip
        head += fields
        head += [
            ("Date", format_datetime(at.astimezone(zone))),
            ("Message-ID", f"<{mid}>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Transfer-Encoding", "quoted-printable"),
        ]
        body = " ".join(rng.choice(SUBJECTS) for _ in range(rng.randint(10, 300)))
        text = "".join(f"{name}: {value}\r\n" for name, value in head) + "\r\n" + body + "\r\n"
        stamp = int(at.timestamp())
        name = f"{stamp}.M{self.n}P4242Q{self.n}.bench:2,S"
        folder = self.root / ".Sent" if sent else self.root
        (folder / "cur" / name).write_bytes(text.encode())


def _mailbox(name: str, address: str) -> str:
    if not name.isascii():
        encoded = name.encode().hex("=").upper()
        return f"=?UTF-8?Q?={encoded}?= <{address}>"
    if "'" in name:
        return f'"{name}" <{address}>'
    return f"{name} <{address}>"


def _subject(subject: str, rng: random.Random) -> str:
    return f"=?UTF-8?Q?{subject.replace(' ', '_')}?=" if rng.random() < 0.1 else subject


def maildir(size: int) -> Path:
    """The generated Maildir of `size` messages, written on first use."""
    root = bench_dir() / f"maildir-g{GENERATOR}-{size}"
    done = root / ".complete"
    if not done.exists():
        print(f"generating a Maildir of {size:,} messages ...", flush=True)
        shutil.rmtree(root, ignore_errors=True)
        Mailbox(root, seed=size).write(size)
        done.write_text("ok\n")
    return root


def raw_headers(root: Path) -> int:
    """The reference: every file's header block read raw; returns the files read."""
    files = 0
    for folder in (str(root), os.path.join(root, ".Sent")):
        for sub in ("new", "cur"):
            directory = os.path.join(folder, sub)
            for name in os.listdir(directory):
                fd = os.open(os.path.join(directory, name), os.O_RDONLY)
                try:
                    data = os.read(fd, 16384)
                    while b"\r\n\r\n" not in data and b"\n\n" not in data:
                        more = os.read(fd, 16384)
                        if not more:
                            break
                        data += more
                finally:
                    os.close(fd)
                files += 1
    return files


def child(root: Path, db: Path) -> None:
    """In the child process: a first sync of the Maildir into a new store, timed."""
    url = f"sqlite:///{db}"
    config = Config(
        owner=OwnerConfig(addresses=(OWNER, OWNER_WORK), name="Sam Rivera"),
        store=StoreConfig(url=url),
        accounts=(AccountConfig(name="home", kind="maildir", path=str(root)),),
    )
    with Store.open(url) as store:
        seconds, cpu, results = timed(lambda: sync_all(store, config, now=lambda: NOW))
        touchpoints = store.count_touchpoints()
        end = memory_mb()  # before closing, which unmaps the database
    result = results[0]
    if not result.ok:
        raise SystemExit(f"sync failed: {result.error}")
    child_report(
        seconds=seconds,
        cpu=cpu,
        anon_mb=end["anon"],
        file_mb=end["file"],
        items=result.items,
        skipped=sum(result.skipped.values()),
        filtered=sum(result.filtered.values()),
        touchpoints=touchpoints,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side; best counts")
    parser.add_argument("--child", nargs=2, metavar=("MAILDIR", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    line("machine", machine())
    peaks: dict[int, float] = {}
    for size in args.sizes:
        root = maildir(size)
        raw_headers(root)  # warm the page cache for both sides
        refs: list[float] = []
        syncs: list[dict[str, float]] = []
        for _ in range(args.rounds):
            seconds, files = best_of(partial(raw_headers, root), 1)
            refs.append(seconds)
            db = bench_dir() / f"ingest-{size}.db"
            for leftover in db.parent.glob(db.name + "*"):
                leftover.unlink()
            syncs.append(run_child(str(Path(__file__)), [str(root), str(db)]))
        ref = min(refs)
        best = min(syncs, key=lambda s: s["seconds"])
        peaks[size] = max(s["rss_mb"] for s in syncs)
        print(f"-- {size:,} messages")
        line("raw header read (best)", f"{ref:7.2f} s  ({files / ref:,.0f} messages/s)")
        line(
            "keepwarm sync (best)",
            f"{best['seconds']:7.2f} s  ({best['items'] / best['seconds']:,.0f} messages/s, "
            "target >= 5,000)",
        )
        line(
            "all runs, raw / sync",
            " ".join(f"{r:.2f}/{s['seconds']:.2f}" for r, s in zip(refs, syncs, strict=True)),
        )
        line("ratio sync / raw read", f"{best['seconds'] / ref:.1f}")
        cpu = min(s["cpu"] for s in syncs)
        line(
            "sync CPU time (best)", f"{cpu:7.2f} s  ({best['items'] / cpu:,.0f} messages per CPU s)"
        )
        line(
            "read, skipped, filtered, stored",
            f"{best['items']:,.0f} parsed, {best['skipped']:,.0f} skipped, "
            f"{best['filtered']:,.0f} filtered, {best['touchpoints']:,.0f} touchpoints",
        )
        line("peak RSS of the sync process", f"{peaks[size]:.0f} MB")
        line(
            "  at its end: anonymous / file",
            f"{best['anon_mb']:.0f} MB / {best['file_mb']:.0f} MB (file: SQLite's mmap)",
        )
    if len(peaks) > 1:
        small, large = min(peaks), max(peaks)
        line(
            f"peak RSS {large // 1000}k / {small // 1000}k",
            f"{peaks[large] / peaks[small]:.2f}  ({peaks[large] - peaks[small]:+.0f} MB, flat: 1)",
        )


if __name__ == "__main__":
    main()
