"""XOAUTH2 tokens from keepwarm's own sign-ins: `oauth_provider = "google"` (what
`keepwarm auth google NAME` stored, a `credentials_file` or a service account; scope
`https://mail.google.com/`) and `"microsoft"` (the msal token cache of `keepwarm auth microsoft
NAME`; scope `https://outlook.office.com/IMAP.AccessAsUser.All`).

`tokens.token_provider` imports this module, which registers both. The Google and msal
libraries are imported only when an account uses them.
"""

from __future__ import annotations

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, SourceProblem
from keepwarm.connectors.imap.tokens import TokenProvider, token_source

_GOOGLE_KEYS = ("client_secrets_file", "credentials_file", "service_account_file")


@token_source("google")
def google_tokens(account: AccountConfig, context: ConnectorContext) -> TokenProvider:
    """Access tokens from the account's Google credentials, refreshed when stale."""
    given = [key for key in _GOOGLE_KEYS if getattr(account, key)]
    if len(given) != 1:
        problem = "no Google credentials" if not given else f"both {given[0]} and {given[1]}"
        raise SourceProblem(
            f'account {account.name!r} has oauth_provider = "google" but {problem}',
            "set one of client_secrets_file (then run `keepwarm auth google "
            f"{account.name}`), credentials_file or service_account_file; or remove "
            "oauth_provider and give the access token through password_command",
        )
    if account.service_account_file and not account.username:
        raise SourceProblem(
            f"account {account.name!r}: a service account needs username, the user it acts as",
            "set username to the Workspace address whose mail is read",
        )
    from keepwarm.connectors.google.auth import ImapAccessToken

    return ImapAccessToken(account, context.state_dir)


@token_source("microsoft")
def microsoft_tokens(account: AccountConfig, context: ConnectorContext) -> TokenProvider:
    """Access tokens from the account's msal token cache, refreshed through msal."""
    if not account.client_id:
        raise SourceProblem(
            f'account {account.name!r} has oauth_provider = "microsoft" but no client_id',
            "set client_id (and tenant) to your app registration, then run "
            f"`keepwarm auth microsoft {account.name}`",
        )
    if any((account.client_secret_file, account.client_secret_env, account.client_secret_command)):
        raise SourceProblem(
            f"account {account.name!r}: app-only (client secret) IMAP access is not supported",
            f"remove client_secret_* and sign in with `keepwarm auth microsoft {account.name}`",
        )
    from keepwarm.connectors.microsoft.auth import TokenSource
    from keepwarm.connectors.microsoft.session import http_session

    source = TokenSource(account, context.state_dir, http_session(account))
    return source.token
