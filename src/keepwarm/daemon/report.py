"""Gather what the digest needs from the store and compose it (composition itself is pure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfoNotFoundError

from keepwarm.config.schema import Config, DigestConfig
from keepwarm.daemon import project
from keepwarm.digest.compose import AccountHealth, Digest, compose
from keepwarm.digest.schedule import latest_slot
from keepwarm.relationship.circles import cooling_circles
from keepwarm.store import Store

WEEK = timedelta(days=7)


def build_digest(store: Store, config: Config, now: datetime) -> Digest:
    """This moment's digest, from the state cache, planned meetings, account health and the
    status changes recorded since the previous digest was due."""
    found = project.assessments(store, config, now)
    circles = cooling_circles(found, now=now)
    kinds = {a.name: a.kind for a in config.accounts}
    health = [
        AccountHealth(
            name=s.name,
            kind=kinds.get(s.name, "?"),
            error_kind=s.error_kind,
            error=s.error,
            fix=s.error_fix,
            last_sync=s.last_sync,
        )
        for s in store.account_states()
        if s.name in kinds
    ]
    since = news_since(config.digest, now)
    return compose(
        found,
        now=now,
        config=config.digest,
        circles=circles,
        accounts=health,
        owner_name=config.owner.name,
        changes=store.status.changes(since, until=now, baseline=False),
        news_since=since,
    )


def news_since(config: DigestConfig, now: datetime) -> datetime:
    """Where "news" starts for the digest at `now`: when the previous period's digest was due.

    The digest at `now` belongs to the latest slot at or before it (`digest/schedule.py`); what
    changed after the slot before that one is new to its reader. Sent on time, that is the last
    seven days; a preview later in the week also keeps what this week's digest already said.
    """
    try:
        latest = latest_slot(config.schedule, config.timezone, now)
        return latest_slot(config.schedule, config.timezone, latest.due - timedelta.resolution).due
    except (ValueError, ZoneInfoNotFoundError):
        # The config loader rejects both; a digest built from a Config made in code still works.
        return now - WEEK
