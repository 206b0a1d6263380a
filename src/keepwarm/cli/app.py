"""The command group and the per-invocation context: config, store, clock.

Command modules import at module level only what their options need (click, this module,
`tables`): the store (SQLAlchemy, Alembic), the daemon, the digest and the connectors are
imported inside the commands that use them, so `keepwarm --help` and every command start
without paying for the others' libraries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from keepwarm.errors import ConfigError, UserError

if TYPE_CHECKING:
    from keepwarm.config.schema import Config
    from keepwarm.store import Store


@dataclass
class App:
    """Lazily loaded config and store, shared by the commands of one invocation."""

    config_path: str | None
    log_level: str | None = None  # --log-level, which beats daemon.log_level
    _config: Config | None = None
    _store: Store | None = None
    now: datetime = field(default_factory=lambda: _now_from_env() or datetime.now(UTC))

    @property
    def config(self) -> Config:
        if self._config is None:
            from keepwarm.config.load import find_path, load

            config = load(find_path(self.config_path))
            _check_vcards(config)
            self._config = config
        return self._config

    @property
    def store(self) -> Store:
        if self._store is None:
            from keepwarm.store import Store

            self._store = Store.open(self.config.store.url or Store.default_url())
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def _check_vcards(config: Config) -> None:
    """The vCard files in the config are read by every command, so a missing one is a config
    mistake to name by key (exit 2), not a failure halfway through a command."""
    problems = [
        f"contacts.vcards[{i}]: {path}: no such file"
        for i, path in enumerate(config.contacts.vcards)
        if not Path(path).expanduser().is_file()
    ]
    if problems:
        raise ConfigError(problems, str(config.path) if config.path else None)


def _now_from_env() -> datetime | None:
    """KEEPWARM_NOW pins the clock (ISO 8601) for reproducible runs and tests."""
    raw = os.environ.get("KEEPWARM_NOW")
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise UserError(f"KEEPWARM_NOW: not an ISO 8601 date-time: {raw!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


pass_app = click.make_pass_decorator(App)
FORMATS = click.Choice(["text", "json"])
LOG_LEVELS = ("debug", "info", "warning", "error")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="Config file (else $KEEPWARM_CONFIG, the XDG config path, /etc/keepwarm/keepwarm.toml).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS),
    default=None,
    help="Override daemon.log_level and $KEEPWARM_LOG_LEVEL for this run.",
)
@click.version_option(package_name="keepwarm")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_level: str | None) -> None:
    """keepwarm: notice the relationships you are letting go cold, before they are gone."""
    level = log_level or os.environ.get("KEEPWARM_LOG_LEVEL") or "warning"
    if level.lower() not in LOG_LEVELS:
        # Only the environment can get here: click already checked the option.
        raise UserError(
            f"KEEPWARM_LOG_LEVEL: must be one of {', '.join(LOG_LEVELS)}, got {level!r}"
        )
    from keepwarm import log  # structlog: not needed for `keepwarm --help`

    log.configure(level.lower())
    app = App(config_path, log_level)
    ctx.obj = app
    ctx.call_on_close(app.close)
