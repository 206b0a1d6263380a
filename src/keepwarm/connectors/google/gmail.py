"""Gmail over its API, with the gmail.metadata scope: headers only, bodies out of reach.

First sync (per user): `getProfile` for the mailbox's current historyId H and address, the
send-as addresses when the scope allows, then `messages.list` pages of 500 ids, newest first,
each page's metadata fetched in batches (gmail_fetch.py). gmail.metadata forbids `q`, so
`backfill_days` is applied to each message's `internalDate`: the first page reaching past it is
the last one read. Each page is a batch whose cursor resumes at the next page.

Then: `history.list(startHistoryId, historyTypes=messageAdded)`, one batch per page of history;
the cursor is the newest historyId whose messages are stored (the last record of a page, or the
mailbox's historyId after the last page). Nothing new costs one history.list call. A 404 means
Gmail no longer keeps history that old: CursorExpired, and the daemon reads everything again
(natural keys make the repeats harmless).

Cursor (JSON): {"v": 1, "users": {"me" | address: {"h": historyId, "p": next page token}}};
"p" is there while a backfill is under way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, register
from keepwarm.connectors.google import service
from keepwarm.connectors.google.gmail_fetch import MetadataFetcher
from keepwarm.connectors.google.gmail_messages import excluded, internal_date, to_meta
from keepwarm.connectors.google.quota import GMAIL_BURST, GMAIL_RATE, GMAIL_UNITS, Pacer
from keepwarm.connectors.google.service import Api
from keepwarm.detect.headers import WANTED
from keepwarm.errors import ConnectorError, CursorExpired
from keepwarm.model import Batch, MeetingMeta, MessageMeta, Skip

PAGE = 500
HISTORY_PAGE = 500
LIST = "gmail.users.messages.list"
HISTORY = "gmail.users.history.list"
_LIST_FIELDS = "messages/id,nextPageToken"
_HISTORY_FIELDS = "history(id,messagesAdded/message(id,labelIds)),historyId,nextPageToken"
UserState = dict[str, str]


@register("gmail")
class GmailConnector:
    """Reads one Gmail account (or each delegated user of it); see the module docstring."""

    def __init__(
        self,
        account: AccountConfig,
        context: ConnectorContext,
        *,
        pacer: Callable[[], Pacer] | None = None,
    ) -> None:
        self.account = account
        self.context = context
        self._new_pacer = pacer or (
            lambda: (
                Pacer.for_rate(account.rate_limit)
                if account.rate_limit
                else Pacer.for_rate(GMAIL_RATE, GMAIL_BURST)
            )
        )
        self._apis: dict[str | None, Api] = {}
        self.fetchers: dict[str | None, MetadataFetcher] = {}

    def close(self) -> None:
        """Close the connections (a later poll opens new ones; counts stay readable)."""
        for api in self._apis.values():
            api.close()

    def poll(self, cursor: str | None) -> Iterator[Batch]:
        """Batches of message metadata; each cursor is valid once its batch is stored."""
        users = service.users_of(self.account)
        keys = [user or "me" for user in users]
        states = {k: v for k, v in _load(cursor).items() if k in keys}  # users dropped: forgotten
        for user, key in zip(users, keys, strict=True):
            state = states.get(key)
            if state is None:
                steps = self._backfill(user, None, None)
            elif "p" in state:
                steps = self._backfill(user, state["h"], state["p"])
            else:
                steps = self._incremental(user, state["h"])
            for batch, new_state in steps:
                states[key] = new_state
                batch.cursor = _dump(states)
                yield batch

    def api(self, user: str | None) -> Api:
        if user not in self._apis:
            self._apis[user] = service.gmail(
                self.account, self.context.state_dir, user, self._new_pacer()
            )
        return self._apis[user]

    def _fetcher(self, user: str | None) -> MetadataFetcher:
        if user not in self.fetchers:
            wanted = self.context.wanted_headers or WANTED
            self.fetchers[user] = MetadataFetcher(self.api(user), wanted)
        return self.fetchers[user]

    def _backfill(
        self, user: str | None, history_id: str | None, page_token: str | None
    ) -> Iterator[tuple[Batch, UserState]]:
        api = self.api(user)
        identities: frozenset[str] = frozenset()
        if history_id is None:
            method = "gmail.users.getProfile"
            request = api.resource.users().getProfile(
                userId=api.user_id, fields="emailAddress,historyId"
            )
            profile = api.call(request, method, GMAIL_UNITS[method])
            # H before the first list: whatever arrives during the backfill is in history > H.
            history_id = str(profile["historyId"])
            address = str(profile.get("emailAddress") or user or "")
            identities = frozenset({address} - {""}) | self._send_as(api)
        cutoff = (self.context.now() - timedelta(days=self.account.backfill_days)).timestamp()
        # A page token kept in a cursor may have expired: start the backfill over.
        invalid = {400: CursorExpired("Gmail no longer accepts the stored page token")}
        while True:
            request = (
                api.resource.users()
                .messages()
                .list(
                    userId=api.user_id, maxResults=PAGE, pageToken=page_token, fields=_LIST_FIELDS
                )
            )
            page = api.call(
                request, LIST, GMAIL_UNITS[LIST], on_status=invalid if page_token else None
            )
            ids = [str(m["id"]) for m in page.get("messages", [])]
            batch, oldest = self._read(user, ids, cutoff_ms=cutoff * 1000)
            batch.identities = identities
            identities = frozenset()
            page_token = page.get("nextPageToken")
            if not page_token or (oldest is not None and oldest < cutoff * 1000):
                yield batch, {"h": history_id}
                return
            yield batch, {"h": history_id, "p": page_token}

    def _send_as(self, api: Api) -> frozenset[str]:
        """Send-as addresses, when the token carries gmail.settings.basic (metadata does not
        allow reading settings: then the profile address and `addresses` are what we know)."""
        method = "gmail.users.settings.sendAs.list"
        request = (
            api.resource.users()
            .settings()
            .sendAs()
            .list(userId=api.user_id, fields="sendAs/sendAsEmail")
        )
        try:
            answer = api.call(request, method, GMAIL_UNITS[method], on_status={403: _NoScope()})
        except _NoScope:
            return frozenset()
        found = (str(s.get("sendAsEmail") or "") for s in answer.get("sendAs", []))
        return frozenset(address for address in found if address)

    def _incremental(self, user: str | None, start: str) -> Iterator[tuple[Batch, UserState]]:
        api = self.api(user)
        page_token = None
        gone = CursorExpired(f"Gmail no longer has history from {start}: full resync")
        while True:
            request = (
                api.resource.users()
                .history()
                .list(
                    userId=api.user_id,
                    startHistoryId=start,
                    historyTypes="messageAdded",
                    maxResults=HISTORY_PAGE,
                    pageToken=page_token,
                    fields=_HISTORY_FIELDS,
                )
            )
            page = api.call(request, HISTORY, GMAIL_UNITS[HISTORY], on_status={404: gone})
            records = page.get("history", [])
            ids = [
                str(added["message"]["id"])
                for record in records
                for added in record.get("messagesAdded", [])
                if not excluded(added["message"].get("labelIds") or ())
            ]
            batch, _ = self._read(user, ids, cutoff_ms=None)
            page_token = page.get("nextPageToken")
            newest = max((int(r["id"]) for r in records), default=int(start))
            if page_token:
                yield batch, {"h": str(newest)}
                continue
            yield batch, {"h": str(max(newest, int(page.get("historyId") or start)))}
            return

    def _read(
        self, user: str | None, ids: list[str], *, cutoff_ms: float | None
    ) -> tuple[Batch, int | None]:
        """One page of ids -> a batch, and the oldest internalDate seen."""
        resources = self._fetcher(user).fetch(ids) if ids else {}
        now = self.context.now()
        items: list[MessageMeta | MeetingMeta] = []
        skipped: list[Skip] = []
        oldest: int | None = None
        for message_id in ids:
            resource = resources.get(message_id)
            if resource is None:
                continue
            received = internal_date(resource)
            if received is not None:
                oldest = received if oldest is None else min(oldest, received)
                if cutoff_ms is not None and received < cutoff_ms:
                    continue
            source_id = message_id if user is None else f"{user}/{message_id}"
            meta = to_meta(resource, source_id, now)
            if isinstance(meta, Skip):
                skipped.append(meta)
            elif meta is not None:
                items.append(meta)
        return Batch(items=items, skipped=skipped), oldest


class _NoScope(ConnectorError):
    """The token lacks the scope for a call we can do without."""


def _load(cursor: str | None) -> dict[str, UserState]:
    if cursor is None:
        return {}
    try:
        data = json.loads(cursor)
        users = data["users"]
        if data.get("v") != 1 or not isinstance(users, dict):
            raise ValueError("unknown cursor version")
        states = {
            str(k): {"h": str(int(v["h"])), **({"p": str(v["p"])} if v.get("p") else {})}
            for k, v in users.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CursorExpired(f"unreadable Gmail cursor: {exc}") from exc
    return states


def _dump(states: dict[str, UserState]) -> str:
    return json.dumps({"v": 1, "users": states}, sort_keys=True, separators=(",", ":"))
