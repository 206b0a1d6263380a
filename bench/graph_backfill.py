"""Outlook (Microsoft Graph) backfill benchmark: requests per message, and what headers cost.

Targets (issue 5), against the local Graph emulator (tests/emulators/microsoft.py, HTTPS):
- a first sync of 100,000 messages sends at most 1.05x the minimum number of Graph requests,
  i.e. pages of the largest size Graph serves (1,000), with no per-message GET on the common
  path (person-to-person mail, no-reply senders and invitations, decided by address fields);
- an incremental poll with nothing new sends one request per folder.

Usage:

    .venv/bin/python bench/graph_backfill.py [--messages 100000] [--list-share 0.05]

Reference, same run: the same delta pages fetched by a bare `requests` loop (the connector's
`$select`, Prefer headers and link following, nothing else). The ratio of wall times says what
the connector adds to Graph's own cost (JSON decoding, MessageMeta, header lookups). The emulator
runs in this process, so absolute times include serving the pages.

It also measures the header decision (docs/microsoft.md): on the demo mailbox (`keepwarm
demo`'s generator: lists, newsletters, auto-replies, invitations, people), how many inbound
messages the address fields leave undecided, and how many would be misjudged without headers,
with headers for the undecided ones only, and with headers for all.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' emulators

from _common import bench_dir, line, machine
from tests.emulators.microsoft import USER, emulators, outlook_account, sign_in

from keepwarm.config.schema import AccountConfig, Config, OwnerConfig
from keepwarm.connectors.base import ConnectorContext, create
from keepwarm.connectors.microsoft.auth import TokenSource
from keepwarm.connectors.microsoft.graph import IMMUTABLE_IDS, PAGE_SIZE
from keepwarm.connectors.microsoft.mail import OutlookMailConnector
from keepwarm.connectors.microsoft.messages import select_fields, undecided
from keepwarm.connectors.microsoft.session import http_session
from keepwarm.detect.headers import parse_headers
from keepwarm.detect.touchpoints import Detector
from keepwarm.errors import MalformedInput
from keepwarm.model import MessageMeta

NOW = datetime.now(UTC).replace(microsecond=0)
CALENDAR_CLASS = ("content-class", "urn:content-classes:calendarmessage")


def load(messages: int, list_share: float) -> dict[str, int]:
    """Deliver `messages` into the emulated mailbox: 70% inbox, 30% sent, over two years."""
    graph = emulators().graph
    counts = {"inbox": 0, "sentitems": 0, "lists": 0}
    for i in range(messages):
        received = NOW - timedelta(seconds=int(i * 2 * 365 * 86400 / messages) + 60)
        if i % 10 >= 7:
            graph.add_message(
                USER,
                "sentitems",
                message_id=f"s{i}@home.example",
                sender=USER,
                to=(f"p{i % 5000}@example.org",),
                received=received,
            )
            counts["sentitems"] += 1
            continue
        counts["inbox"] += 1
        if i % 97 == 0:
            graph.add_message(
                USER,
                message_id=f"n{i}@shop.example",
                sender="no-reply@shop.example",
                to=(USER,),
                received=received,
            )
        elif i % 89 == 0:
            graph.add_message(
                USER,
                message_id=f"e{i}@example.org",
                sender=f"p{i % 5000}@example.org",
                to=(USER,),
                received=received,
                odata_type="#microsoft.graph.eventMessageRequest",
            )
        elif list_share and (i % 1000) < list_share * 1000:
            counts["lists"] += 1
            graph.add_message(
                USER,
                message_id=f"l{i}@lists.example.org",
                sender=f"p{i % 5000}@example.org",
                to=("dev@lists.example.org",),
                received=received,
                headers=(("List-Id", "<dev.lists.example.org>"),),
            )
        else:
            graph.add_message(
                USER,
                message_id=f"m{i}@example.org",
                sender=f"p{i % 5000}@example.org",
                to=(USER,),
                cc=(f"p{(i + 1) % 5000}@example.org",),
                received=received,
            )
    return counts


def raw_fetch(account: AccountConfig, token: str, folders: list[str]) -> tuple[float, int]:
    """The reference: every delta page of the folders with a bare requests loop."""
    session = http_session(account)
    started = time.perf_counter()
    pages = 0
    headers = {
        "Authorization": f"Bearer {token}",
        "Prefer": f"odata.maxpagesize={PAGE_SIZE}, {IMMUTABLE_IDS}",
    }
    for folder in folders:
        url: str | None = f"{account.graph_endpoint}/me/mailFolders/{folder}/messages/delta"
        # Unfiltered, as the connector reads a window over Graph's 5,000-message $filter cap.
        params: dict[str, str] | None = {"$select": select_fields(True)}
        while url:
            answer = session.get(url, params=params, headers=headers)
            answer.raise_for_status()
            body = answer.json()
            pages += 1
            url, params = body.get("@odata.nextLink"), None
    session.close()
    return time.perf_counter() - started, pages


def backfill(messages: int, list_share: float) -> None:
    em = emulators()
    em.reset()
    started = time.perf_counter()
    counts = load(messages, list_share)
    line(
        "messages loaded into the emulator",
        f"{messages:,} in {time.perf_counter() - started:.1f} s "
        f"(inbox {counts['inbox']:,}, sent {counts['sentitems']:,}, list mail {counts['lists']:,})",
    )
    state = Path(tempfile.mkdtemp(prefix="keepwarm-graph-bench-"))
    account = outlook_account(em, backfill_days=800)
    sign_in(account, state)
    context = ConnectorContext(state_dir=state, now=lambda: NOW)
    minimum = math.ceil(counts["inbox"] / PAGE_SIZE) + math.ceil(counts["sentitems"] / PAGE_SIZE)

    em.graph.requests.clear()
    connector = create(account, context)
    assert isinstance(connector, OutlookMailConnector)
    started = time.perf_counter()
    read = 0
    cursor = None
    for batch in connector.poll(None):
        read += len(batch.items)
        cursor = batch.cursor or cursor
    seconds = time.perf_counter() - started
    connector.close()
    requests = len(em.graph.requests)
    lookups = len(em.graph.paths("/v1.0/me/messages/"))
    token = TokenSource(account, state, http_session(account)).token()
    raw_seconds, raw_pages = raw_fetch(account, token, ["inbox", "sentitems"])

    print(f"-- first sync of {messages:,} messages")
    line("messages read", f"{read:,}")
    line("Graph requests", f"{requests:,} (minimum at {PAGE_SIZE:,} per page: {minimum:,})")
    line("ratio requests / minimum", f"{requests / minimum:.3f}  (target <= 1.05)")
    line(
        "per-message GETs (header lookups)",
        f"{lookups:,}  (list mail undecided: {counts['lists']:,})",
    )
    line("connector wall time", f"{seconds:.2f} s  ({read / seconds:,.0f} messages/s)")
    line("reference: bare page loop", f"{raw_seconds:.2f} s  ({raw_pages} pages)")
    line("ratio connector / reference", f"{seconds / raw_seconds:.2f}")

    em.graph.requests.clear()
    connector = create(account, context)
    batches = list(connector.poll(cursor))
    connector.close()
    idle = len(em.graph.requests)
    print("-- incremental poll, nothing new")
    line("Graph requests", f"{idle} for 2 folders  (target: one per folder)")
    line(
        "items, cursor unchanged",
        f"{sum(len(b.items) for b in batches)}, {batches[-1].cursor == cursor}",
    )


def header_decision() -> None:
    """Detection on the demo mailbox with all headers, none, and the undecided ones only."""
    from keepwarm.demo import generate

    root = bench_dir() / "graph-demo"
    if not (root / "Maildir").exists():
        generate(root, now=datetime(2026, 11, 25, 8, tzinfo=UTC))
    owners = ("alex.rivera@post.example", "alex@newco.example", "alex.rivera@oldco.example")
    account = AccountConfig(name="demo", kind="outlook", addresses=owners)
    detector = Detector(Config(owner=OwnerConfig(addresses=owners), accounts=(account,)), account)
    lowered = frozenset(owners)
    inbound = undecided_n = wrong_none = wrong_rule = 0
    for path in sorted((root / "Maildir").glob("**/cur/*")):
        raw = path.read_bytes().split(b"\n\n", 1)[0] + b"\n\n"
        sent = "/.Sent/" in str(path)
        try:
            full = parse_headers(raw, path.name, sent=True if sent else None, now=NOW)
        except MalformedInput:  # the demo's broken messages are skips either way
            continue
        if sent:
            continue
        inbound += 1
        cheap = _graph_view(full)
        sender = re.search(rb"(?mi)^Sender:\s*.*?<?([^<>\s]+@[^<>\s]+)>?\s*$", raw)
        item: dict[str, Any] = {
            "sender": {
                "emailAddress": {
                    "address": sender.group(1).decode()
                    if sender
                    else full.sender[0].address
                    if full.sender
                    else ""
                }
            }
        }
        truth = _outcome(detector, full)
        decided_by_rule = full if undecided(cheap, item, lowered) else cheap
        undecided_n += undecided(cheap, item, lowered)
        wrong_none += _outcome(detector, cheap) != truth
        wrong_rule += _outcome(detector, decided_by_rule) != truth
    print("-- automated-mail headers on the demo mailbox (inbound messages)")
    line("inbound messages", f"{inbound:,}")
    line(
        "undecided by address fields",
        f"{undecided_n:,} ({undecided_n / inbound:.1%}): one GET each",
    )
    line("wrong touchpoints, no headers", f"{wrong_none:,} ({wrong_none / inbound:.1%})")
    line("wrong touchpoints, undecided fetched", f"{wrong_rule:,} ({wrong_rule / inbound:.1%})")


def _graph_view(meta: MessageMeta) -> MessageMeta:
    """What Graph's message properties give: the fields, no header signals except that an
    invitation is an eventMessage."""
    signals = ()
    content = dict(meta.signals).get("content-type", "").lower()
    if content.startswith("text/calendar"):
        signals = (CALENDAR_CLASS,)
    return MessageMeta(
        source_id=meta.source_id,
        message_id=meta.message_id,
        date=meta.date,
        sender=meta.sender,
        to=meta.to,
        cc=meta.cc,
        bcc=meta.bcc,
        subject=meta.subject,
        signals=signals,
        sent=meta.sent,
        folder=meta.folder,
    )


def _outcome(detector: Detector, meta: MessageMeta) -> tuple[str, ...]:
    """The touchpoints a message makes (its counterparts): what a misjudgement would change.
    Two different filter reasons (no-reply, mailing-list) are the same outcome: none."""
    return tuple(sorted(t.counterpart for t in detector.message(meta).touchpoints))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument(
        "--list-share",
        type=float,
        default=0.0,
        help="share of inbox mail sent to a list (header lookups)",
    )
    args = parser.parse_args()
    line("machine", machine())
    backfill(args.messages, args.list_share)
    header_decision()


if __name__ == "__main__":
    main()
