"""Mail folders as the config names them, and how many messages a backfill window holds."""

from __future__ import annotations

from urllib.parse import quote

import structlog

from keepwarm.connectors.base import SourceProblem
from keepwarm.connectors.microsoft.graph import IMMUTABLE_IDS, PAGE_SIZE, GraphClient

log = structlog.get_logger(__name__)

FILTER_LIMIT = 5000  # Graph returns at most this many messages from a delta with $filter
PREFER = (f"odata.maxpagesize={PAGE_SIZE}", IMMUTABLE_IDS)
# Graph's well-known folder names, usable wherever a folder id is.
WELL_KNOWN = frozenset(
    {
        "inbox",
        "sentitems",
        "archive",
        "deleteditems",
        "drafts",
        "junkemail",
        "outbox",
        "clutter",
        "conversationhistory",
        "scheduled",
        "msgfolderroot",
    }
)


def folder_id(client: GraphClient, name: str, account: str) -> str:
    """A folder id for a well-known name, an id, or a display-name path "A/B"."""
    if name.lower() in WELL_KNOWN:
        return name.lower()
    if "/" not in name and len(name) > 60 and " " not in name:
        return name  # a folder id, as Graph shows it
    url = f"{client.base}/mailFolders"
    found: list[dict[str, object]] = []
    for part in name.split("/"):
        escaped = part.replace("'", "''")  # OData string literals double their quotes
        query = {"$filter": f"displayName eq '{escaped}'", "$select": "id,displayName"}
        body = client.get(url, query, PREFER)
        found = [f for f in body.get("value", []) if isinstance(f, dict) and f.get("id")]
        if not found:
            raise SourceProblem(
                f"account {account!r} has no mail folder {name!r}",
                "check accounts.folders: names as Outlook shows them, levels joined by /",
            )
        url = f"{client.base}/mailFolders/{quote(str(found[0]['id']), safe='')}/childFolders"
    return str(found[0]["id"])


def window_count(client: GraphClient, folder: str, since: str) -> int:
    """How many messages of the folder were received since `since` (FILTER_LIMIT if unknown)."""
    url = f"{client.base}/mailFolders/{quote(folder, safe='')}/messages"
    query = {
        "$filter": f"receivedDateTime ge {since}",
        "$count": "true",
        "$top": "1",
        "$select": "id",
    }
    try:
        count = client.get(url, query, PREFER).get("@odata.count")
    except SourceProblem as exc:  # a Graph that cannot count: reading unfiltered is safe
        log.info("cannot count the folder's window, reading it unfiltered", reason=str(exc))
        return FILTER_LIMIT
    return count if isinstance(count, int) else FILTER_LIMIT
