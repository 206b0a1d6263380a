"""Commands about people: contacts, show, and the replayable annotations (merge, snooze, ...)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from keepwarm.cli.app import FORMATS, App, cli, pass_app
from keepwarm.cli.tables import day, table
from keepwarm.model import ContactEvent
from keepwarm.relationship.state import STATUSES, Assessment

_ORDER = {"cold": 0, "cooling": 1, "warm": 2, "new": 3, "dormant": 4, "muted": 5}


def contact_json(a: Assessment) -> dict[str, Any]:
    """The documented JSON shape of one contact (`contacts --format json`, `show`)."""
    s = a.state
    return {
        "address": s.key,
        "addresses": list(s.addresses),
        "name": s.name,
        "organisation": s.organisation,
        "status": a.status,
        "tier": a.tier,
        "tags": list(a.tags),
        "pinned": a.pinned,
        "last_touch": s.last_touch.isoformat() if s.last_touch else None,
        "touchpoints": s.touchpoints,
        "episodes": s.episodes,
        "warmth": round(a.warmth, 4),
        "silence_days": round(a.silence_days, 2) if a.silence_days is not None else None,
        "typical_gap_days": (
            round(a.typical_gap_days, 2) if a.typical_gap_days is not None else None
        ),
        "survival": round(a.survival, 4) if a.survival is not None else None,
        "owed_reply_since": a.owed_reply_since.isoformat() if a.owed_reply_since else None,
        "next_meeting": a.next_meeting.isoformat() if a.next_meeting else None,
        "snoozed_until": a.snoozed_until.isoformat() if a.snoozed_until else None,
        "reasons": list(a.reasons),
    }


@cli.group(invoke_without_command=True)
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES))
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@click.pass_context
def contacts(ctx: click.Context, statuses: tuple[str, ...], fmt: str) -> None:
    """List contacts (most at risk first); subcommands merge and import people."""
    if ctx.invoked_subcommand is not None:
        return
    from keepwarm.daemon import project

    app = ctx.find_object(App)
    assert app is not None
    found = project.assessments(app.store, app.config, app.now)
    if statuses:
        found = [a for a in found if a.status in statuses]
    found.sort(key=lambda a: (_ORDER[a.status], -a.warmth, a.state.key))
    if fmt == "json":
        click.echo(json.dumps([contact_json(a) for a in found], indent=2))
        return
    click.echo(
        table(
            ["STATUS", "NAME", "ADDRESS", "LAST TOUCH", "TOUCHES", "WARMTH", "RHYTHM"],
            [
                [
                    a.status,
                    a.state.name or "",
                    a.state.key,
                    day(a.state.last_touch),
                    str(a.state.touchpoints),
                    f"{a.warmth:.2f}",
                    f"~{a.typical_gap_days:.0f} d" if a.typical_gap_days else "-",
                ]
                for a in found
            ],
        )
    )


@contacts.command("merge")
@click.argument("addresses", nargs=-1, required=True)
@pass_app
def merge(app: App, addresses: tuple[str, ...]) -> None:
    """Record that ADDRESSES are one person (the first is the primary address)."""
    from keepwarm.daemon import project

    if len(addresses) < 2:
        raise click.UsageError("merge needs at least two addresses")
    primary, *others = [_address(a, domains=False) for a in addresses]
    for other in others:
        app.store.append_contact_event(ContactEvent("merge", primary, other, app.now))
    count = project.rebuild(app.store, app.config)
    click.echo(f"merged {len(others) + 1} addresses into {primary} ({count} contacts)")


@contacts.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_app
def import_vcards(app: App, path: Path) -> None:
    """Import a vCard file: names, and every card's addresses as one person."""
    from keepwarm.daemon import project
    from keepwarm.detect.addresses import normalise
    from keepwarm.relationship.directory import read_vcards

    people = read_vcards(path.read_text(encoding="utf-8", errors="replace"))
    if not people:
        # Importing the wrong file should not look like a success that changed nothing.
        click.echo(f"keepwarm: no vCards with an email address in {path}", err=True)
        raise click.exceptions.Exit(1)
    merged = 0
    for name, raw in people:
        addresses = [a for a in (normalise(r) for r in raw) if a]
        if not addresses:
            continue
        if name:
            app.store.append_contact_event(ContactEvent("name", addresses[0], name, app.now))
        for other in addresses[1:]:
            app.store.append_contact_event(ContactEvent("merge", addresses[0], other, app.now))
            merged += 1
    project.rebuild(app.store, app.config)
    click.echo(f"imported {len(people)} cards ({merged} extra addresses merged)")


def _address(raw: str, *, domains: bool = True) -> str:
    """A CLI address argument: an address (normalised) or, where `domains`, @domain."""
    from keepwarm.detect.addresses import normalise

    if domains and raw.startswith("@") and "." in raw:
        return raw.lower()
    address = normalise(raw)
    if address is None:
        wanted = "an email address or @domain" if domains else "an email address"
        raise click.BadParameter(f"not {wanted}: {raw!r}")
    return address


def _until(raw: str, now: datetime) -> datetime:
    """'30d', '6w', '3m' or an ISO date."""
    match = re.fullmatch(r"(\d+)([dwm])", raw.strip().lower())
    if match:
        n, unit = int(match[1]), match[2]
        return now + timedelta(days=n * {"d": 1, "w": 7, "m": 30}[unit])
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise click.BadParameter(f"expected 30d, 6w, 3m or a date, got {raw!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=now.tzinfo)


def _annotate(app: App, action: str, subject: str, value: str | None) -> None:
    app.store.append_contact_event(ContactEvent(action, _address(subject), value, app.now))


@cli.command()
@click.argument("address")
@click.argument("duration", default="30d")
@pass_app
def snooze(app: App, address: str, duration: str) -> None:
    """Keep ADDRESS out of the digest for DURATION (30d, 6w, 3m or a date)."""
    until = _until(duration, app.now)
    _annotate(app, "snooze", address, until.isoformat())
    click.echo(f"snoozed {address} until {until:%Y-%m-%d}")


def _simple(action: str, help_text: str) -> None:
    @cli.command(name=action, help=help_text)
    @click.argument("address")
    @pass_app
    def command(app: App, address: str) -> None:
        _annotate(app, action, address, None)
        click.echo(f"{action}: {address}")


for _action, _help in (
    ("unsnooze", "End a snooze early."),
    ("ignore", "Never list ADDRESS or @domain (subdomains included)."),
    ("unignore", "Undo an ignore."),
    ("pin", "Always track ADDRESS, even if the exchange is one-way."),
    ("unpin", "Undo a pin."),
):
    _simple(_action, _help)


@cli.command()
@click.argument("address")
@click.argument("tier")
@pass_app
def tier(app: App, address: str, tier: str) -> None:
    """Put ADDRESS (or @domain) in TIER (a name from model.tiers)."""
    from keepwarm.daemon import project

    if tier not in app.config.model.tiers:
        raise click.BadParameter(
            f"unknown tier {tier!r}; tiers: {', '.join(app.config.model.tiers)}"
        )
    _annotate(app, "tier", address, tier)
    # The tier shapes the learned rhythm, so the contact is folded again.
    if address.startswith("@"):
        project.rebuild(app.store, app.config)
    else:
        project.update(app.store, app.config, [_address(address)])
    click.echo(f"{address} is now in tier {tier}")


@cli.command()
@click.argument("address")
@click.argument("tag")
@click.option("--remove", is_flag=True, help="Remove the tag instead.")
@pass_app
def tag(app: App, address: str, tag: str, remove: bool) -> None:
    """Tag ADDRESS (or @domain) with TAG; tags form circles in the digest."""
    tag = tag.strip()
    if not tag:
        raise click.BadParameter("a tag needs at least one character", param_hint="TAG")
    _annotate(app, "untag" if remove else "tag", address, tag)
    click.echo(f"{'untagged' if remove else 'tagged'} {address}: {tag}")
