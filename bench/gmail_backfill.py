"""Gmail backfill benchmark: quota units a first sync spends, against the minimum the API allows.

Targets (issue 4): a backfill of 100,000 messages spends at most 1.05x the minimum quota units
(`messages.list` pages of 500 at 5 units, plus one `messages.get` at 5 units per listed message);
an incremental poll with nothing new is one `history.list` call. Usage:

    .venv/bin/python bench/gmail_backfill.py [--messages 100000]

The real connector (googleapiclient built from its bundled discovery document, google-auth)
syncs a generated mailbox served by the test emulator (tests/emulators/google.py), which
charges each call by Google's published table. Reference, same run: the minimum, computed from
what the emulator listed. Wall time here is the client's CPU (the emulator answers in
microseconds); the time a real backfill takes is set by the per-user quota of 15,000 units a
minute, so the projection divides the units spent by 250 a second (and by keepwarm's own pace,
240 a second after a 250-unit burst, which keeps any minute under the limit).

The mailbox: `--messages` messages Gmail lists, over the last 1,000 days (backfill_days is
1,095), from a few hundred correspondents, with To/Cc lists, replies and mailing lists; 0.5%
drafts (listed, fetched, then dropped); plus 2% more in spam and the bin, which Gmail does not
list.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from _common import line, machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' emulator

from tests.emulators.google import GoogleEmulator

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext
from keepwarm.connectors.google.gmail import GmailConnector
from keepwarm.connectors.google.quota import GMAIL_BURST, GMAIL_LIMIT, GMAIL_RATE

OWNER = "sam.rivera@home.example"
NAMES = ("Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Greta", "Hugo", "Inès", "Jon")
DOMAINS = ("gmail.com", "acme.example", "uni.example", "proton.me", "studio.example")


def generate(emu: GoogleEmulator, count: int, now: datetime, seed: int = 4) -> None:
    """Deliver `count` messages, newest last delivered but newest first by internalDate."""
    rng = random.Random(seed)
    box = emu.user(OWNER).mailbox
    people = [
        f"{rng.choice(NAMES)} {i} <p{i}@{rng.choice(DOMAINS)}>" for i in range(400)
    ]  # fmt: skip
    for i in range(count):
        when = now - timedelta(days=1000) + timedelta(days=1000) * (i / count)
        other = rng.choice(people)
        sent = rng.random() < 0.3
        lines = [
            f"From: {'Sam Rivera <' + OWNER + '>' if sent else other}",
            f"To: {other if sent else 'Sam Rivera <' + OWNER + '>'}",
            f"Date: {format_datetime(when)}",
            f"Message-ID: <m{i}.{seed}@mail.example>",
            f"Subject: note {i}",
        ]
        if rng.random() < 0.3:
            lines.append(f"Cc: {rng.choice(people)}, {rng.choice(people)}")
        if rng.random() < 0.4:
            lines.append(f"In-Reply-To: <m{max(0, i - 3)}.{seed}@mail.example>")
        if rng.random() < 0.1:
            lines.append("List-Id: <club.lists.example>")
        roll = rng.random()
        labels = (
            ["DRAFT"] if roll < 0.005
            else ["SENT"] if sent
            else ["INBOX", "CATEGORY_PERSONAL"]
        )  # fmt: skip
        raw = ("\r\n".join(lines) + "\r\n\r\nbody\r\n").encode()
        box.deliver(raw, labels, internal_date=when)
        if rng.random() < 0.02:  # spam and the bin, beside the `count` that Gmail lists
            box.deliver(raw.replace(b"Message-ID: <", b"Message-ID: <x"),
                        [rng.choice(("SPAM", "TRASH"))], internal_date=when)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    now = datetime.now(UTC)
    print(f"gmail backfill, {args.messages:,} messages; {machine()}")
    with GoogleEmulator() as emu, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        generate(emu, args.messages, now)
        line("mailbox generated", f"{time.perf_counter() - started:.1f} s")
        credentials = Path(tmp) / "credentials.json"
        credentials.write_text(json.dumps(emu.oauth.authorized_user_info(OWNER)))
        account = AccountConfig(
            name="bench", kind="gmail", endpoint=emu.base, credentials_file=str(credentials),
            backfill_days=1095, rate_limit=1e9,  # no pacing here: the quota is projected
        )  # fmt: skip
        context = ConnectorContext(state_dir=Path(tmp), now=lambda: now)
        connector = GmailConnector(account, context)
        started = time.perf_counter()
        items = skipped = 0
        cursor = None
        for batch in connector.poll(None):
            items += len(batch.items)
            skipped += len(batch.skipped)
            cursor = batch.cursor or cursor
        seconds = time.perf_counter() - started
        # The minimum, from the mailbox itself: what messages.list returns (spam and the bin
        # are not listed), in pages of 500, and one metadata get for each.
        box = emu.user(OWNER).mailbox
        listed = sum(1 for m in box.messages.values() if not {"SPAM", "TRASH"} & set(m.labels))
        pages = emu.calls["gmail.users.messages.list"]
        minimum = 5 * math.ceil(listed / 500) + 5 * listed
        units = emu.total_units
        line("messages read", f"{items:,} ({skipped:,} skipped; drafts dropped)")
        line("calls", ", ".join(f"{k.split('.', 2)[2]} {v:,}" for k, v in emu.calls.items()))
        line("largest batch", f"{max(emu.batch_sizes)} calls")
        line("quota units spent", f"{units:,}")
        line("minimum (pages + one get each)", f"{minimum:,}  ({pages} list pages)")
        line("ratio spent / minimum", f"{units / minimum:.4f}  (target <= 1.05)")
        line("client time (this machine)", f"{seconds:.1f} s  ({items / seconds:,.0f} messages/s)")
        at_limit = units / GMAIL_LIMIT
        paced = max(0.0, units - GMAIL_BURST) / GMAIL_RATE
        line(
            "projected at 250 units/s",
            f"{at_limit / 60:.1f} min  ({listed / at_limit:.0f} messages/s)",
        )
        line("projected at keepwarm's pace", f"{paced / 60:.1f} min  (240 units/s + 250 burst)")
        line(
            "client / quota speed",
            f"{(items / seconds) / (listed / at_limit):.1f}x: the quota is the limit",
        )
        emu.reset_counts()
        quiet = list(connector.poll(cursor))
        line(
            "poll, nothing new",
            f"{dict(emu.calls)}, {emu.total_units} units, {sum(len(b.items) for b in quiet)} items",
        )
        connector.close()


if __name__ == "__main__":
    main()
