"""The Outlook connectors' cursors: versioned JSON, tied to the Graph endpoint and mailbox."""

from __future__ import annotations

import json
from typing import Any

from keepwarm.errors import CursorExpired


def load_cursor(cursor: str | None, base: str, fresh: dict[str, Any], part: str) -> dict[str, Any]:
    """The cursor's state, or `fresh` (stamped with `base`) when there is none.

    `part` names the table every valid state has ("folders", "calendars"). A cursor that cannot
    be read, or that belongs to another endpoint or mailbox, means a full resync.
    """
    if not cursor:
        return {"v": 1, "graph": base, **fresh}
    try:
        state = json.loads(cursor)
        if not isinstance(state, dict) or state.get("v") != 1:
            raise TypeError("not a version 1 Outlook cursor")
        if not isinstance(state.get(part), dict):
            raise TypeError(f"no {part}")
    except (ValueError, TypeError) as exc:
        raise CursorExpired(f"unreadable Outlook cursor: {exc}") from exc
    if state.get("graph") != base:
        raise CursorExpired("the cursor belongs to another Graph endpoint or mailbox")
    return state


def dump_cursor(state: dict[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"), sort_keys=True)
