"""`keepwarm show ADDRESS`: one contact's timeline, rhythm, warmth and why it has its status."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from keepwarm.cli.app import FORMATS, App, cli, pass_app
from keepwarm.cli.people import _address, contact_json
from keepwarm.cli.tables import table

if TYPE_CHECKING:
    from keepwarm.store.status import StatusChange


@cli.command()
@click.argument("address")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Timeline and status-history entries (0: all).",
)
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@pass_app
def show(app: App, address: str, limit: int, fmt: str) -> None:
    """One contact: status and why, rhythm, warmth, status history and the latest touchpoints."""
    from keepwarm.daemon import project

    wanted = _address(address)
    people = project.directory(app.store, app.config)
    key = people.key(wanted)
    found = [a for a in project.assessments(app.store, app.config, app.now) if a.state.key == key]
    if not found:
        click.echo(f"keepwarm: no touchpoints with {wanted}", err=True)
        raise click.exceptions.Exit(1)
    a = found[0]
    timeline = list(app.store.iter_touchpoints(people.addresses(key)))
    timeline.sort(key=lambda t: t.occurred_at, reverse=True)
    # Every key the person had: a status recorded before a merge stays under the old key.
    history = app.store.status.history({key, *people.addresses(key)})
    history.reverse()  # newest first, like the timeline
    if limit:
        timeline = timeline[:limit]
        history = history[:limit]
    if fmt == "json":
        doc = contact_json(a)
        doc["timeline"] = [
            {
                "occurred_at": t.occurred_at.isoformat(),
                "kind": t.kind.value,
                "direction": t.direction.value,
                "role": t.role.value,
                "participants": t.participants,
                "account": t.account,
                "address": t.counterpart,
                "subject": t.subject,
            }
            for t in timeline
        ]
        doc["status_history"] = [
            {"at": e.at.isoformat(), "address": e.contact, "old": e.old, "new": e.new}
            for e in history
        ]
        click.echo(json.dumps(doc, indent=2))
        return
    s = a.state
    click.echo(f"{s.name or s.key} <{s.key}>" + (f"  ({s.organisation})" if s.organisation else ""))
    if len(s.addresses) > 1:
        click.echo(f"  also: {', '.join(x for x in s.addresses if x != s.key)}")
    click.echo(f"  status:  {a.status} (tier {a.tier})")
    for reason in a.reasons:
        click.echo(f"           {reason}")
    rhythm = f"~{a.typical_gap_days:.0f} days between contacts" if a.typical_gap_days else "unknown"
    click.echo(f"  rhythm:  {rhythm}; {s.episodes} episodes, {s.touchpoints} touchpoints")
    click.echo(f"  warmth:  {a.warmth:.2f} (was {s.warmth_at_last:.2f} at the last touch)")
    if a.tags:
        click.echo(f"  tags:    {', '.join(a.tags)}")
    if not history:
        click.echo("  history: no status recorded yet (the daemon and `sync` record changes)")
    for i, event in enumerate(history):
        label = "  history: " if i == 0 else " " * 11
        click.echo(f"{label}{event.at:%Y-%m-%d %H:%M}  {_change(event, key)}")
    click.echo("")
    click.echo(
        table(
            ["WHEN", "KIND", "DIR", "ROLE", "PEOPLE", "ACCOUNT", "SUBJECT"],
            [
                [
                    f"{t.occurred_at:%Y-%m-%d %H:%M}",
                    t.kind.value,
                    t.direction.value,
                    t.role.value,
                    str(t.participants),
                    t.account,
                    t.subject or "",
                ]
                for t in timeline
            ],
        )
    )


def _change(event: StatusChange, key: str) -> str:
    """`warm → cooling`, `warm (first recorded)`, `reconnected: they answered your reach-out`."""
    if event.reconnection:
        text = "reconnected: they answered your reach-out"
        text += " (first recorded)" if event.baseline else ""
    elif event.baseline:
        text = f"{event.new} (first recorded)"
    else:
        text = f"{event.old} → {event.new}"
    return text if event.contact == key else f"{text} (as {event.contact})"
