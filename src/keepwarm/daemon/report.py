"""Gather what the digest needs from the store and compose it (composition itself is pure)."""

from __future__ import annotations

from datetime import datetime

from keepwarm.config.schema import Config
from keepwarm.daemon import project
from keepwarm.digest.compose import AccountHealth, Digest, compose
from keepwarm.relationship.circles import cooling_circles
from keepwarm.store import Store


def build_digest(store: Store, config: Config, now: datetime) -> Digest:
    """This moment's digest, from the state cache, planned meetings and account health."""
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
    return compose(
        found,
        now=now,
        config=config.digest,
        circles=circles,
        accounts=health,
        owner_name=config.owner.name,
    )
