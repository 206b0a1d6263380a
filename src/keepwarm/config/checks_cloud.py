"""Config checks for the cloud accounts: Google credentials and Microsoft tenants and secrets."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from keepwarm.config.problems import Problems, show
from keepwarm.config.schema import AccountConfig
from keepwarm.hosts import is_loopback

GOOGLE_CREDENTIALS = ("credentials_file", "client_secrets_file", "service_account_file")


def _sources(account: AccountConfig, prefix: str) -> list[str]:
    names = (f"{prefix}_file", f"{prefix}_env", f"{prefix}_command")
    return [name for name in names if getattr(account, name) is not None]


def check_google(account: AccountConfig, at: str, out: Problems) -> None:
    """Exactly one way to credentials; delegation names the users it reads."""
    given = [name for name in GOOGLE_CREDENTIALS if getattr(account, name)]
    if not given:
        # Named by the usual key; docs/google.md gives the two alternatives.
        out.append((f"{at}.credentials_file", f"required for kind {show(account.kind)}"))
    elif len(given) > 1:
        out.append((f"{at}.{given[1]}", f"set only one of {', '.join(given)}"))
    if account.service_account_file and not account.users:
        out.append((f"{at}.users", "service_account_file needs the users to read (delegation)"))
    if account.users and not account.service_account_file:
        out.append((f"{at}.users", "only for service_account_file (domain-wide delegation)"))
    for i, user in enumerate(account.users):
        if "@" not in user:
            out.append((f"{at}.users[{i}]", f"must be an email address, got {show(user)}"))


TENANT = re.compile(
    r"common|consumers|organizations|[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
    r"|([A-Za-z0-9-]+\.)+[A-Za-z]{2,}"
)


def check_microsoft(account: AccountConfig, at: str, out: Problems) -> None:
    """Delegated or app-only (a client secret and the mailbox it reads), a usable tenant, and
    bearer tokens never sent in plain text off this machine."""
    app_only = bool(_sources(account, "client_secret"))
    # With two secret sources the account already has its problem (_one_source); what app-only
    # access further needs is said once the secret is settled.
    settled = len(_sources(account, "client_secret")) <= 1
    if app_only and settled and not account.mailbox:
        out.append((f"{at}.mailbox", "app-only access (a client secret) reads one mailbox: set it"))
    if account.mailbox and not app_only:
        out.append(
            (
                f"{at}.client_secret_file",
                "mailbox is read with app-only access: set client_secret_file,"
                " client_secret_env or client_secret_command (or remove mailbox)",
            )
        )
    if not TENANT.fullmatch(account.tenant):
        out.append(
            (
                f"{at}.tenant",
                "must be common, consumers, organizations, a tenant id (GUID) or a domain like"
                f" contoso.onmicrosoft.com, got {show(account.tenant)}",
            )
        )
    elif (
        app_only
        and settled
        and account.tenant in ("common", "consumers", "organizations")
        and not account.authority
    ):
        tenant = show(account.tenant)
        out.append(
            (f"{at}.tenant", f"app-only access needs your tenant id or domain, not {tenant}")
        )
    graph = account.graph_endpoint
    if (
        graph
        and urlsplit(graph).scheme == "http"
        and not is_loopback(urlsplit(graph).hostname or "")
    ):
        out.append((f"{at}.graph_endpoint", "must be https (it carries access tokens)"))
