"""Outlook / Microsoft 365 mail over Graph delta queries (`kind = "outlook"`).

Folders: inbox and sentitems, plus `folders` (Graph's well-known names such as "archive",
folder ids, or display names with "/" between levels, e.g. "Projects/Acme"). Each folder is a
delta round of its own: `/mailFolders/{id}/messages/delta` with a `$select` of the address and
date fields, `Prefer: odata.maxpagesize=1000` and immutable ids (a message keeps its id when it
is moved). The cursor is JSON {"v", "graph", "folders": {name: {"link", "kind", "since"}}}:
per folder the nextLink (mid-round) or deltaLink (between rounds) and the backfill bound.

Backfill: the first round of a folder reads messages received since `now - backfill_days`.
Graph caps a delta round that has a `$filter` at 5,000 messages, so the connector first counts
the window (one request); a window over the cap is read without the filter and the older
messages are dropped here. `@removed` entries change nothing already recorded. An expired delta
state (410, syncStateNotFound, resyncRequired) restarts that folder only, in the same poll;
natural keys make what is read again harmless. A round that changed nothing keeps its old
deltaLink, so an idle poll leaves the cursor as it was: one request per folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import structlog

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, SourceProblem, register
from keepwarm.connectors.microsoft.cursor import dump_cursor, load_cursor
from keepwarm.connectors.microsoft.graph import (
    IMMUTABLE_IDS,
    MAX_CONCURRENT,
    GraphClient,
)
from keepwarm.connectors.microsoft.mail_folders import (
    FILTER_LIMIT,
    PREFER,
    folder_id,
    window_count,
)
from keepwarm.connectors.microsoft.messages import (
    message_meta,
    parse_time,
    select_fields,
    undecided,
    with_headers,
)
from keepwarm.errors import AuthError, CursorExpired, MalformedInput, TransientError
from keepwarm.model import Batch, MessageMeta, Skip

log = structlog.get_logger(__name__)

SENT = "sentitems"


@dataclass(slots=True)
class PollStats:
    """What the last poll cost, for logs, tests and the benchmark."""

    requests: int = 0
    pages: int = 0
    header_fetches: int = 0
    restarted: int = 0  # folders whose delta state had expired


@register("outlook")
class OutlookMailConnector:
    """Reads message metadata of one mailbox through Graph; see the module docstring."""

    def __init__(self, account: AccountConfig, context: ConnectorContext) -> None:
        # msal and requests come with the first Outlook account, not with the registry.
        from keepwarm.connectors.microsoft.auth import TokenSource
        from keepwarm.connectors.microsoft.session import http_session

        self.account = account
        self.context = context
        self.session = http_session(account)
        self.tokens = TokenSource(account, context.state_dir, self.session)
        self.client = GraphClient(account, self.tokens, self.session)
        wanted = {name.lower() for name in context.wanted_headers}
        self.select = select_fields(subject=not wanted or "subject" in wanted)
        self.last_poll = PollStats()
        self._pool: ThreadPoolExecutor | None = None
        self._headers_denied = False

    def close(self) -> None:
        """Stop header workers and drop pooled connections."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.session.close()

    def poll(self, cursor: str | None) -> Iterator[Batch]:
        """Batches of one Graph page each; a final batch carries the cursor if nothing else did."""
        state = _load(cursor, self.client)
        now = self.context.now()
        self.tokens.token()  # an AuthError now, before anything else; also learns the owner
        owners = {a.lower() for a in (*self.account.addresses, self.tokens.owner or "") if a}
        identities = frozenset(owners)
        self.last_poll = stats = PollStats()
        last_cursor, yielded = cursor, False
        folders: dict[str, Any] = state["folders"]
        for name in self._folder_names():
            restarted = False
            while True:
                try:
                    for items, folder_state in self._rounds(name, folders.get(name, {}), now):
                        stats.pages += 1
                        batch = self._batch(items, name, now, owners, stats)
                        folders[name] = folder_state
                        batch.cursor = dump_cursor(state)
                        if batch.items or batch.skipped or batch.cursor != last_cursor:
                            batch.identities = identities | batch.identities
                            last_cursor, yielded = batch.cursor, True
                            yield batch
                    break
                except CursorExpired as exc:
                    if restarted:
                        raise
                    restarted = True
                    stats.restarted += 1
                    log.warning(
                        "mail folder delta expired, reading it again", folder=name, reason=str(exc)
                    )
                    folders[name] = {}
        stats.requests = self.client.requests
        log.info(
            "outlook polled",
            pages=stats.pages,
            requests=stats.requests,
            header_fetches=stats.header_fetches,
            restarted=stats.restarted,
        )
        if not yielded:  # the daemon records a sync per stored batch, even an empty one
            yield Batch(cursor=dump_cursor(state), identities=identities)

    def _folder_names(self) -> list[str]:
        names: list[str] = []
        for name in ("inbox", SENT, *self.account.folders):
            if name.strip() and name.lower() not in {n.lower() for n in names}:
                names.append(name.strip())
        return names

    def _rounds(
        self, name: str, saved: dict[str, Any], now: datetime
    ) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
        """(messages, the folder's state after them) per page of the folder's delta round."""
        client = self.client
        link = saved.get("link")
        since = str(saved.get("since") or _iso(now - timedelta(days=self.account.backfill_days)))
        params: dict[str, str] | None = None
        if isinstance(link, str):
            if not client.owns(link):
                raise CursorExpired("the stored delta link is not on the configured Graph root")
            url, from_delta = link, saved.get("kind") == "delta"
        else:
            folder = folder_id(self.client, name, self.account.name)
            url = f"{client.base}/mailFolders/{quote(folder, safe='')}/messages/delta"
            params = {"$select": self.select}
            if window_count(self.client, folder, since) < FILTER_LIMIT:
                params["$filter"] = f"receivedDateTime ge {since}"
            from_delta = False
        bound = parse_time(since)
        changed = False
        for page in client.pages(url, params, PREFER):
            changed = changed or bool(page.items)
            if page.next_link is not None:
                new = {"link": page.next_link, "kind": "next", "since": since}
            elif page.delta_link is not None:
                keep = from_delta and not changed  # nothing happened: the old link still holds
                kept = link if keep and isinstance(link, str) else page.delta_link
                new = {"link": kept, "kind": "delta", "since": since}
            else:
                raise TransientError("Graph ended a mail delta round without a deltaLink")
            yield [item for item in page.items if _wanted(item, bound)], new

    def _batch(
        self,
        items: list[dict[str, Any]],
        folder: str,
        now: datetime,
        owners: set[str],
        stats: PollStats,
    ) -> Batch:
        batch = Batch()
        read: list[tuple[MessageMeta, dict[str, Any]]] = []
        sent = folder.lower() == SENT
        for item in items:
            try:
                meta = message_meta(item, folder=folder, sent=sent, now=now)
            except MalformedInput as exc:
                where = item.get("id") if isinstance(item.get("id"), str) else folder
                batch.skipped.append(Skip(str(where), exc.reason, exc.detail))
                continue
            if sent and meta.sender:  # a send-as address is the owner too
                owners.add(meta.sender[0].address.lower())
            read.append((meta, item))
        if sent:
            batch.identities = frozenset(m.sender[0].address.lower() for m, _ in read if m.sender)
        lookups = [
            i
            for i, (m, raw) in enumerate(read)
            if self.account.fetch_headers
            and not self._headers_denied
            and undecided(m, raw, frozenset(owners))
        ]
        if lookups:
            stats.header_fetches += len(lookups)
            ids = [read[i][0].source_id for i in lookups]
            headers = list(self._workers().map(self._headers, ids))
            for i, found in zip(lookups, headers, strict=True):
                if found is not None:
                    read[i] = (with_headers(read[i][0], found), read[i][1])
        batch.items = [meta for meta, _ in read]
        return batch

    def _headers(self, message_id: str) -> Any:
        url = f"{self.client.base}/messages/{quote(message_id, safe='')}"
        if self._headers_denied:
            return None
        try:
            body = self.client.get(url, {"$select": "internetMessageHeaders"}, (IMMUTABLE_IDS,))
        except SourceProblem:  # moved or deleted since the delta page: decide without headers
            return None
        except AuthError as exc:
            # The headers need more than the app was granted: go on without them (what is lost
            # is in docs/microsoft.md) rather than stop reading the mailbox.
            if not self._headers_denied:
                self._headers_denied = True
                log.warning(
                    "internet headers denied, deciding without them",
                    reason=str(exc),
                    fix="grant Mail.Read, or set fetch_headers = false",
                )
            return None
        return body.get("internetMessageHeaders")

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(MAX_CONCURRENT, thread_name_prefix="graph-headers")
        return self._pool


def _wanted(item: dict[str, Any], bound: datetime | None) -> bool:
    """Not a removal, and not older than the backfill bound (unfiltered rounds read all)."""
    if "@removed" in item:
        return False
    try:
        received = parse_time(item.get("receivedDateTime"))
    except MalformedInput:
        return True  # message_meta turns it into a Skip
    return bound is None or received is None or received >= bound


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _load(cursor: str | None, client: GraphClient) -> dict[str, Any]:
    return load_cursor(cursor, client.base, {"folders": {}}, "folders")
