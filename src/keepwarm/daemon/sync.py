"""One pass over every account, then the projection of what changed (`keepwarm sync`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from keepwarm.config.schema import Config
from keepwarm.connectors.base import ConnectorContext
from keepwarm.daemon import project
from keepwarm.daemon.ingest import SyncResult, sync_account
from keepwarm.daemon.status_check import record_status_changes
from keepwarm.detect.headers import WANTED
from keepwarm.store import Store


def state_dir(store_url: str | None) -> Path:
    """Where token files live: beside the SQLite file, else the XDG state directory."""
    from platformdirs import user_state_path

    if store_url and store_url.startswith("sqlite:///"):
        return Path(store_url.removeprefix("sqlite:///")).expanduser().parent
    return user_state_path("keepwarm")


def sync_all(
    store: Store,
    config: Config,
    *,
    names: Sequence[str] = (),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[SyncResult]:
    """Poll each enabled account (or the named ones) once; one failure never stops the others."""
    context = ConnectorContext(
        state_dir=state_dir(config.store.url), now=now, wanted_headers=WANTED
    )
    selected = [a for a in config.accounts if (a.name in names if names else a.enabled)]
    results = [sync_account(store, config, account, context, now=now) for account in selected]
    store.promote_planned(now())
    project.catch_up(store, config)
    record_status_changes(store, config, now())
    return results
