"""A failing account is said once, not on every poll, and never stops the others."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from structlog.testing import capture_logs

from keepwarm.config.schema import AccountConfig, Config, OwnerConfig, StoreConfig
from keepwarm.connectors.base import ConnectorContext
from keepwarm.daemon.ingest import sync_account
from keepwarm.store import Store

NOW = datetime(2026, 11, 25, 8, tzinfo=UTC)


def test_a_failing_account_is_logged_once_and_its_fix_recorded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kw.db'}"
    account = AccountConfig(name="home", kind="maildir", path=str(tmp_path / "missing"))
    config = Config(
        owner=OwnerConfig(addresses=("me@example.org",)),
        store=StoreConfig(url=url),
        accounts=(account,),
    )
    context = ConnectorContext(state_dir=tmp_path, now=lambda: NOW)
    with Store.open(url) as store, capture_logs() as logs:
        results = [sync_account(store, config, account, context, now=lambda: NOW) for _ in range(3)]
        (state,) = store.account_states()
    assert [r.ok for r in results] == [False, False, False]
    failed = [e for e in logs if e["event"] == "account failed"]
    assert [e["log_level"] for e in failed] == ["error", "debug", "debug"]
    assert state.error is not None
    assert "missing" in state.error
    assert state.error_fix
