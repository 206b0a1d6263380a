"""The IMAP connector: header fields of new messages in INBOX, the sent folder and any extra
folders (or Gmail's All Mail), one batch per FETCH, each with the cursor valid once it is stored.

A poll sends one STATUS per folder; a folder whose UIDVALIDITY and UIDNEXT are what the cursor
says is not opened at all. Otherwise it is EXAMINEd (read-only: nothing is marked seen), the
UIDs to read are searched window by window and fetched `FETCH_BATCH` at a time (`fetch.py`).
The folder list comes from one LIST at the first poll, is kept in the cursor and found again
once a day, when the config's folders change, or when a folder has gone.

Source ids: `folder/uidvalidity/uid`; Gmail's X-GM-MSGID (hex, as the Gmail API names the same
message) when there is one. A message without a Message-ID has no natural key of its own and
falls back to the source id, which would change when UIDVALIDITY does: its source id is a hash
of its header fields instead, so a resync cannot count it twice.

One connection is held from the first poll until `close()`; `wait_for_change()` keeps a second
one in IDLE (`idle.py`).
"""

from __future__ import annotations

import hashlib
import imaplib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime

import structlog
from imapclient import IMAPClient

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, register
from keepwarm.connectors.imap import client as imap
from keepwarm.connectors.imap import cursor as cursors
from keepwarm.connectors.imap.cursor import Cursor, FolderState
from keepwarm.connectors.imap.fetch import FETCH_BATCH, Fetched, candidate_uids, fetch_headers
from keepwarm.connectors.imap.folders import Folder, Plan, discover, plan_key
from keepwarm.connectors.imap.idle import IdleWatch
from keepwarm.connectors.imap.tokens import TokenProvider, secret_reader, token_provider
from keepwarm.detect.headers import WANTED, parse_headers
from keepwarm.errors import MalformedInput
from keepwarm.model import Batch, MessageMeta, Skip

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class PollStats:
    """What the last poll did, for logs and tests."""

    checked: int = 0  # folders asked for STATUS
    opened: int = 0  # folders EXAMINEd because something changed
    fetched: int = 0  # header blocks read
    skipped: int = 0
    resynced: int = 0  # folders read again after a UIDVALIDITY change


@register("imap")
class ImapConnector:
    """Reads an IMAP account's message headers; see the module docstring."""

    def __init__(
        self,
        account: AccountConfig,
        context: ConnectorContext,
        *,
        token: TokenProvider | None = None,
        read_timeout: float | None = None,
    ) -> None:
        self.account = account
        self.context = context
        # Silence this long in the middle of an answer ends the poll (TransientError): a dead
        # server or a connection a middlebox dropped without a word.
        self.read_timeout = account.timeout if read_timeout is None else read_timeout
        self.fields = context.wanted_headers or WANTED
        if token is not None:
            self._token = token
        elif account.auth == "xoauth2":
            self._token = token_provider(account, context)
        else:
            self._token = secret_reader(account)
        self._client: IMAPClient | None = None
        self._watch: IdleWatch | None = None
        self.last_poll = PollStats()

    # -- the Connector protocol --------------------------------------------------------------

    def poll(self, cursor: str | None) -> Iterator[Batch]:
        """Yield a batch per FETCH of new messages, then one with the final cursor."""
        state = cursors.load(cursor)
        try:
            with imap.imap_errors(self.account):
                yield from self._poll(state)
        except BaseException:
            self._drop()  # half-way through a command: the connection cannot be trusted
            raise

    def __enter__(self) -> ImapConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Log out of both connections (the poll's and the IDLE one)."""
        self._drop()
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def wait_for_change(self, timeout: float, cursor: str | None = None) -> bool:
        """Block up to `timeout` seconds; True as soon as new mail is in the watched folder.

        The watched folder is INBOX (Gmail: All Mail), with IDLE on a connection of its own
        that stays idling between calls, so calling this in a loop with short timeouts costs
        no round trips; IDLE is renewed every 25 minutes (servers drop it after 29). Give the
        last stored `cursor`: mail that arrived since that poll makes this return at once.
        Without IDLE on the server it checks STATUS every minute; with `idle = false` it just
        sleeps and returns False. Raises TransientError when the connection is lost.
        """
        if self._watch is None:
            folder, known = self._watched(cursor)
            self._watch = IdleWatch(self._connect, self.account, folder, known)
        return self._watch.wait(timeout)

    # -- polling -----------------------------------------------------------------------------

    def _poll(self, state: Cursor) -> Iterator[Batch]:
        now = self.context.now()
        kept = self._client is not None
        try:
            client = self._connection()
            plan, statuses = self._statuses(client, state, now)
        except (imaplib.IMAP4.abort, OSError):
            if not kept:
                raise
            # The connection held since the last poll died meanwhile (server timeout): again.
            self._drop()
            client = self._connection()
            plan, statuses = self._statuses(client, state, now)
        for folder, status in statuses:
            old = state.folders.get(folder.name)
            if old is None or not _unchanged(old, status):
                yield from self._read_folder(client, folder, plan, state, status, now)
        if self.last_poll.opened:
            # STATUS on a selected folder is not reliable (RFC 3501): leave none selected.
            if b"UNSELECT" in imap.capabilities(client):
                client.unselect_folder()
            else:
                client.close_folder()  # after EXAMINE, CLOSE expunges nothing
        log.info("imap polled", **asdict(self.last_poll))
        yield Batch(cursor=cursors.dump(state))

    def _statuses(
        self, client: IMAPClient, state: Cursor, now: datetime
    ) -> tuple[Plan, list[tuple[Folder, dict[bytes, int]]]]:
        """The plan and one STATUS per folder in it: all a poll with nothing new sends."""
        self.last_poll = PollStats()
        plan = self._plan(client, state, now)
        items = ["UIDNEXT", "UIDVALIDITY", "MESSAGES"]
        if b"CONDSTORE" in imap.capabilities(client):
            items.append("HIGHESTMODSEQ")
        statuses = []
        for folder in plan.folders:
            self.last_poll.checked += 1
            try:
                statuses.append((folder, client.folder_status(folder.name, items)))
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:  # NO: the folder is gone or renamed
                log.warning("folder cannot be read; looking for folders again next poll",
                            folder=folder.name, error=str(exc))  # fmt: skip
                state.plan = None
        return plan, statuses

    def _read_folder(
        self,
        client: IMAPClient,
        folder: Folder,
        plan: Plan,
        state: Cursor,
        status: dict[bytes, int],
        now: datetime,
    ) -> Iterator[Batch]:
        self.last_poll.opened += 1
        selected = client.select_folder(folder.name, readonly=True)
        uidvalidity = int(selected.get(b"UIDVALIDITY", status.get(b"UIDVALIDITY", 0)))
        uidnext = selected.get(b"UIDNEXT", status.get(b"UIDNEXT"))
        old = state.folders.get(folder.name)
        if old is None or old.uidvalidity != uidvalidity:
            if old is not None:
                self.last_poll.resynced += 1
            current, guarded = cursors.start_over(old, uidvalidity, now, self.account.backfill_days)
            if old is not None:
                log.warning("UIDVALIDITY changed: reading the folder again", folder=folder.name,
                            guarded=guarded, since=current.since)  # fmt: skip
        else:
            current = old
            current.uidnext = 0  # under way until read to the end
        state.folders[folder.name] = current
        for uids in candidate_uids(
            client, int(selected.get(b"EXISTS", 0)), current.last_uid, uidnext,
            current.since_date(),
        ):  # fmt: skip
            for start in range(0, len(uids), FETCH_BATCH):
                chunk = uids[start : start + FETCH_BATCH]
                batch = Batch()
                for fetched in fetch_headers(client, chunk, self.fields, gmail=plan.gmail):
                    self._add(batch, fetched, folder, uidvalidity, now)
                current.last_uid = chunk[-1]
                batch.cursor = cursors.dump(state)
                yield batch
        current.last_uid = max(current.last_uid, int(uidnext or 1) - 1)
        current.uidnext = int(uidnext or current.last_uid + 1)
        current.modseq = status.get(b"HIGHESTMODSEQ")
        current.since = None
        current.synced = int(now.timestamp())

    def _add(
        self, batch: Batch, fetched: Fetched, folder: Folder, uidvalidity: int, now: datetime
    ) -> None:
        self.last_poll.fetched += 1
        labels = fetched.gm_labels or frozenset()
        if "\\Draft" in labels:
            return  # Gmail's All Mail holds drafts too: not mail anyone exchanged
        if fetched.gm_msgid is not None:
            source_id = f"gmail/{fetched.gm_msgid:x}"
        else:
            source_id = f"{folder.name}/{uidvalidity}/{fetched.uid}"
        sent = True if folder.sent or "\\Sent" in labels else None
        try:
            meta: MessageMeta = parse_headers(
                fetched.header, source_id, sent=sent, folder=folder.name, now=now
            )
        except MalformedInput as exc:
            self.last_poll.skipped += 1
            batch.skipped.append(Skip(source_id, exc.reason, exc.detail))
            return
        if meta.message_id is None and fetched.gm_msgid is None:
            digest = hashlib.sha256(fetched.header).hexdigest()[:24]
            meta = _with_source(meta, f"{folder.name}/sha256:{digest}")
        batch.items.append(meta)

    # -- connections and folders -------------------------------------------------------------

    def _connect(self) -> IMAPClient:
        return imap.connect(self.account, self._token, read_timeout=self.read_timeout)

    def _connection(self) -> IMAPClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _drop(self) -> None:
        if self._client is not None:
            imap.disconnect(self._client)
            self._client = None

    def _plan(self, client: IMAPClient, state: Cursor, now: datetime) -> Plan:
        key = plan_key(self.account)
        stamp = int(now.timestamp())
        fresh = stamp - state.planned_at < cursors.REDISCOVER_AFTER
        if state.plan is not None and state.plan_key == key and fresh:
            return Plan(tuple(Folder(n, r) for n, r in state.plan), gmail=state.gmail)
        plan = discover(client, self.account, imap.capabilities(client))
        state.plan = [(f.name, f.role) for f in plan.folders]
        state.plan_key, state.planned_at, state.gmail = key, stamp, plan.gmail
        # Folders no longer read are forgotten: if they come back they are read from scratch.
        names = {f.name for f in plan.folders}
        state.folders = {n: s for n, s in state.folders.items() if n in names}
        return plan

    def _watched(self, cursor: str | None) -> tuple[str, int | None]:
        """The folder to IDLE on and the UIDNEXT the last stored poll saw there."""
        state = cursors.load(cursor) if cursor else Cursor()
        plan = state.plan or [("INBOX", "inbox")]
        name = next((n for n, role in plan if role in ("inbox", "all")), "INBOX")
        folder = state.folders.get(name)
        return name, (folder.uidnext or None) if folder else None


def _unchanged(old: FolderState, status: dict[bytes, int]) -> bool:
    if not old.complete or status.get(b"UIDVALIDITY") != old.uidvalidity:
        return False
    if b"UIDNEXT" in status:
        return bool(status[b"UIDNEXT"] == old.uidnext)
    # A server that omits UIDNEXT: HIGHESTMODSEQ moves with every change (RFC 7162).
    return old.modseq is not None and status.get(b"HIGHESTMODSEQ") == old.modseq


def _with_source(meta: MessageMeta, source_id: str) -> MessageMeta:
    return replace(meta, source_id=source_id)
