"""Commands about sources and the log: sync, status, rebuild."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime
from typing import Any

import click

from keepwarm.cli.app import FORMATS, App, cli, pass_app
from keepwarm.cli.tables import ago, table


@cli.command()
@click.option("--account", "names", multiple=True, metavar="NAME", help="Only these accounts.")
@pass_app
def sync(app: App, names: tuple[str, ...]) -> None:
    """Poll every configured account once, then update the relationship state."""
    from keepwarm.connectors.base import known_kinds
    from keepwarm.daemon.sync import sync_all

    config = app.config
    unknown = set(names) - {a.name for a in config.accounts}
    if unknown:
        raise click.UsageError(f"no account named {', '.join(sorted(unknown))} in the config")
    if not config.accounts:
        click.echo("no accounts configured: see `keepwarm init` and the README", err=True)
        return
    # The config accepts every documented kind, some before their connector exists: such an
    # account fails on its own, with the reason, instead of crashing the sync of the others.
    selected = [a for a in config.accounts if (a.name in names if names else a.enabled)]
    if not selected:
        click.echo("every account is disabled (enabled = false): nothing to sync", err=True)
        return
    kinds = known_kinds()
    missing = [a for a in selected if a.kind not in kinds]
    failed = 0
    for account in missing:
        failed += 1
        message = f'kind "{account.kind}" is not supported by this version of keepwarm yet'
        fix = "disable the account (enabled = false) or use a supported kind: " + ", ".join(
            sorted(kinds)
        )
        app.store.record_error(account.name, "error", message, fix, app.now)
        click.echo(f"{account.name}: FAILED (error): {message}; {fix}", err=True)
    runnable = tuple(a.name for a in selected if a.kind in kinds)
    results = sync_all(app.store, config, names=runnable, now=lambda: app.now) if runnable else []
    for result in results:
        if result.ok:
            click.echo(
                f"{result.account}: {result.items} read, {result.new} new touchpoints"
                + _counts(", skipped", result.skipped)
                + _counts(", filtered", result.filtered)
            )
        else:
            failed += 1
            click.echo(f"{result.account}: FAILED ({result.error_kind}): {result.error}", err=True)
    if failed:
        raise click.exceptions.Exit(1)


def _counts(label: str, counts: Counter[str]) -> str:
    if not counts:
        return ""
    parts = ", ".join(f"{reason} {n}" for reason, n in counts.most_common())
    return f"{label} {sum(counts.values())} ({parts})"


@cli.command()
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@pass_app
def status(app: App, fmt: str) -> None:
    """Each account's cursor, last sync, error and what to do about it."""
    rows = account_rows(app)
    workers = app.store.leases.workers(app.now)
    if fmt == "json":
        click.echo(json.dumps({"accounts": rows, "workers": workers}, indent=2))
        return
    if not rows:
        click.echo("no accounts configured")
        return
    click.echo(
        table(
            ["ACCOUNT", "KIND", "LAST SYNC", "WORKER", "TOUCHPOINTS", "SKIPPED", "STATE"],
            [
                [
                    r["name"],
                    r["kind"],
                    ago(r["last_sync"], app.now),
                    r["worker"] or "-",
                    str(r["touchpoints"]),
                    _reasons(r["skipped"], r["skipped_reasons"]),
                    _state(r),
                ]
                for r in rows
            ],
        )
    )
    for r in rows:
        if r["error"] and r["fix"]:
            click.echo(f"  {r['name']}: {r['fix']}")
    if workers:
        click.echo(f"workers: {', '.join(workers)}")


def _state(row: dict[str, Any]) -> str:
    if row["error"]:
        return f"{row['error_kind']}: {row['error']}"
    if not row["configured"]:
        return "no longer in the config"
    return "ok" if row["enabled"] else "disabled"


def _reasons(total: int, reasons: dict[str, int]) -> str:
    if not total:
        return "0"
    return f"{total} (" + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) + ")"


def account_rows(app: App) -> list[dict[str, Any]]:
    """Configured accounts joined with their stored state (and stored ones no longer configured)."""
    stored = {s.name: s for s in app.store.account_states()}
    # Team mode: who polls each account now (a lease that ran out names nobody).
    worker = {x.account: x.owner for x in app.store.leases.holders() if x.expires_at > app.now}
    rows: list[dict[str, Any]] = []
    configured = {a.name: a for a in app.config.accounts}
    for name in [*configured, *sorted(set(stored) - set(configured))]:
        state = stored.get(name)
        account = configured.get(name)
        rows.append(
            {
                "name": name,
                "kind": account.kind if account else None,
                "enabled": bool(account and account.enabled),
                "configured": account is not None,
                "cursor": state.cursor if state else None,
                "last_sync": _iso(state.last_sync if state else None),
                "last_attempt": _iso(state.last_attempt if state else None),
                "lag_seconds": _lag(state.last_sync if state else None, app.now),
                "worker": worker.get(name),
                "error_kind": state.error_kind if state else None,
                "error": state.error if state else None,
                "fix": state.error_fix if state else None,
                "touchpoints": state.touchpoints if state else 0,
                "skipped": state.skipped if state else 0,
                "skipped_reasons": dict(state.skipped_reasons) if state else {},
                "filtered": dict(state.filtered) if state else {},
            }
        )
    return rows


def _lag(last_sync: datetime | None, now: datetime) -> int | None:
    """Seconds since the last good sync: how far behind the source keepwarm may be."""
    return None if last_sync is None else max(0, int((now - last_sync).total_seconds()))


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


@cli.command()
@pass_app
def rebuild(app: App) -> None:
    """Recompute every contact's state from the event log (the log is the truth)."""
    from keepwarm.daemon import project

    started = time.monotonic()
    contacts = project.rebuild(app.store, app.config)
    touchpoints = app.store.count_touchpoints()
    click.echo(
        f"rebuilt {contacts} contacts from {touchpoints} touchpoints "
        f"in {time.monotonic() - started:.1f} s"
    )


@cli.command()
@pass_app
def run(app: App) -> None:
    """Run as a service: poll every account on its schedule until SIGTERM (SIGHUP reloads)."""
    from keepwarm import log as logging_setup
    from keepwarm.config.load import find_path, load
    from keepwarm.daemon.loop import Service

    config = app.config
    logging_setup.configure(app.log_level or config.daemon.log_level)
    path = find_path(app.config_path)
    Service(app.store, config, reload=lambda: load(path)).run()
