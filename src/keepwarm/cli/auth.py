"""`keepwarm auth`: authorise cloud accounts (one subcommand per provider)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from keepwarm.cli.app import App, cli, pass_app
from keepwarm.errors import UserError

if TYPE_CHECKING:
    from keepwarm.config.schema import AccountConfig
    from keepwarm.connectors.google import oauth

GOOGLE_KINDS = ("gmail", "google_calendar")


@cli.group()
def auth() -> None:
    """Authorise cloud accounts."""


@auth.command("google")
@click.argument("account_name", metavar="ACCOUNT")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Loopback port Google redirects the browser to (0: any free port).",
)
@click.option(
    "--send-as",
    is_flag=True,
    help="gmail: also ask to read settings (gmail.settings.basic) for your send-as addresses.",
)
@pass_app
def google(app: App, account_name: str, port: int, send_as: bool) -> None:
    """Authorise a gmail, google_calendar or imap (oauth_provider = "google") ACCOUNT on a
    server without a browser.

    Prints a URL to open in any browser. Google then redirects that browser to
    http://127.0.0.1:PORT/ on this machine: forward the port (ssh -L PORT:127.0.0.1:PORT) or
    paste the address the browser shows. The refresh token is stored with mode 0600. An imap
    account asks for https://mail.google.com/, the only scope Gmail's IMAP accepts.
    """
    from keepwarm.connectors.auth.files import write_private
    from keepwarm.connectors.google import auth as google_auth
    from keepwarm.connectors.google import oauth

    account = _google_account(app, account_name)
    client, target = _client_and_target(app, account)
    scopes = google_auth.scopes_for(account.kind, send_as=send_as)
    answer = oauth.run_flow(
        client, scopes, port=port, say=lambda text: click.echo(text, err=True), stdin=sys.stdin
    )
    # Google says what was granted: consent screens let users untick scopes.
    granted = str(answer["scope"]).split() if "scope" in answer else list(scopes)
    missing = [scope for scope in scopes if scope not in granted]
    if missing:
        raise UserError(
            f"access was granted without {', '.join(missing)}: run the command again and "
            "leave every box on the consent screen ticked"
        )
    token = {
        "type": "authorized_user",
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "refresh_token": answer["refresh_token"],
        "token_uri": client.token_uri,
        "auth_uri": client.auth_uri,  # not google-auth's, for the next `keepwarm auth google`
        "scopes": granted,
        "account": account.name,
        "authorised_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_private(target, (json.dumps(token, indent=2) + "\n").encode())
    click.echo(f"{account.name}: authorised; refresh token stored in {target} (mode 0600)")
    _show_access(app, account)


def _show_access(app: App, account: AccountConfig) -> None:
    """Prove the token works: whose mail it reads, which calendars it can read (the ids
    `calendars` takes), or that the IMAP server lets it in. A failure here is reported, not
    fatal: the token is stored."""
    from keepwarm.connectors.google import auth as google_auth
    from keepwarm.connectors.google import service
    from keepwarm.connectors.google.quota import Pacer
    from keepwarm.daemon.sync import state_dir
    from keepwarm.errors import ConnectorError

    try:
        if account.kind == "imap":
            from keepwarm.connectors.imap.client import session

            token = google_auth.ImapAccessToken(account, state_dir(app.config.store.url))
            with session(account, token):
                click.echo(f"logs in to {account.host} as {account.username} over IMAP")
            return
        if account.kind == "gmail":
            api = service.gmail(account, state_dir(app.config.store.url), None, Pacer.for_rate(10))
            request = api.resource.users().getProfile(userId="me", fields="emailAddress")
            profile = api.call(request, "gmail.users.getProfile")
            click.echo(f"reads the mail of {profile.get('emailAddress')}")
        else:
            api = service.calendar(
                account, state_dir(app.config.store.url), None, Pacer.for_rate(10)
            )
            request = api.resource.calendarList().list(fields="items(id,summary,primary)")
            found = api.call(request, "calendar.calendarList.list").get("items", [])
            click.echo("calendars it can read (for `calendars`; default primary):")
            for item in found:
                primary = "primary: " if item.get("primary") else ""
                click.echo(f"  {primary}{item.get('id')}  ({item.get('summary', '')})")
        api.close()
    except ConnectorError as exc:
        click.echo(f"warning: the token is stored, but a test read failed: {exc}", err=True)


def _google_account(app: App, name: str) -> AccountConfig:
    for account in app.config.accounts:
        if account.name == name:
            if account.kind == "imap" and account.oauth_provider != "google":
                raise click.UsageError(
                    f'imap account {name!r} signs in with Google only with auth = "xoauth2" and'
                    ' oauth_provider = "google"'
                )
            if account.kind not in (*GOOGLE_KINDS, "imap"):
                raise click.UsageError(
                    f"account {name!r} is of kind {account.kind!r}, not gmail or google_calendar"
                    ' (or imap with oauth_provider = "google")'
                )
            if account.service_account_file:
                raise UserError(
                    f"account {name!r} reads through a service account: nothing to authorise"
                )
            return account
    raise click.UsageError(f"no account named {name!r} in the config")


def _client_and_target(app: App, account: AccountConfig) -> tuple[oauth.Client, Path]:
    """The OAuth client to use and where the token goes: the account's credentials_file when
    it has one (its client is reused, its token replaced), else the state directory."""
    from keepwarm.connectors.google import auth as google_auth
    from keepwarm.connectors.google import oauth
    from keepwarm.daemon.sync import state_dir

    if account.credentials_file:
        path = Path(account.credentials_file).expanduser()
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: cannot read accounts.credentials_file ({exc})") from exc
        return oauth.client_from_info(info, path), path
    if not account.client_secrets_file:  # config checks require it, except for imap
        raise UserError(
            f"account {account.name!r} needs client_secrets_file (the Desktop-app OAuth client"
            " JSON from Google Cloud) or credentials_file"
        )
    client = oauth.client_from_secrets(Path(account.client_secrets_file).expanduser())
    return client, google_auth.token_path(state_dir(app.config.store.url), account.name)
