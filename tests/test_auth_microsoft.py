"""Signing in to Microsoft with the real msal against the local identity platform emulator:
`keepwarm auth microsoft`, the token cache file, refresh, refused refreshes, app-only access,
and the config rules for Microsoft accounts."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from tests.cli_runner import Run, run_cli
from tests.emulators.microsoft import (
    CLIENT_ID,
    USER,
    Emulators,
    OpensslMissing,
    emulators,
    outlook_account,
    sign_in,
)

from keepwarm.config.load import load
from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, create
from keepwarm.connectors.microsoft.auth import authority_url, cache_path, scopes
from keepwarm.errors import AuthError, ConfigError

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(autouse=True)
def _plain_logging() -> None:
    # CLI tests configure structlog to print to a captured stderr that is closed afterwards;
    # a warning logged by a later test would then fail on the closed file.
    structlog.reset_defaults()


@pytest.fixture
def em(monkeypatch: pytest.MonkeyPatch) -> Emulators:
    try:
        found = emulators()
    except OpensslMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    found.reset()
    # As on this machine: the environment names a CA bundle that does not trust the emulators,
    # so every request below proves that ca_file is applied explicitly.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    return found


def write_config(tmp_path: Path, em: Emulators, *accounts: str) -> Path:
    """A config with a SQLite store under tmp_path (so tokens live in tmp_path/state)."""
    common = (
        f'client_id = "{CLIENT_ID}"\nauthority = "{em.authority()}"\n'
        f'graph_endpoint = "{em.graph_root}"\nca_file = "{em.ca_file}"\n'
    )
    blocks = [
        f"[[accounts]]\n{block}\n{common if 'outlook' in block else ''}" for block in accounts
    ]
    path = tmp_path / "keepwarm.toml"
    path.write_text(
        f'[owner]\naddresses = ["{USER}"]\n[store]\n'
        f'url = "sqlite:///{tmp_path / "state" / "keepwarm.db"}"\n\n' + "\n".join(blocks)
    )
    return path


def cli(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> Run:
    return run_cli(capsys, "--config", str(config), *args)


MAIL = 'name = "mail"\nkind = "outlook"'
CALENDAR = 'name = "cal"\nkind = "outlook_calendar"'


# --- keepwarm auth microsoft --------------------------------------------------------------


def test_device_code_sign_in_for_mail_and_calendar_then_sync(
    em: Emulators, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, em, MAIL, CALENDAR)
    em.graph.add_message(USER, message_id="hi@x", sender="alice@example.org", to=(USER,))
    run = cli(capsys, config, "auth", "microsoft", "mail", "cal")
    assert run.code == 0, run.err
    assert f"open the page {em.identity.url}/devicelogin and enter the code" in run.out
    assert f"mail: signed in as {USER}" in run.out
    assert f"cal: signed in as {USER}" in run.out
    # One sign-in for both: the flow polled once too early ("authorization_pending"), then
    # got tokens, exactly as msal does against the real platform.
    polls = em.identity.token_requests("urn:ietf:params:oauth:grant-type:device_code")
    assert len(polls) == 2
    [code] = [r for r in em.identity.requests if r.path.endswith("/devicecode")]
    assert set(code.form["scope"].split()) >= {
        f"{em.graph.url}/Mail.ReadBasic",
        f"{em.graph.url}/Calendars.Read",
        "offline_access",
    }
    for name in ("mail", "cal"):
        path = cache_path(tmp_path / "state", name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text())["RefreshToken"]
    synced = cli(capsys, config, "sync")
    assert synced.code == 0, synced.err
    assert "mail: 1 read, 1 new touchpoints" in synced.out


def test_sign_in_refused_or_misnamed(
    em: Emulators, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, em, MAIL, 'name = "feed"\nkind = "ics"\npath = "/dev/null"')
    assert cli(capsys, config, "auth", "microsoft", "nope").code == 2
    wrong_kind = cli(capsys, config, "auth", "microsoft", "feed")
    assert wrong_kind.code == 2
    assert 'kind "ics"' in wrong_kind.err
    em.identity.device_error = "authorization_declined"
    declined = cli(capsys, config, "auth", "microsoft", "mail")
    assert declined.code == 1
    assert "authorization_declined" in declined.err
    assert not cache_path(tmp_path / "state", "mail").exists()


def test_app_only_credentials_are_tested_and_a_bad_secret_is_named_not_shown(
    em: Emulators,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    em.graph.mailbox("sales@example.net")
    em.identity.client_secrets[CLIENT_ID] = "right-secret"
    monkeypatch.setenv("MS_SECRET", "wrong-secret")
    shared = (
        'name = "sales"\nkind = "outlook"\nmailbox = "sales@example.net"\n'
        'tenant = "contoso.example"\nclient_secret_env = "MS_SECRET"'
    )
    config = write_config(tmp_path, em, shared)
    refused = cli(capsys, config, "auth", "microsoft", "sales")
    assert refused.code == 1
    assert "AADSTS7000215" in refused.err
    assert "wrong-secret" not in refused.out + refused.err
    monkeypatch.setenv("MS_SECRET", "right-secret")
    run = cli(capsys, config, "auth", "microsoft", "sales")
    assert run.code == 0, run.err
    assert "sales: app-only access to sales@example.net works" in run.out
    assert not cache_path(tmp_path / "state", "sales").exists()  # nothing to keep


# --- refresh and refused refreshes --------------------------------------------------------


@pytest.fixture
def signed_in(em: Emulators, tmp_path: Path) -> tuple[AccountConfig, ConnectorContext]:
    account = outlook_account(em)
    context = ConnectorContext(state_dir=tmp_path / "state", now=lambda: datetime.now(UTC))
    sign_in(account, context.state_dir)
    return account, context


def poll_all(account: AccountConfig, context: ConnectorContext) -> None:
    connector = create(account, context)
    try:
        list(connector.poll(None))
    finally:
        connector.close()


def test_an_expiring_token_is_refreshed_and_the_cache_file_replaced_whole(
    em: Emulators, signed_in: tuple[AccountConfig, ConnectorContext]
) -> None:
    account, context = signed_in
    path = cache_path(context.state_dir, account.name)
    before = json.loads(path.read_text())
    em.identity.access.clear()  # Graph no longer knows the access token: 401, then a refresh
    poll_all(account, context)
    assert len(em.identity.token_requests("refresh_token")) == 1
    after = json.loads(path.read_text())
    assert after["RefreshToken"] != before["RefreshToken"]  # the rotated refresh token is kept
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left over


def test_a_short_lived_token_is_refreshed_before_use(
    em: Emulators, signed_in: tuple[AccountConfig, ConnectorContext]
) -> None:
    account, context = signed_in
    em.identity.token_lifetime = 120  # msal refreshes tokens with under five minutes left
    sign_in(account, context.state_dir)
    em.identity.requests.clear()
    poll_all(account, context)
    assert len(em.identity.token_requests("refresh_token")) == 1
    graph_unauthorised = [r for r in em.graph.requests if r.path.endswith("delta")]
    assert len(graph_unauthorised) == 2  # no request was wasted on a stale token


@pytest.mark.parametrize(
    ("mode", "code"),
    [("revoked", "AADSTS50173"), ("expired", "AADSTS700082"), ("consent", "AADSTS65001")],
)
def test_a_refused_refresh_stops_that_account_with_the_fix(
    em: Emulators,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    code: str,
) -> None:
    (tmp_path / "Maildir" / "cur").mkdir(parents=True)
    home = f'name = "home"\nkind = "maildir"\npath = "{tmp_path / "Maildir"}"'
    config = write_config(tmp_path, em, MAIL, home)
    sign_in(replace(outlook_account(em), name="mail"), tmp_path / "state")
    em.identity.token_lifetime = 0
    em.identity.access.clear()
    em.identity.refresh_error = mode
    synced = cli(capsys, config, "sync")
    assert synced.code == 1
    assert code in synced.err
    status = {
        a["name"]: a for a in cli(capsys, config, "status", "--format", "json").json()["accounts"]
    }
    assert status["mail"]["fix"] == "keepwarm auth microsoft mail"
    assert code in status["mail"]["error"]
    assert "Trace ID" not in status["mail"]["error"]
    assert status["home"]["error"] is None  # the other account went on


def test_an_account_never_signed_in_says_how(em: Emulators, tmp_path: Path) -> None:
    account = outlook_account(em)
    with pytest.raises(AuthError, match="not signed in") as raised:
        poll_all(account, ConnectorContext(state_dir=tmp_path / "state"))
    assert raised.value.fix == "keepwarm auth microsoft work"


# --- authority, scopes, config ------------------------------------------------------------


def test_authority_and_scopes_per_cloud() -> None:
    work = AccountConfig(name="w", kind="outlook", client_id="c", tenant="contoso.com")
    assert authority_url(work) == "https://login.microsoftonline.com/contoso.com"
    assert scopes(work) == ["Mail.ReadBasic", "Calendars.Read"]
    us = replace(
        work,
        authority="https://login.microsoftonline.us/contoso.com",
        graph_endpoint="https://graph.microsoft.us/v1.0",
    )
    assert authority_url(us) == "https://login.microsoftonline.us/contoso.com"
    assert scopes(us) == [
        "https://graph.microsoft.us/Mail.ReadBasic",
        "https://graph.microsoft.us/Calendars.Read",
    ]
    app = replace(work, client_secret_env="X", mailbox="sales@contoso.com")
    assert scopes(app) == ["https://graph.microsoft.com/.default"]
    assert cache_path(Path("/s"), "../work mail") == Path("/s/tokens/microsoft-_work_mail.json")


def test_config_rules_for_microsoft_accounts(tmp_path: Path) -> None:
    path = tmp_path / "keepwarm.toml"
    path.write_text(
        '[[accounts]]\nname = "a"\nkind = "outlook"\nclient_id = "c"\n'
        'client_secret_env = "S"\n'
        '[[accounts]]\nname = "b"\nkind = "outlook_calendar"\nclient_id = "c"\n'
        'mailbox = "x@example.org"\ntenant = "not a tenant"\n'
        'graph_endpoint = "http://graph.example.org/v1.0"\nauthority = "http://login.example"\n'
        '[[accounts]]\nname = "c"\nkind = "outlook"\n'
    )
    with pytest.raises(ConfigError) as raised:
        load(path)
    problems = "\n".join(raised.value.problems)
    assert "accounts[0].mailbox: app-only access" in problems
    assert "accounts[0].tenant: app-only access needs your tenant id or domain" in problems
    assert "accounts[1].client_secret_file: mailbox is read with app-only access" in problems
    assert "accounts[1].tenant: must be common, consumers, organizations" in problems
    assert "accounts[1].graph_endpoint: must be https" in problems
    assert "accounts[1].authority: must be a URL with scheme https" in problems
    assert "accounts[2].client_id: required" in problems
