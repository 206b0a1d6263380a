"""`keepwarm digest`: this week's digest, printed (`--preview`) or sent (`--send`, `--send-now`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from keepwarm.cli.app import App, cli, pass_app
from keepwarm.errors import ConfigError, KeepwarmError, UserError

if TYPE_CHECKING:
    from keepwarm.daemon.digest_due import Outcome
    from keepwarm.digest.model import Digest

FORMATS = ("html", "json", "text")


def render(digest: Digest, fmt: str) -> str:
    """The digest in one of FORMATS (jinja2 is imported here, by the commands that print one)."""
    from keepwarm.digest.render import render_html, render_json, render_text

    return {"text": render_text, "html": render_html, "json": render_json}[fmt](digest)


@cli.command()
@click.option("--preview", is_flag=True, default=False, help="Print the digest (the default).")
@click.option(
    "--send",
    is_flag=True,
    help="Send this period's digest unless it was already sent (what the daemon does).",
)
@click.option("--send-now", is_flag=True, help="Send a digest now, even if this period's was sent.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="Preview format; with --send, json prints the outcome as JSON.",
)
@pass_app
def digest(app: App, preview: bool, send: bool, send_now: bool, fmt: str) -> None:
    """Compose this week's digest from the current state and print or send it."""
    from keepwarm.daemon.digest_due import send_if_due, sending_problems
    from keepwarm.daemon.report import build_digest

    if sum((preview, send, send_now)) > 1:
        raise click.UsageError("choose one of --preview, --send and --send-now")
    if not (send or send_now):
        click.echo(render(build_digest(app.store, app.config, app.now), fmt), nl=False)
        return
    problems = sending_problems(app.config)
    if problems:
        raise ConfigError(problems, str(app.config.path) if app.config.path else None)
    outcome = send_if_due(app.store, app.config, app.now, mode="now" if send_now else "period")
    if fmt == "json":
        click.echo(json.dumps(outcome.to_dict(), indent=2))
    else:
        click.echo(_describe(outcome))
    if outcome.status == "failed":
        error = outcome.error or "the digest was not sent"
        raise UserError(error) if outcome.config_error else KeepwarmError(error)


def _describe(outcome: Outcome) -> str:
    """One line for people: what happened to which period, and the server's reply."""
    period = f"week {outcome.period} to {outcome.recipient}"
    if outcome.status == "sent":
        extra = " (an extra copy)" if outcome.extra else ""
        return f"sent {period}{extra}: {outcome.reply} {outcome.message_id}"
    if outcome.status == "done":
        return f"not sent: {period} was {outcome.detail}: {outcome.reply or ''}".rstrip(": ")
    if outcome.status == "skipped":
        return f"not sent: {period}: {outcome.detail}"
    if outcome.status == "busy":
        return f"not sent: {period} is {outcome.detail}"
    return f"FAILED {period} ({outcome.detail})" if outcome.detail else f"FAILED {period}"
