"""IMAP XOAUTH2 with tokens from keepwarm's own Google and Microsoft sign-in: the real IMAP
connector against the private Dovecot, whose oauth2 passdb asks the token's issuer (the Google
or Microsoft emulator) whether it lets the token in, as Gmail's and Outlook's IMAP do. Tokens
come from the emulators' token endpoints through the real google-auth and msal; nothing reaches
Google or Microsoft."""

from __future__ import annotations

import http.client
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import structlog
from structlog.testing import capture_logs
from tests.cli_runner import Run, run_cli
from tests.connector_contract import keys, mail
from tests.emulators.google import GoogleEmulator
from tests.emulators.google_setup import OWNER
from tests.emulators.google_setup import emulator as emulator  # the fixture
from tests.emulators.microsoft import (
    CLIENT_ID,
    USER,
    Emulators,
    OpensslMissing,
    emulators,
    outlook_account,
    sign_in,
)

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.auth.files import write_private
from keepwarm.connectors.base import ConnectorContext, SourceProblem, create
from keepwarm.connectors.google.auth import GMAIL_IMAP, GMAIL_METADATA, token_path
from keepwarm.connectors.microsoft.auth import OUTLOOK_IMAP, cache_path
from keepwarm.errors import AuthError

if TYPE_CHECKING:  # the module is a plugin, imported by pytest (assertion rewriting)
    from tests.servers.dovecot import Dovecot, ImapUser

pytest_plugins = ("tests.servers.dovecot",)

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(autouse=True)
def _plain_logging() -> None:
    # The CLI points structlog at a captured stderr that is closed after each run.
    structlog.reset_defaults()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> ImapUser:
    """A fresh Dovecot user with one message from Alice in INBOX."""
    user = dovecot.add_user()
    dovecot.append(user, [mail("hello@x")])
    return user


@pytest.fixture
def context(tmp_path: Path) -> ConnectorContext:
    return ConnectorContext(state_dir=tmp_path / "state", now=lambda: datetime.now(UTC))


def imap_account(dovecot: Dovecot, user: ImapUser, provider: str, **settings: Any) -> AccountConfig:
    return AccountConfig(
        name="mail", kind="imap", host=dovecot.host, port=dovecot.port, security="none",
        username=user.username, auth="xoauth2", oauth_provider=provider, **settings,
    )  # fmt: skip


def poll(account: AccountConfig, context: ConnectorContext) -> list[str]:
    """One poll to the end by a connector built through the registry: the Message-IDs read."""
    connector = create(account, context)
    try:
        return keys(list(connector.poll(None)))
    finally:
        connector.close()


def config_file(tmp_path: Path, account: str) -> Path:
    path = tmp_path / "keepwarm.toml"
    path.write_text(
        f'[owner]\naddresses = ["{OWNER}"]\n[store]\n'
        f'url = "sqlite:///{tmp_path / "state" / "keepwarm.db"}"\n\n[[accounts]]\n{account}'
    )
    return path


def account_toml(account: AccountConfig, **extra: str) -> str:
    """The config lines of an imap account (as docs/imap.md shows them)."""
    lines = {
        "name": account.name, "kind": "imap", "host": account.host, "port": account.port,
        "security": "none", "username": account.username, "auth": "xoauth2",
        "oauth_provider": account.oauth_provider, **extra,
    }  # fmt: skip
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in lines.items())


# --- Google ----------------------------------------------------------------------------------


@pytest.fixture
def gmail_imap(dovecot: Dovecot, mailbox: ImapUser, emulator: GoogleEmulator) -> Iterator[None]:
    """Dovecot lets in the Google emulator's tokens for the owner, as Gmail's IMAP would."""
    owners = {OWNER: mailbox.username}
    with dovecot.trusting(lambda token: owners.get(emulator.oauth.imap_user(token) or "")):
        yield


def google_file(emu: GoogleEmulator, folder: Path, *scopes: str, recorded: bool = True) -> Path:
    """Authorized-user JSON for the owner; `recorded`: with the `scopes` key that
    `keepwarm auth google` writes (other tools' files may lack it)."""
    info: dict[str, Any] = emu.oauth.authorized_user_info(OWNER, scopes)
    if recorded:
        info["scopes"] = list(scopes)
    path = folder / "google-credentials.json"
    write_private(path, json.dumps(info).encode())
    return path


def refreshes(emu: GoogleEmulator) -> int:
    return emu.oauth.grants.count("refresh_token")


def browse(url: str) -> str:
    """The browser on another machine: Google's consent page answers with the redirect."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    connection.request("GET", f"{parts.path}?{parts.query}")
    answer = connection.getresponse()
    assert answer.status == 302, answer.read()
    return str(answer.getheader("Location"))


@pytest.mark.usefixtures("gmail_imap")
def test_keepwarm_auth_google_for_an_imap_account_then_sync(
    dovecot: Dovecot,
    mailbox: ImapUser,
    emulator: GoogleEmulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secrets = tmp_path / "client_secret.json"
    secrets.write_text(json.dumps(emulator.oauth.client_secrets()))
    account = imap_account(dovecot, mailbox, "google")
    config = config_file(tmp_path, account_toml(account, client_secrets_file=str(secrets)))
    process = subprocess.Popen(
        [sys.executable, "-m", "keepwarm", "--config", str(config), "auth", "google", "mail",
         "--port", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stderr is not None
        shown = ""
        for line in process.stderr:  # the instructions, up to the invitation to paste
            shown += line
            if "paste it here" in line:
                break
        found = re.search(r"(http://127\.0\.0\.1:\d+/o/oauth2/auth\?\S+)", shown)
        assert found, shown
        assert parse_qs(urlsplit(found[1]).query)["scope"] == [GMAIL_IMAP]
        out, err = process.communicate(browse(found[1]) + "\n", timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert f"logs in to {dovecot.host} as {mailbox.username} over IMAP" in out  # tried at once
    stored = token_path(tmp_path / "state", "mail")
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text())["scopes"] == [GMAIL_IMAP]
    with capture_logs() as logs:
        synced = run_cli(capsys, "--config", str(config), "sync")
    assert synced.code == 0, synced.err
    assert "mail: 1 read, 1 new touchpoints" in synced.out
    issued = list(emulator.oauth.access_tokens)
    assert dovecot.introspections[-1] in issued  # Dovecot asked about a token Google issued
    shown = synced.out + synced.err + repr(logs) + out + err
    assert not [token for token in issued if token in shown]  # tokens never reach logs


@pytest.mark.usefixtures("gmail_imap")
def test_a_current_google_token_serves_the_next_polls_without_a_refresh(
    dovecot: Dovecot, mailbox: ImapUser, emulator: GoogleEmulator, context: ConnectorContext
) -> None:
    path = google_file(emulator, context.state_dir.parent, GMAIL_IMAP)
    account = imap_account(dovecot, mailbox, "google", credentials_file=str(path))
    # The daemon builds a connector per poll: the hour-long token outlives each of them.
    assert poll(account, context) == ["hello@x"]
    assert poll(account, context) == ["hello@x"]
    assert refreshes(emulator) == 1
    assert dovecot.introspections[-1] == dovecot.introspections[-2]
    google_file(emulator, context.state_dir.parent, GMAIL_IMAP)  # authorised anew
    assert poll(account, context) == ["hello@x"]
    assert refreshes(emulator) == 2  # a new refresh token never gets the old access token


@pytest.mark.usefixtures("gmail_imap")
def test_an_expired_google_token_is_refreshed_with_the_refresh_token(
    dovecot: Dovecot, mailbox: ImapUser, emulator: GoogleEmulator, context: ConnectorContext
) -> None:
    # Tokens that live 60 s are inside google-auth's refresh margin (3 min 45 s) from the start.
    emulator.oauth.lifetime = 60
    path = google_file(emulator, context.state_dir.parent, GMAIL_IMAP)
    connector = create(
        imap_account(dovecot, mailbox, "google", credentials_file=str(path)), context
    )
    try:
        assert keys(list(connector.poll(None))) == ["hello@x"]
        first = dovecot.introspections[-1]
        connector.close()
        emulator.oauth.expire_access_tokens()  # its time is up: Gmail would refuse it now
        assert emulator.oauth.imap_user(first) is None
        assert keys(list(connector.poll(None))) == ["hello@x"]  # the same connector, again
    finally:
        connector.close()
    assert refreshes(emulator) == 2
    assert dovecot.introspections[-1] != first
    assert emulator.oauth.imap_user(dovecot.introspections[-1]) == OWNER


@pytest.mark.usefixtures("gmail_imap")
def test_a_revoked_google_refresh_token_is_an_auth_error_with_the_command_to_run(
    dovecot: Dovecot, mailbox: ImapUser, emulator: GoogleEmulator, context: ConnectorContext
) -> None:
    path = google_file(emulator, context.state_dir.parent, GMAIL_IMAP)
    revoked = json.loads(path.read_text())["refresh_token"]
    emulator.oauth.revoke(revoked)
    account = imap_account(dovecot, mailbox, "google", credentials_file=str(path))
    connector = create(account, context)
    try:
        with pytest.raises(AuthError) as caught:
            list(connector.poll(None))
        assert "invalid_grant" in str(caught.value)
        assert revoked not in str(caught.value)
        assert caught.value.fix == "keepwarm auth google mail"
        google_file(emulator, context.state_dir.parent, GMAIL_IMAP)  # the user authorised again
        assert keys(list(connector.poll(None))) == ["hello@x"]  # read anew: no restart needed
    finally:
        connector.close()


@pytest.mark.parametrize("recorded", [True, False], ids=["file-says", "google-says"])
@pytest.mark.usefixtures("gmail_imap")
def test_a_google_token_without_the_imap_scope_is_an_auth_error_naming_the_command(
    dovecot: Dovecot,
    mailbox: ImapUser,
    emulator: GoogleEmulator,
    context: ConnectorContext,
    recorded: bool,
) -> None:
    """A token authorised for the Gmail API (gmail.metadata) cannot log in to IMAP: refused
    from what the token file records, or else from Google's answer to the refresh."""
    path = google_file(emulator, context.state_dir.parent, GMAIL_METADATA, recorded=recorded)
    # The state directory's token file, as `keepwarm auth google` left it for a gmail account.
    write_private(token_path(context.state_dir, "mail"), path.read_bytes())
    secrets = context.state_dir.parent / "client_secret.json"
    secrets.write_text(json.dumps(emulator.oauth.client_secrets()))
    account = imap_account(dovecot, mailbox, "google", client_secrets_file=str(secrets))
    with pytest.raises(AuthError) as caught:
        poll(account, context)
    assert f"without {GMAIL_IMAP}" in str(caught.value)
    assert caught.value.fix == "keepwarm auth google mail"
    assert refreshes(emulator) == (0 if recorded else 1)
    assert not emulator.oauth.access_tokens  # no token was issued for the wrong scope


def test_a_google_service_account_logs_in_as_the_imap_user_it_is_delegated_for(
    dovecot: Dovecot, mailbox: ImapUser, emulator: GoogleEmulator, context: ConnectorContext
) -> None:
    emulator.user(mailbox.username)  # a Workspace user whose address is the IMAP username
    allowed = context.state_dir.parent / "sa-imap.json"
    allowed.write_text(json.dumps(emulator.oauth.service_account_info((GMAIL_IMAP,))))
    api_only = context.state_dir.parent / "sa-api.json"
    api_only.write_text(json.dumps(emulator.oauth.service_account_info((GMAIL_METADATA,))))
    account = imap_account(dovecot, mailbox, "google", service_account_file=str(allowed))
    as_user = {mailbox.username: mailbox.username}
    with dovecot.trusting(lambda token: as_user.get(emulator.oauth.imap_user(token) or "")):
        assert poll(account, context) == ["hello@x"]
        with pytest.raises(AuthError) as caught:
            poll(replace(account, service_account_file=str(api_only)), context)
    assert "unauthorized_client" in str(caught.value)
    assert GMAIL_IMAP in caught.value.fix  # what the admin must allow
    assert "accounts.username" in caught.value.fix


def test_google_without_credentials_says_which_keys_to_set(
    dovecot: Dovecot, mailbox: ImapUser, context: ConnectorContext
) -> None:
    with pytest.raises(SourceProblem) as caught:
        create(imap_account(dovecot, mailbox, "google"), context)
    assert "client_secrets_file" in caught.value.fix
    assert "keepwarm auth google mail" in caught.value.fix


# --- Microsoft -------------------------------------------------------------------------------


@pytest.fixture
def em(monkeypatch: pytest.MonkeyPatch) -> Emulators:
    try:
        found = emulators()
    except OpensslMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    found.reset()
    found.identity.pending_polls = 0  # the device sign-in completes at the first poll
    # A CA bundle in the environment that does not trust the emulator: ca_file must win.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    return found


@pytest.fixture
def outlook_imap(dovecot: Dovecot, mailbox: ImapUser, em: Emulators) -> Iterator[AccountConfig]:
    """An imap account signing in with the Microsoft emulator, whose tokens Dovecot lets in
    for the signed-in user, as Outlook's IMAP would."""
    owners = {USER: mailbox.username}
    account = imap_account(
        dovecot, mailbox, "microsoft", client_id=CLIENT_ID, authority=em.authority(),
        ca_file=str(em.ca_file),
    )  # fmt: skip
    with dovecot.trusting(lambda token: owners.get(em.identity.imap_user(token) or "")):
        yield account


def ms_refreshes(em: Emulators) -> int:
    return len(em.identity.token_requests("refresh_token"))


def test_keepwarm_auth_microsoft_for_an_imap_account_then_sync(
    outlook_imap: AccountConfig,
    em: Emulators,
    dovecot: Dovecot,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    account = outlook_imap
    extra = {"client_id": CLIENT_ID, "authority": em.authority(), "ca_file": str(em.ca_file)}
    graph = outlook_account(em, name="outlook")
    graph_lines = "".join(
        f'{k} = "{getattr(graph, k)}"\n'
        for k in ("name", "kind", "client_id", "authority", "graph_endpoint", "ca_file")
    )
    config = config_file(
        tmp_path, account_toml(account, **extra) + "\n[[accounts]]\n" + graph_lines
    )
    both = run_cli(capsys, "--config", str(config), "auth", "microsoft", "mail", "outlook")
    assert both.code == 2
    assert "sign in to them one at a time" in both.err  # IMAP and Graph: two resources
    run: Run = run_cli(capsys, "--config", str(config), "auth", "microsoft", "mail")
    assert run.code == 0, run.err
    assert f"mail: signed in as {USER}" in run.out
    assert f"mail: logs in to {dovecot.host} as {account.username} over IMAP" in run.out
    [code] = [r for r in em.identity.requests if r.path.endswith("/devicecode")]
    assert set(code.form["scope"].split()) >= {OUTLOOK_IMAP, "offline_access"}
    path = cache_path(tmp_path / "state", "mail")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with capture_logs() as logs:
        synced = run_cli(capsys, "--config", str(config), "sync", "--account", "mail")
    assert synced.code == 0, synced.err
    assert "mail: 1 read, 1 new touchpoints" in synced.out
    issued = list(em.identity.access)
    assert dovecot.introspections[-1] in issued
    shown = synced.out + synced.err + repr(logs) + run.out + run.err
    assert not [token for token in issued if token in shown]


def test_an_expired_microsoft_token_is_refreshed_through_msal(
    outlook_imap: AccountConfig, em: Emulators, dovecot: Dovecot, context: ConnectorContext
) -> None:
    em.identity.token_lifetime = 30  # msal refreshes tokens with under five minutes left
    sign_in(outlook_imap, context.state_dir)
    connector = create(outlook_imap, context)
    try:
        assert keys(list(connector.poll(None))) == ["hello@x"]
        first, before = dovecot.introspections[-1], ms_refreshes(em)
        connector.close()
        em.identity.access.clear()  # its time is up: Outlook would refuse it now
        assert keys(list(connector.poll(None))) == ["hello@x"]
    finally:
        connector.close()
    assert ms_refreshes(em) == before + 1
    assert dovecot.introspections[-1] != first
    assert em.identity.imap_user(dovecot.introspections[-1]) == USER
    path = cache_path(context.state_dir, outlook_imap.name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # msal's refreshed cache, replaced whole


def test_a_revoked_microsoft_refresh_token_is_an_auth_error_with_the_command_to_run(
    outlook_imap: AccountConfig, em: Emulators, context: ConnectorContext
) -> None:
    em.identity.token_lifetime = 0
    sign_in(outlook_imap, context.state_dir)  # the cached access token has already expired
    em.identity.refresh_error = "revoked"
    with pytest.raises(AuthError) as caught:
        poll(outlook_imap, context)
    assert "AADSTS50173" in str(caught.value)
    assert "Trace ID" not in str(caught.value)
    assert caught.value.fix == "keepwarm auth microsoft mail"


def test_a_microsoft_sign_in_for_graph_only_is_an_auth_error_naming_the_command(
    outlook_imap: AccountConfig, em: Emulators, context: ConnectorContext
) -> None:
    """A token cache signed in for Graph's Mail.ReadBasic (an outlook account's) holds no
    consent for IMAP: the refresh for Outlook's IMAP scope is refused."""
    sign_in(outlook_account(em, name=outlook_imap.name), context.state_dir)
    with pytest.raises(AuthError) as caught:
        poll(outlook_imap, context)
    assert "AADSTS65001" in str(caught.value)
    assert caught.value.fix == "keepwarm auth microsoft mail"
    [asked] = em.identity.token_requests("refresh_token")
    assert OUTLOOK_IMAP in asked.form["scope"].split()
    sign_in(outlook_imap, context.state_dir)  # what `keepwarm auth microsoft mail` does
    assert poll(outlook_imap, context) == ["hello@x"]


def test_microsoft_without_client_id_or_signed_in_says_what_to_do(
    outlook_imap: AccountConfig, context: ConnectorContext
) -> None:
    with pytest.raises(SourceProblem) as missing:
        create(replace(outlook_imap, client_id=None), context)
    assert "keepwarm auth microsoft mail" in missing.value.fix
    with pytest.raises(AuthError) as never:
        poll(outlook_imap, context)
    assert "not signed in" in str(never.value)
    assert never.value.fix == "keepwarm auth microsoft mail"
