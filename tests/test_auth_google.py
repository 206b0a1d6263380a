"""Google credentials: authorized-user files, tokens refused or missing, service accounts with
domain-wide delegation, and the config rules for them; all against the emulator's OAuth
endpoints through the real google-auth."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.connector_contract import keys, mail
from tests.emulators.google import GoogleEmulator
from tests.emulators.google_setup import OWNER, account
from tests.emulators.google_setup import emulator as emulator  # the fixture

from keepwarm.config.checks import check
from keepwarm.config.schema import AccountConfig, Config, OwnerConfig
from keepwarm.connectors.base import ConnectorContext, create
from keepwarm.connectors.google.auth import CALENDAR_READONLY, GMAIL_METADATA
from keepwarm.daemon.sync import sync_all
from keepwarm.errors import AuthError, TransientError
from keepwarm.model import Batch
from keepwarm.store import Store


def poll(acct: AccountConfig, state: Path, cursor: str | None = None) -> list[Batch]:
    now = datetime.now(UTC)
    connector = create(acct, ConnectorContext(state_dir=state, now=lambda: now))
    try:
        return list(connector.poll(cursor))
    finally:
        connector.close()


def test_the_token_uri_of_the_credentials_file_is_honoured(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    emulator.user(OWNER).mailbox.deliver(mail("a@x"))
    assert keys(poll(account(emulator, tmp_path), tmp_path)) == ["a@x"]
    assert emulator.oauth.grants == ["refresh_token"]  # at the emulator, not Google


def test_a_revoked_refresh_token_stops_that_account_only_with_the_fix(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    emulator.user(OWNER).mailbox.deliver(mail("a@x"))
    revoked = account(emulator, tmp_path)
    assert revoked.credentials_file is not None
    secret = json.loads(Path(revoked.credentials_file).read_text())["refresh_token"]
    emulator.oauth.revoke(secret)
    with pytest.raises(AuthError, match="invalid_grant") as caught:
        poll(revoked, tmp_path)
    assert caught.value.fix == "keepwarm auth google work"
    assert secret not in str(caught.value)
    calendar = account(emulator, tmp_path, "google_calendar")
    config = Config(owner=OwnerConfig(addresses=(OWNER,)), accounts=(revoked, calendar))
    store = Store.open(f"sqlite:///{tmp_path / 'keepwarm.db'}")
    try:
        failed, fine = sync_all(store, config)
        assert (failed.error_kind, fine.ok) == ("auth", True)
        state = {s.name: s for s in store.account_states()}["work"]
        assert state.error_fix == "keepwarm auth google work"
        assert "invalid_grant" in (state.error or "")
    finally:
        store.close()


def test_an_account_not_yet_authorised_says_which_command_to_run(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    secrets = tmp_path / "client.json"
    secrets.write_text(json.dumps(emulator.oauth.client_secrets()))
    acct = account(emulator, tmp_path, client_secrets_file=str(secrets))
    with pytest.raises(AuthError, match="not authorised") as caught:
        poll(acct, tmp_path / "state")
    assert caught.value.fix == "keepwarm auth google work"


def test_a_failing_token_endpoint_is_transient(emulator: GoogleEmulator, tmp_path: Path) -> None:
    acct = account(emulator, tmp_path)
    emulator.fail("token", 503, count=10)
    with pytest.raises(TransientError, match="token endpoint"):
        poll(acct, tmp_path)


def test_a_service_account_reads_each_delegated_user(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    users = ("ann@corp.example", "ben@corp.example")
    for user in users:
        emulator.user(user).mailbox.deliver(mail(f"to-{user}", to=f"<{user}>"))
        emulator.user(user).calendar.put(
            {"iCalUID": f"cal-{user}", "start": {"date": "2026-01-05"},
             "end": {"date": "2026-01-06"}}
        )  # fmt: skip
    key = tmp_path / "sa.json"
    key.write_text(json.dumps(emulator.oauth.service_account_info()))
    acct = account(emulator, tmp_path, service_account_file=str(key), users=users)
    batches = poll(acct, tmp_path)
    assert keys(batches) == ["to-ann@corp.example", "to-ben@corp.example"]
    assert {b.identities for b in batches if b.identities} == {
        frozenset({"ann@corp.example"}),
        frozenset({"ben@corp.example"}),
    }
    assert sorted(json.loads(batches[-1].cursor or "")["users"]) == list(users)
    assert emulator.oauth.grants == ["urn:ietf:params:oauth:grant-type:jwt-bearer"] * 2
    calendar = replace(acct, kind="google_calendar", name="cal", backfill_days=3650)
    [batch] = poll(calendar, tmp_path)
    assert sorted(m.source_id.split(":")[0] for m in batch.items) == list(users)
    assert batch.identities == set(users)


def test_delegation_that_the_admin_did_not_allow_is_an_auth_error(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    emulator.user("ann@corp.example")
    key = tmp_path / "sa.json"
    key.write_text(json.dumps(emulator.oauth.service_account_info(delegated=(CALENDAR_READONLY,))))
    acct = account(emulator, tmp_path, service_account_file=str(key), users=("ann@corp.example",))
    with pytest.raises(AuthError, match=r"for ann@corp\.example") as caught:
        poll(acct, tmp_path)
    assert "Domain-wide delegation" in caught.value.fix
    assert GMAIL_METADATA in caught.value.fix


def test_a_missing_or_broken_key_file_names_the_key(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    for path in (tmp_path / "missing.json", broken):
        acct = AccountConfig(name="m", kind="gmail", credentials_file=str(path))
        with pytest.raises(Exception, match=re.escape(str(path))) as caught:
            poll(acct, tmp_path)
        assert "accounts.credentials_file" in caught.value.fix  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("keys_", "problem"),
    [
        ({}, ("credentials_file", 'required for kind "gmail"')),
        ({"credentials_file": "/c", "client_secrets_file": "/s"},
         ("client_secrets_file", "set only one of credentials_file, client_secrets_file")),
        ({"service_account_file": "/k"},
         ("users", "service_account_file needs the users to read (delegation)")),
        ({"credentials_file": "/c", "users": ("a@b.c",)},
         ("users", "only for service_account_file (domain-wide delegation)")),
        ({"service_account_file": "/k", "users": ("ann",)},
         ("users[0]", 'must be an email address, got "ann"')),
    ],
)  # fmt: skip
def test_config_rules_for_google_credentials(
    keys_: dict[str, object], problem: tuple[str, str]
) -> None:
    acct = AccountConfig(name="m", kind="gmail", **keys_)  # type: ignore[arg-type]
    found = check(Config(accounts=(acct,)))
    assert [(key.removeprefix("accounts[0]."), text) for key, text in found] == [problem]
    assert check(Config(accounts=(replace(acct, kind="maildir", path="/m"),))) == []
