"""`keepwarm init` and `keepwarm config check`."""

from __future__ import annotations

import os
from pathlib import Path

import click
from platformdirs import user_config_path

from keepwarm.cli.app import App, cli, pass_app
from keepwarm.config.example import example_toml
from keepwarm.config.load import find_path, load


@cli.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path | None, force: bool) -> None:
    """Write a commented config with every key and its default (to the XDG config path)."""
    target = path or user_config_path("keepwarm") / "keepwarm.toml"
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists; use --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    # 0600: the file may name secret files and commands; it is nobody else's business.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(example_toml())
    click.echo(f"wrote {target}; edit it, then run `keepwarm config check`")


@cli.group()
def config() -> None:
    """Configuration commands."""


@config.command("check")
@pass_app
def check(app: App) -> None:
    """Validate the config and list every problem with its key path (exit 2 if any)."""
    path = find_path(app.config_path)
    cfg = load(path)
    where = str(path) if path else "built-in defaults (no config file found)"
    enabled = sum(1 for a in cfg.accounts if a.enabled)
    click.echo(f"config OK: {where}: {len(cfg.accounts)} accounts ({enabled} enabled)")
    for i, account in enumerate(cfg.accounts):
        if account.path and not Path(account.path).expanduser().exists():
            click.echo(f"  warning: accounts[{i}].path: {account.path} does not exist")
