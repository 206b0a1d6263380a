"""Where an IMAP account's XOAUTH2 access token comes from.

With `auth = "xoauth2"` the connector calls a *token provider* (a callable returning a current
access token) every time it logs in. By default the token is read like a password, from
`password_file`, `password_env` or `password_command`, so any OAuth helper that prints an access
token works today (`password_command = ["oama", "access", "me@gmail.com"]`, mutt's
`mutt_oauth2.py`, ...). With `oauth_provider = "google"` or `"microsoft"` the token comes from
the token source registered with `@token_source(name)`: a factory `(account, context) ->
provider`, called once per connector; the provider refreshes as needed. keepwarm's own sources
for both are in `oauth_sources.py`, imported (and so registered) by `token_provider`.
"""

from __future__ import annotations

from collections.abc import Callable

from keepwarm.config.schema import AccountConfig
from keepwarm.config.secrets import read_secret
from keepwarm.connectors.base import ConnectorContext, SourceProblem
from keepwarm.errors import AuthError, UserError

TokenProvider = Callable[[], str]
TokenSourceFactory = Callable[[AccountConfig, ConnectorContext], TokenProvider]

_SOURCES: dict[str, TokenSourceFactory] = {}


def token_source(name: str) -> Callable[[TokenSourceFactory], TokenSourceFactory]:
    """Decorator: make `oauth_provider = name` use this factory for IMAP XOAUTH2 tokens."""

    def wrap(factory: TokenSourceFactory) -> TokenSourceFactory:
        _SOURCES[name] = factory
        return factory

    return wrap


def secret_reader(account: AccountConfig, what: str = "password") -> Callable[[], str]:
    """A callable reading the account's password source anew each time (rotation-friendly).

    `read_secret`'s `UserError` becomes `AuthError` with the same text as its fix: a missing
    password stops this account, not the whole sync.
    """

    def read() -> str:
        try:
            return read_secret(
                file=account.password_file,
                env=account.password_env,
                command=account.password_command,
                key=f"accounts[{account.name}].password",
            )
        except UserError as exc:
            raise AuthError(f"cannot read the IMAP {what}: {exc}", fix=str(exc)) from None

    return read


def token_provider(account: AccountConfig, context: ConnectorContext) -> TokenProvider:
    """The provider of XOAUTH2 access tokens for `account` (see the module docstring)."""
    name = account.oauth_provider
    if not name:
        return secret_reader(account, "access token")
    from keepwarm.connectors.imap import oauth_sources  # noqa: F401  (registers google, microsoft)

    factory = _SOURCES.get(name)
    if factory is None:
        raise SourceProblem(
            f"no {name} token source for IMAP in this keepwarm version",
            fix="remove oauth_provider and give the access token through password_command",
        )
    return factory(account, context)
