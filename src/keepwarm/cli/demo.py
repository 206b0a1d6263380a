"""`keepwarm demo`: the whole pipeline on a generated two-year mailbox and calendar."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click

from keepwarm.cli.app import App, cli, pass_app
from keepwarm.cli.digest import FORMATS, render


@cli.command()
@click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to generate (default: demo/ in the XDG state directory; replaced each run).",
)
@click.option("--seed", default=7, show_default=True, help="Another seed, another world.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@pass_app
def demo(app: App, root: Path | None, seed: int, fmt: str) -> None:
    """Generate a fictional owner's mail and calendar, run the real pipeline, print the digest."""
    from platformdirs import user_state_path

    from keepwarm.config.load import load
    from keepwarm.daemon.report import build_digest
    from keepwarm.daemon.sync import sync_all
    from keepwarm.demo import generate
    from keepwarm.store import Store

    root = root or user_state_path("keepwarm") / "demo"
    if root.exists():
        if not (root / "keepwarm.toml").exists() and any(root.iterdir()):
            raise click.UsageError(f"{root} is not empty and not a keepwarm demo: pick --dir")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    started = time.monotonic()
    data = generate(root, now=app.now, seed=seed)
    config_path = root / "keepwarm.toml"
    config_path.write_text(data.config_toml, encoding="utf-8")
    config = load(config_path)
    store = Store.open(config.store.url or Store.default_url())
    try:
        generated = time.monotonic()
        results = sync_all(store, config, now=lambda: app.now)
        synced = time.monotonic()
        digest = build_digest(store, config, app.now)
    finally:
        store.close()
    for result in results:
        click.echo(
            f"demo: {result.account}: {result.items} items read, {result.new} touchpoints, "
            f"{sum(result.filtered.values())} filtered, {sum(result.skipped.values())} skipped",
            err=True,
        )
    click.echo(
        f"demo: generated in {generated - started:.1f} s, synced and projected in "
        f"{synced - generated:.1f} s; data in {root}",
        err=True,
    )
    click.echo(
        f"demo: explore with `keepwarm --config {config_path} contacts --status cold`\n", err=True
    )
    click.echo(render(digest, fmt), nl=False)
