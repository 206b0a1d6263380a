"""`keepwarm auth microsoft ACCOUNT...`: sign in to Outlook / Microsoft 365 accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from keepwarm.cli.app import App, pass_app
from keepwarm.cli.auth import auth
from keepwarm.errors import AuthError

if TYPE_CHECKING:
    from keepwarm.config.schema import AccountConfig, Config

KINDS = ("outlook", "outlook_calendar")


@auth.command("microsoft")
@click.argument("names", nargs=-1, required=True, metavar="ACCOUNT...")
@pass_app
def microsoft(app: App, names: tuple[str, ...]) -> None:
    """Sign in to Outlook.com / Microsoft 365 accounts with the device code flow.

    Prints a code and a web address: open it on any device, enter the code and sign in. The
    token cache is saved (mode 0600) in the state directory. Name the mail and the calendar
    account of one Microsoft user together to sign in once for both. For app-only accounts
    (client secret and mailbox) nothing is signed in: their credentials and access are tested.
    An imap account (oauth_provider = "microsoft") signs in for Outlook's IMAP scope, on its own.
    """
    import msal

    from keepwarm.connectors.auth.files import write_private
    from keepwarm.connectors.microsoft.auth import (
        authority_url,
        cache_path,
        call_msal,
        describe,
        is_app_only,
        public_app,
        scopes,
    )
    from keepwarm.connectors.microsoft.session import http_session
    from keepwarm.daemon.sync import state_dir

    accounts = _accounts(app.config, names)
    state = state_dir(app.config.store.url)
    for account in (a for a in accounts if is_app_only(a)):
        _test_app_only(account, state)
    delegated = [a for a in accounts if not is_app_only(a)]
    if not delegated:
        return
    first = delegated[0]
    for other in delegated[1:]:
        if (other.client_id, authority_url(other)) != (first.client_id, authority_url(first)):
            raise click.UsageError(
                f"{first.name} and {other.name} use different client_id or tenant: sign in to"
                " them one at a time"
            )
        if scopes(other) != scopes(first):  # one sign-in gets tokens for one resource only
            raise click.UsageError(
                f"{first.name} and {other.name} need different permissions (IMAP is not Graph):"
                " sign in to them one at a time"
            )
    cache = msal.SerializableTokenCache()  # a new sign-in replaces whatever was stored
    client = call_msal("device sign-in", first, public_app, first, http_session(first), cache)
    flow: dict[str, Any] = call_msal(
        "device sign-in", first, client.initiate_device_flow, scopes=scopes(first)
    )
    if "user_code" not in flow:
        raise AuthError(f"Microsoft did not start a device sign-in: {describe(flow)}")
    click.echo(flow["message"])
    click.echo("waiting for the sign-in to finish (Ctrl-C to give up) ...")
    result: dict[str, Any] = call_msal(
        "device sign-in", first, client.acquire_token_by_device_flow, flow
    )
    if "access_token" not in result:
        raise AuthError(f"the sign-in did not succeed: {describe(result)}")
    who = (result.get("id_token_claims") or {}).get("preferred_username") or "your account"
    data = cache.serialize().encode("utf-8")
    for account in delegated:
        path = cache_path(state, account.name)
        write_private(path, data)
        click.echo(f"{account.name}: signed in as {who}; token cache {path} (mode 0600)")
        if account.kind == "imap":
            _test_imap_login(account, state)


def _test_imap_login(account: AccountConfig, state: Any) -> None:
    """Log in to the IMAP server once with a token from the new cache. A failure is reported,
    not fatal: the sign-in is stored."""
    from keepwarm.connectors.imap.client import session
    from keepwarm.connectors.microsoft.auth import TokenSource
    from keepwarm.connectors.microsoft.session import http_session
    from keepwarm.errors import ConnectorError

    try:
        http = http_session(account)
        try:
            with session(account, TokenSource(account, state, http).token):
                click.echo(
                    f"{account.name}: logs in to {account.host} as {account.username} over IMAP"
                )
        finally:
            http.close()
    except ConnectorError as exc:
        click.echo(f"warning: the sign-in is stored, but an IMAP login failed: {exc}", err=True)


def _accounts(config: Config, names: tuple[str, ...]) -> list[AccountConfig]:
    from keepwarm.connectors.microsoft.auth import is_app_only

    found: list[AccountConfig] = []
    for name in dict.fromkeys(names):
        account = next((a for a in config.accounts if a.name == name), None)
        if account is None:
            raise click.UsageError(f"no account named {name} in the config")
        if account.kind == "imap" and account.oauth_provider != "microsoft":
            raise click.UsageError(
                f'imap account {name} signs in with Microsoft only with auth = "xoauth2" and'
                ' oauth_provider = "microsoft"'
            )
        if account.kind not in (*KINDS, "imap"):
            raise click.UsageError(
                f'{name} is of kind "{account.kind}": `keepwarm auth microsoft` signs in'
                f" accounts of kind {', '.join(KINDS)} or imap"
            )
        if account.kind == "imap" and is_app_only(account):
            raise click.UsageError(
                f"{name}: app-only (client secret) IMAP access is not supported; remove"
                " client_secret_*"
            )
        found.append(account)
    return found


def _test_app_only(account: AccountConfig, state: Any) -> None:
    """Get an app token and read one thing the account needs: the inbox or the calendars."""
    from keepwarm.connectors.microsoft.auth import TokenSource
    from keepwarm.connectors.microsoft.graph import GraphClient
    from keepwarm.connectors.microsoft.session import http_session

    session = http_session(account)
    try:
        client = GraphClient(account, TokenSource(account, state, session), session)
        if account.kind == "outlook":
            client.get(f"{client.base}/mailFolders/inbox", {"$select": "id"})
        else:
            client.get(f"{client.base}/calendars", {"$select": "id", "$top": "1"})
    finally:
        session.close()
    click.echo(f"{account.name}: app-only access to {account.mailbox} works")
