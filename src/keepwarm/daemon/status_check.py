"""Record status changes as events: warm -> cooling -> cold, and reconnections.

A status is a function of the moment (warmth decays with no new touchpoint), so nothing in the
log says when someone turned cold. The service calls `record_status_changes` every
`daemon.status_interval` and after each projection update; `keepwarm sync` at its end. Each
call assesses everyone and records, in one transaction, what differs from the last recorded
status (`store/status.py`). The first call records a baseline (events with `old` None), which
is what people already were and not news; a second call at the same moment records nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import structlog

from keepwarm.config.schema import Config
from keepwarm.daemon import project
from keepwarm.relationship.state import Assessment
from keepwarm.store import Store
from keepwarm.store.status import RECONNECTED, StatusChange

__all__ = ["RECONNECTED", "StatusChange", "record_assessments", "record_status_changes"]

log = structlog.get_logger(__name__)


def record_status_changes(store: Store, config: Config, now: datetime) -> list[StatusChange]:
    """Assess every contact at `now` and record what changed; returns the events recorded."""
    return record_assessments(store, project.assessments(store, config, now), now)


def record_assessments(
    store: Store, assessments: Sequence[Assessment], now: datetime
) -> list[StatusChange]:
    """Record the statuses and reconnections of assessments made at `now`."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("record_assessments needs a timezone-aware now")
    statuses = {a.state.key: a.status for a in assessments}
    reconnected = {
        a.state.key: a.reconnected_at for a in assessments if a.reconnected_at is not None
    }
    recorded = store.status.record(statuses, reconnected, now=now)
    news = [c for c in recorded if not c.baseline]
    if news:
        # Counts only: addresses stay out of the service's logs.
        moves = Counter(f"{c.old}->{c.new}" for c in news)
        log.info("status changes recorded", changes=len(news), moves=dict(sorted(moves.items())))
    if len(news) < len(recorded):
        log.info("status baseline recorded", contacts=len(recorded) - len(news))
    return recorded
