"""`keepwarm init` and `keepwarm config check`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from keepwarm.cli.app import App, cli, pass_app
from keepwarm.errors import KeepwarmError


@cli.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path | None, force: bool) -> None:
    """Write a commented config with every key and its default (to the XDG config path)."""
    from keepwarm.config.example import example_toml

    target = path or _config_dir() / "keepwarm.toml"
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists; use --force to overwrite it")
    # A config symlinked from a dotfiles repository stays a symlink: the file it names is replaced.
    real = Path(os.path.realpath(target))
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        # 0600: the file may name secret files and commands; it is nobody else's business.
        # mkstemp creates it so, and the rename replaces an old file (whatever its mode) whole.
        fd, temp = tempfile.mkstemp(prefix=".keepwarm-", suffix=".toml", dir=real.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(example_toml())
            os.replace(temp, real)
        except BaseException:
            os.unlink(temp)
            raise
    except OSError as exc:
        raise KeepwarmError(f"cannot write {target}: {exc.strerror or exc}") from None
    click.echo(f"wrote {target}; edit it, then run `keepwarm config check`")


def _config_dir() -> Path:
    # Where `find_path` looks first: platformdirs honours XDG_CONFIG_HOME on Linux only.
    from platformdirs import user_config_path

    xdg = os.environ.get("XDG_CONFIG_HOME")
    return Path(xdg) / "keepwarm" if xdg else user_config_path("keepwarm")


@cli.group()
def config() -> None:
    """Configuration commands."""


@config.command("check")
@pass_app
def check(app: App) -> None:
    """Validate the config and list every problem with its key path (exit 2 if any)."""
    from keepwarm.config.load import find_path
    from keepwarm.connectors.base import known_kinds

    path = find_path(app.config_path)
    cfg = app.config
    where = str(path) if path else "built-in defaults (no config file found)"
    enabled = sum(1 for a in cfg.accounts if a.enabled)
    click.echo(f"config OK: {where}: {len(cfg.accounts)} accounts ({enabled} enabled)")
    kinds = known_kinds()
    for i, account in enumerate(cfg.accounts):
        if account.enabled and account.kind not in kinds:
            click.echo(
                f'  warning: accounts[{i}].kind: "{account.kind}" is not supported by this'
                " version yet; `keepwarm sync` reports the account as failed"
            )
        if account.path and not Path(account.path).expanduser().exists():
            click.echo(f"  warning: accounts[{i}].path: {account.path} does not exist")
