"""Gmail mailboxes and the users.* methods the connector calls, per the discovery document:
getProfile, messages.list (newest first, pages, labelIds, includeSpamTrash, no `q` under the
metadata scope), messages.get (format=metadata + metadataHeaders), history.list (messageAdded
records, pages, 404 once a start id has expired) and settings.sendAs.list."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import itertools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.emulators.google_errors import ApiError

if TYPE_CHECKING:
    from tests.emulators.google import Call

METADATA = "https://www.googleapis.com/auth/gmail.metadata"
_READ_BODIES = frozenset(
    {"https://mail.google.com/", "https://www.googleapis.com/auth/gmail.readonly",
     "https://www.googleapis.com/auth/gmail.modify"}
)  # fmt: skip


def _metadata_only(scopes: frozenset[str]) -> bool:
    """Google restricts a token whose only mail-reading scope is gmail.metadata."""
    return METADATA in scopes and not scopes & _READ_BODIES


SPAM_TRASH = frozenset({"SPAM", "TRASH"})


@dataclass
class Message:
    id: str
    thread_id: str
    labels: list[str]
    internal_date: int  # milliseconds since the epoch, as Gmail sends it
    history_id: int
    headers: list[tuple[str, str]]
    size: int

    def resource(self, wanted: Iterable[str] | None) -> dict[str, Any]:
        """The Message resource in format=metadata: headers only (all, or the wanted ones)."""
        names = None if wanted is None else {name.lower() for name in wanted}
        headers = [
            {"name": name, "value": value}
            for name, value in self.headers
            if names is None or name.lower() in names
        ]
        return {
            "id": self.id,
            "threadId": self.thread_id,
            "labelIds": list(self.labels),
            "snippet": "Hello, see you soon. (the body: a client must mask it away)",
            "sizeEstimate": self.size,
            "historyId": str(self.history_id),
            "internalDate": str(self.internal_date),
            "payload": {"partId": "", "mimeType": "text/plain", "filename": "", "headers": headers},
        }


class Mailbox:
    """One user's mail. History ids grow with every change, as Gmail's do."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.messages: dict[str, Message] = {}
        self.history: list[dict[str, Any]] = []
        self.history_id = 4_000_000
        self.history_floor = 0  # startHistoryId below this: 404, the history is gone
        self.send_as: list[dict[str, Any]] = [
            {"sendAsEmail": address, "displayName": "", "isPrimary": True, "isDefault": True}
        ]
        self._ids = itertools.count(0x18D2A4B0C0000000)
        self._order: list[Message] | None = None

    def deliver(
        self,
        raw: bytes,
        labels: Iterable[str] = ("INBOX", "UNREAD"),
        *,
        internal_date: datetime | None = None,
        thread_id: str | None = None,
    ) -> Message:
        """Add a message (RFC 5322 bytes) as Gmail would on delivery: a new history record."""
        parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
        # Gmail answers header values unfolded, encoded words left as they are.
        headers = [(name, re.sub(r"\r?\n", "", str(value))) for name, value in parsed.items()]
        when = internal_date or datetime.now(UTC)  # Gmail's receipt time, not the Date header
        message_id = f"{next(self._ids):016x}"
        self.history_id += 1
        message = Message(
            message_id,
            thread_id or message_id,
            list(labels),
            int(when.timestamp() * 1000),
            self.history_id,
            headers,
            len(raw),
        )
        self.messages[message_id] = message
        self._order = None
        ref = {"id": message.id, "threadId": message.thread_id}
        self.history.append(
            {
                "id": str(self.history_id),
                "messages": [ref],
                "messagesAdded": [{"message": {**ref, "labelIds": list(message.labels)}}],
            }
        )
        return message

    def relabel(self, message_id: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
        """Change labels: a labelsAdded/labelsRemoved record, not a messageAdded one."""
        message = self.messages[message_id]
        added = [label for label in add if label not in message.labels]
        message.labels = [label for label in message.labels if label not in set(remove)] + added
        self.history_id += 1
        message.history_id = self.history_id
        ref = {"id": message.id, "threadId": message.thread_id, "labelIds": message.labels}
        self.history.append(
            {
                "id": str(self.history_id),
                "messages": [ref],
                "labelsAdded": [{"message": ref, "labelIds": added}],
            }
        )

    def delete(self, message_id: str) -> None:
        del self.messages[message_id]
        self._order = None
        self.history_id += 1

    def expire_history(self) -> None:
        """Forget every history record so far: every start id handed out answers 404."""
        self.history_id += 1
        self.history_floor = self.history_id
        self.history = []

    def ordered(self) -> list[Message]:
        if self._order is None:
            self._order = sorted(
                self.messages.values(), key=lambda m: (m.internal_date, m.id), reverse=True
            )
        return self._order


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _untoken(call: Call, name: str = "pageToken") -> Any:
    text = call.one(name)
    if text is None:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError as exc:
        raise ApiError(400, "invalidArgument", "Invalid pageToken") from exc


def get_profile(call: Call) -> dict[str, Any]:
    box = call.user.mailbox
    return {
        "emailAddress": box.address,
        "messagesTotal": len(box.messages),
        "threadsTotal": len({m.thread_id for m in box.messages.values()}),
        "historyId": str(box.history_id),
    }


def list_messages(call: Call) -> dict[str, Any]:
    if call.one("q") is not None and _metadata_only(call.scopes):
        raise ApiError(403, "forbidden", "Metadata scope does not support 'q' parameter")
    size = call.number("maxResults", 100, 500)
    wanted = set(call.params.get("labelIds", []))
    spam_trash = call.one("includeSpamTrash", "false") == "true"
    found = [
        m
        for m in call.user.mailbox.ordered()
        if wanted <= set(m.labels) and (spam_trash or not SPAM_TRASH & set(m.labels))
    ]
    after = _untoken(call)
    if after is not None:  # the sort key of the last message of the previous page
        last = (after[0], after[1])
        found = [m for m in found if (m.internal_date, m.id) < last]
    page = found[:size]
    answer: dict[str, Any] = {
        "messages": [{"id": m.id, "threadId": m.thread_id} for m in page],
        "resultSizeEstimate": len(found),
    }
    if len(found) > size:
        answer["nextPageToken"] = _token([page[-1].internal_date, page[-1].id])
    if not page:
        del answer["messages"]  # Gmail leaves the field out of an empty answer
    return answer


def get_message(call: Call) -> dict[str, Any]:
    message = call.user.mailbox.messages.get(call.path["id"])
    if message is None:
        raise ApiError(404, "notFound", "Requested entity was not found.")
    form = call.one("format", "full")
    if form != "metadata" and _metadata_only(call.scopes):
        raise ApiError(403, "forbidden", f"Metadata scope doesn't allow format {form.upper()}")
    if form not in ("metadata", "minimal"):
        raise ApiError(400, "invalidArgument", "only format=metadata is emulated")
    wanted = call.params.get("metadataHeaders")
    resource = message.resource(wanted)
    if form == "minimal":
        del resource["payload"]
    return resource


def list_history(call: Call) -> dict[str, Any]:
    box = call.user.mailbox
    start_text = call.one("startHistoryId")
    if not start_text or not start_text.isdigit():
        raise ApiError(400, "invalidArgument", "Invalid startHistoryId")
    start = int(start_text)
    if start < box.history_floor or start > box.history_id:
        raise ApiError(404, "notFound", "Requested entity was not found.")
    size = call.number("maxResults", 100, 500)
    types = call.params.get("historyTypes")
    keys = {"messageAdded": "messagesAdded", "labelAdded": "labelsAdded"}
    records = [
        record
        for record in box.history
        if int(record["id"]) > start and (not types or any(keys.get(t) in record for t in types))
    ]
    offset = _untoken(call) or 0
    page = records[offset : offset + size]
    answer: dict[str, Any] = {"historyId": str(box.history_id)}
    if page:
        answer["history"] = page
    if offset + size < len(records):
        answer["nextPageToken"] = _token(offset + size)
    return answer


def list_send_as(call: Call) -> dict[str, Any]:
    return {"sendAs": call.user.mailbox.send_as}


GMAIL_HANDLERS: dict[str, Callable[[Call], dict[str, Any]]] = {
    "gmail.users.getProfile": get_profile,
    "gmail.users.messages.list": list_messages,
    "gmail.users.messages.get": get_message,
    "gmail.users.history.list": list_history,
    "gmail.users.settings.sendAs.list": list_send_as,
}
