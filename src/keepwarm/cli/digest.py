"""`keepwarm digest`: this week's digest, printed."""

from __future__ import annotations

import click

from keepwarm.cli.app import App, cli, pass_app
from keepwarm.daemon.report import build_digest
from keepwarm.digest.render import render_html, render_json, render_text

RENDERERS = {"text": render_text, "html": render_html, "json": render_json}


@cli.command()
@click.option("--preview", is_flag=True, default=True, help="Print the digest (the default).")
@click.option(
    "--format", "fmt", type=click.Choice(sorted(RENDERERS)), default="text", show_default=True
)
@pass_app
def digest(app: App, preview: bool, fmt: str) -> None:
    """Compose this week's digest from the current state and print it."""
    click.echo(RENDERERS[fmt](build_digest(app.store, app.config, app.now)), nl=False)
