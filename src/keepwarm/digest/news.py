"""What is news in a digest: the status changes recorded since the previous one. Pure; no I/O.

The status check (`daemon/status_check.py`) records an event whenever a contact's status
changes and when they answer a reach-out. The digest flags people whose status got worse
(warm -> cooling, cooling -> cold, ...) or who reconnected after the previous digest, so the
reader sees what changed rather than the same names every week. Baseline events (the first
status keepwarm recorded for someone) are never news.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from keepwarm.store.status import StatusChange

# How bad a status is for the going-cold list; news is a move to a worse one.
_SEVERITY = {"cooling": 1, "cold": 2}


@dataclass(frozen=True, slots=True)
class News:
    """The news events by contact key: the latest of each kind."""

    turned: dict[str, StatusChange] = field(default_factory=dict)  # into cooling/cold, or worse
    reconnected: dict[str, StatusChange] = field(default_factory=dict)


def find_news(
    changes: Iterable[StatusChange], *, now: datetime, since: datetime | None = None
) -> News:
    """The news among `changes`: recorded after `since` (when given) and at or before `now`."""
    news = News()
    for change in sorted(changes, key=lambda c: c.at):
        if change.baseline or change.at > now or (since is not None and change.at <= since):
            continue
        if change.reconnection:
            news.reconnected[change.contact] = change
        elif _SEVERITY.get(change.new, 0) > _SEVERITY.get(change.old or "", 0):
            news.turned[change.contact] = change
    return news
