"""The IMAP connector against the session's private Dovecot: the connector contract, folders,
backfill, UIDVALIDITY resyncs through the real ingest path, failures, TLS and XOAUTH2."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tests.cli_runner import run_cli
from tests.connector_contract import (
    ConnectorContract,
    bad_mail,
    final_cursor,
    keys,
    mail,
    messages,
    run,
    skips,
)
from tests.servers.imap_proxy import ImapProxy

from keepwarm.config.schema import AccountConfig, Config, OwnerConfig
from keepwarm.connectors.base import ConnectorContext, SourceProblem, create
from keepwarm.connectors.imap import ImapConnector
from keepwarm.connectors.imap.client import session
from keepwarm.connectors.imap.tokens import secret_reader
from keepwarm.daemon.ingest import sync_account
from keepwarm.errors import AuthError, TransientError
from keepwarm.store import Store

if TYPE_CHECKING:  # the module is a plugin, imported by pytest (assertion rewriting)
    from tests.servers.dovecot import Dovecot

pytest_plugins = ("tests.servers.dovecot",)


class ImapSource:
    """One fresh Dovecot user; messages arrive by APPEND from another connection."""

    def __init__(self, dovecot: Dovecot, tmp_path: Path, **account: Any) -> None:
        self.dovecot = dovecot
        self.user = dovecot.add_user()
        secret = tmp_path / "imap-password"
        secret.write_text(self.user.password + "\n")
        secret.chmod(0o600)
        self.account = AccountConfig(
            name="work", kind="imap", host=dovecot.host, port=dovecot.port, security="none",
            username=self.user.username, password_file=str(secret), **account,
        )  # fmt: skip

    def add(self, keys: list[str], folder: str = "INBOX", **kwargs: Any) -> None:
        self.dovecot.append(self.user, [mail(key) for key in keys], folder, **kwargs)

    def add_bad(self, key: str) -> None:
        self.dovecot.append(self.user, [bad_mail()])


@pytest.fixture
def source(dovecot: Dovecot, tmp_path: Path) -> ImapSource:
    return ImapSource(dovecot, tmp_path)


@pytest.fixture
def context(tmp_path: Path) -> ConnectorContext:
    now = datetime.now(UTC) + timedelta(minutes=5)
    return ConnectorContext(state_dir=tmp_path / "state", now=lambda: now)


class TestImapContract(ConnectorContract):
    @pytest.fixture
    def source(self, dovecot: Dovecot, tmp_path: Path) -> ImapSource:
        return ImapSource(dovecot, tmp_path)


# --- folders ---------------------------------------------------------------------------------


def test_sent_folder_by_special_use_marks_mail_as_sent(
    source: ImapSource, context: ConnectorContext
) -> None:
    source.add(["in@x"])
    source.add(["out@x"], "Sent")  # \Sent by SPECIAL-USE in the server's config
    source.add(["old@x"], "Archive")  # not read unless configured
    found = messages(run(source, context, None))
    assert {k: (m.folder, m.sent) for k, m in found.items()} == {
        "in@x": ("INBOX", None),
        "out@x": ("Sent", True),
    }


@pytest.mark.parametrize("name", ["Gesendete Objekte", "Envoyés", "INBOX/Sent Items"])
def test_sent_folder_by_localised_name(
    source: ImapSource, context: ConnectorContext, name: str
) -> None:
    source.add(["out@x"], name)
    source.add(["other@x"], "Projekte")
    found = messages(run(source, context, None))
    assert {k: (m.folder, m.sent) for k, m in found.items()} == {"out@x": (name, True)}


def test_configured_folders_and_sent_folder_win(
    source: ImapSource, context: ConnectorContext
) -> None:
    source.add(["sent@x"], "Sent")
    source.add(["mine@x"], "Outgoing")
    source.add(["proj@x"], "Projects/2024")
    source.account = replace(
        source.account, sent_folder="outgoing", folders=("Projects/2024", "Nowhere")
    )
    found = messages(run(source, context, None))
    assert {k: (m.folder, m.sent) for k, m in found.items()} == {
        "mine@x": ("Outgoing", True),
        "proj@x": ("Projects/2024", None),
    }


def test_a_sent_folder_created_later_is_found_after_the_folder_config_changes(
    source: ImapSource, context: ConnectorContext
) -> None:
    source.add(["in@x"])
    cursor = final_cursor(run(source, context, None))
    source.add(["out@x"], "Sent")
    assert keys(run(source, context, cursor)) == []  # the folder list is kept a day
    source.account = replace(source.account, folders=("Sent",))
    assert keys(run(source, context, cursor)) == ["out@x"]


# --- backfill and incremental reads ----------------------------------------------------------


def test_backfill_days_bounds_the_first_read_by_arrival_date(
    source: ImapSource, context: ConnectorContext
) -> None:
    now = context.now()
    source.add(["ancient@x"], when=now - timedelta(days=400))
    source.add(["recent@x"], when=now - timedelta(days=20))
    source.account = replace(source.account, backfill_days=365)
    batches = run(source, context, None)
    assert keys(batches) == ["recent@x"]
    # Later arrivals are read whatever their date: the bound is for the first read only.
    source.add(["imported@x"], when=now - timedelta(days=900))
    assert keys(run(source, context, final_cursor(batches))) == ["imported@x"]


def test_a_big_first_read_is_searched_in_windows_and_fetched_in_batches(
    source: ImapSource, context: ConnectorContext
) -> None:
    names = [f"m{i:04d}@x" for i in range(2_300)]
    source.add(names)
    connector = ImapConnector(source.account, context)
    try:
        batches = list(connector.poll(None))
    finally:
        connector.close()
    assert keys(batches) == names
    assert [len(b.items) for b in batches] == [1000, 1000, 300, 0]
    assert connector.last_poll.fetched == 2_300


# --- UIDVALIDITY -----------------------------------------------------------------------------


def test_a_recreated_folder_is_read_again_without_duplicate_touchpoints(
    source: ImapSource, context: ConnectorContext, tmp_path: Path
) -> None:
    me, bob = "Me <me@example.net>", "Bob <bob@example.org>"
    source.dovecot.append(source.user, [
        mail("a@x", sender=me, to=bob),
        mail("b@x", sender=me, to=bob, date="Tue, 16 Jan 2024 10:00:00 +0100"),
        # No Message-ID: its natural key comes from the source id, which must not change.
        b"From: me@example.net\nTo: carol@example.org\nDate: Wed, 17 Jan 2024 09:00:00 +0000"
        b"\nSubject: no message-id\n\nhi\n",
    ], "Sent")  # fmt: skip
    config = Config(owner=OwnerConfig(addresses=("me@example.net",)), accounts=(source.account,))
    with Store.open(f"sqlite:///{tmp_path / 'kw.db'}") as store:
        first = sync_account(store, config, source.account, context)
        assert (first.ok, first.items, first.new) == (True, 3, 3)
        before = source.dovecot.uidvalidity(source.user, "Sent")
        source.dovecot.recreate_folder(source.user, "Sent")
        assert source.dovecot.uidvalidity(source.user, "Sent") != before
        source.dovecot.append(source.user, [mail("c@x", sender=me, to="dan@example.org")], "Sent")
        again = sync_account(store, config, source.account, context)
        assert (again.ok, again.items) == (True, 4)  # all read again under the new UIDs
        assert (again.new, again.touched) == (1, {"dan@example.org"})
        assert store.count_touchpoints() == 4


def test_resync_guard_narrows_a_folder_whose_uidvalidity_keeps_changing(
    source: ImapSource, tmp_path: Path
) -> None:
    clock = [datetime.now(UTC)]
    context = ConnectorContext(state_dir=tmp_path, now=lambda: clock[0])
    source.add(["old@x"], "Sent", when=clock[0] - timedelta(days=30))
    cursor = final_cursor(run(source, context, None))
    reads = []
    for _ in range(5):
        clock[0] += timedelta(hours=6)
        source.dovecot.recreate_folder(source.user, "Sent")
        connector = ImapConnector(source.account, context)
        try:
            cursor = final_cursor(list(connector.poll(cursor)))
        finally:
            connector.close()
        reads.append(connector.last_poll.fetched)
    # Three resyncs in a week read everything; after that only what arrived lately.
    assert reads == [1, 1, 1, 0, 0]


# --- broken mail and failures ------------------------------------------------------------------


def test_broken_headers_are_skipped_with_their_reason(
    source: ImapSource, context: ConnectorContext
) -> None:
    source.dovecot.append(source.user, [
        mail("good@x"),
        b"Subject: no date\nFrom: a@example.org\n\nbody\n",
        b"From: a@example.org\nDate: Mon, 1 Jan 1970 00:00:00 +0000\n\nx\n",
        b"Date: Mon, 15 Jan 2024 10:00:00 +0100\nFrom: \n\nnobody\n",
        mail("crlf@x", newline="\r\n"),
        b"\n\nno header at all\n",
    ])  # fmt: skip
    batches = run(source, context, None)
    assert keys(batches) == ["crlf@x", "good@x"]
    reasons = sorted(s.reason for s in skips(batches))
    assert reasons == ["bad-header", "implausible-date", "no-date", "no-sender"]
    assert all(s.source_id.startswith("INBOX/") for s in skips(batches))


def test_a_connection_dropped_mid_fetch_is_transient_and_resumes_cleanly(
    dovecot: Dovecot, source: ImapSource, context: ConnectorContext
) -> None:
    names = [f"m{i:04d}@x" for i in range(2_500)]
    source.add(names)
    with ImapProxy(dovecot.port) as proxy:
        account = replace(source.account, port=proxy.port)
        connector = ImapConnector(account, context)
        polled = connector.poll(None)
        first = next(polled)
        assert len(first.items) == 1000
        proxy.cut_after("UID FETCH", 20_000)  # the next answer stops half-way
        with pytest.raises(TransientError, match="connection lost"):
            next(polled)
        connector.close()
    rest = run(source, context, first.cursor)
    assert keys(rest) == sorted(set(names) - set(keys([first])))


def test_a_server_that_stops_answering_mid_fetch_is_transient(
    dovecot: Dovecot, source: ImapSource, context: ConnectorContext
) -> None:
    source.add([f"m{i:04d}@x" for i in range(300)])
    with ImapProxy(dovecot.port) as proxy:
        account = replace(source.account, port=proxy.port)
        proxy.stall_after("UID FETCH", 5_000)
        started = time.monotonic()
        with (
            ImapConnector(account, context, read_timeout=1.0) as connector,
            pytest.raises(TransientError, match="did not answer in time"),
        ):
            list(connector.poll(None))
        assert time.monotonic() - started < 10


def test_a_session_always_logs_out(source: ImapSource) -> None:
    token = secret_reader(source.account)

    def fail_inside() -> None:
        with session(source.account, token) as client:
            client.select_folder("INBOX", readonly=True)
            assert source.dovecot.connections(source.user) == 1
            raise RuntimeError("the caller's own failure")

    with pytest.raises(RuntimeError, match="own failure"):
        fail_inside()
    assert source.dovecot.connections(source.user) == 0


def test_a_server_kicking_us_out_mid_poll_is_transient(
    source: ImapSource, context: ConnectorContext
) -> None:
    source.add([f"m{i:04d}@x" for i in range(1_500)])
    connector = ImapConnector(source.account, context)
    polled = connector.poll(None)
    first = next(polled)
    source.dovecot.kick(source.user)
    with pytest.raises(TransientError):
        next(polled)
    # The same connector connects again on its next poll.
    rest = list(connector.poll(first.cursor))
    connector.close()
    assert len(keys(rest)) == 500


def test_a_kept_connection_that_died_between_polls_is_replaced(
    source: ImapSource, context: ConnectorContext
) -> None:
    source.add(["a@x"])
    connector = ImapConnector(source.account, context)
    try:
        cursor = final_cursor(list(connector.poll(None)))
        source.dovecot.kick(source.user)
        source.add(["b@x"])
        assert keys(list(connector.poll(cursor))) == ["b@x"]
    finally:
        connector.close()


def test_a_wrong_password_is_an_auth_error_with_a_fix(
    source: ImapSource, context: ConnectorContext, tmp_path: Path
) -> None:
    (tmp_path / "imap-password").write_text("not it\n")
    with pytest.raises(AuthError) as caught:
        run(source, context, None)
    assert "refused the login" in str(caught.value)
    assert "password" in caught.value.fix
    assert "not it" not in str(caught.value)


def test_a_missing_password_file_is_an_auth_error_not_a_crash(
    source: ImapSource, context: ConnectorContext, tmp_path: Path
) -> None:
    (tmp_path / "imap-password").unlink()
    with pytest.raises(AuthError) as caught:
        run(source, context, None)
    assert "does not exist" in caught.value.fix


def test_nobody_listening_is_transient(source: ImapSource, context: ConnectorContext) -> None:
    source.account = replace(source.account, port=1)
    with pytest.raises(TransientError):
        run(source, context, None)


def test_plain_text_to_a_remote_host_is_refused(context: ConnectorContext) -> None:
    account = AccountConfig(name="w", kind="imap", host="imap.example.org", security="none",
                            username="me", password_env="X")  # fmt: skip
    with pytest.raises(SourceProblem, match="plain-text"):
        list(ImapConnector(account, context).poll(None))


# --- TLS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_with_the_servers_ca_file(
    dovecot: Dovecot, source: ImapSource, context: ConnectorContext, security: str
) -> None:
    port = dovecot.port if security == "starttls" else dovecot.tls_port
    source.account = replace(source.account, security=security, port=port, ca_file=dovecot.ca_file)
    source.add(["a@x"])
    assert keys(run(source, context, None)) == ["a@x"]


def test_an_untrusted_certificate_is_a_source_problem_naming_ca_file(
    dovecot: Dovecot, source: ImapSource, context: ConnectorContext
) -> None:
    source.account = replace(source.account, security="starttls")
    with pytest.raises(SourceProblem) as caught:
        run(source, context, None)
    assert "not trusted" in str(caught.value)
    assert "ca_file" in caught.value.fix


def test_tls_to_a_plain_port_is_a_source_problem_naming_security(
    dovecot: Dovecot, source: ImapSource, context: ConnectorContext
) -> None:
    source.account = replace(source.account, security="tls", ca_file=dovecot.ca_file)
    with pytest.raises(SourceProblem) as caught:
        run(source, context, None)
    assert "security" in caught.value.fix


# --- XOAUTH2 -----------------------------------------------------------------------------------


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "KEEPWARM_TEST_IMAP_TOKEN"
    yield name
    monkeypatch.delenv(name, raising=False)


def test_xoauth2_with_a_token_from_a_command(
    dovecot: Dovecot, source: ImapSource, context: ConnectorContext, tmp_path: Path
) -> None:
    token = dovecot.issue_token(source.user)
    helper = tmp_path / "print-token"
    helper.write_text(f"#!/bin/sh\necho {token}\n")
    helper.chmod(0o700)
    source.account = replace(
        source.account, auth="xoauth2", password_file=None, password_command=(str(helper),)
    )
    source.add(["a@x"])
    assert keys(run(source, context, None)) == ["a@x"]
    assert dovecot.introspections[-1] == token  # the server checked it with the issuer


def test_xoauth2_with_a_token_provider_callable(
    dovecot: Dovecot, source: ImapSource, context: ConnectorContext
) -> None:
    token = dovecot.issue_token(source.user)
    calls = []

    def provider() -> str:
        calls.append(1)
        return token

    account = replace(source.account, auth="xoauth2", password_file=None)
    source.add(["a@x"])
    connector = ImapConnector(account, context, token=provider)
    try:
        assert keys(list(connector.poll(None))) == ["a@x"]
    finally:
        connector.close()
    assert calls == [1]


def test_a_revoked_token_is_an_auth_error_without_the_token(
    dovecot: Dovecot, source: ImapSource, context: ConnectorContext
) -> None:
    token = dovecot.issue_token(source.user)
    dovecot.revoke(token)
    account = replace(source.account, auth="xoauth2", password_file=None)
    connector = ImapConnector(account, context, token=lambda: token)
    with pytest.raises(AuthError) as caught:
        list(connector.poll(None))
    assert token not in str(caught.value)
    assert "access token" in caught.value.fix


def test_google_sign_in_without_credentials_is_a_problem_of_the_account(
    source: ImapSource, context: ConnectorContext
) -> None:
    account = replace(source.account, auth="xoauth2", password_file=None, oauth_provider="google")
    with pytest.raises(SourceProblem) as caught:
        create(account, context)
    assert "password_command" in caught.value.fix


# --- what a poll costs ---------------------------------------------------------------------------


def test_a_poll_with_nothing_new_is_one_status_per_folder_and_no_fetch(
    dovecot: Dovecot, source: ImapSource, context: ConnectorContext
) -> None:
    source.add(["a@x"])
    source.add(["b@x"], "Sent")
    with ImapProxy(dovecot.port) as proxy:
        source.account = replace(source.account, port=proxy.port)
        cursor = final_cursor(run(source, context, None))
        assert "UID FETCH" in proxy.commands
        proxy.commands.clear()
        assert keys(run(source, context, cursor)) == []
        # imaplib asks CAPABILITY on connect; then LOGIN, a STATUS per folder, LOGOUT.
        assert proxy.commands == ["CAPABILITY", "LOGIN", "STATUS", "STATUS", "LOGOUT"]
        # A connector kept between polls (as a daemon would) sends only the STATUSes.
        connector = ImapConnector(source.account, context)
        try:
            list(connector.poll(cursor))
            proxy.commands.clear()
            list(connector.poll(cursor))
            assert proxy.commands == ["STATUS", "STATUS"]
        finally:
            connector.close()


def test_new_mail_opens_only_its_folder(
    dovecot: Dovecot, source: ImapSource, context: ConnectorContext
) -> None:
    source.add(["a@x"])
    source.add(["b@x"], "Sent")
    cursor = final_cursor(run(source, context, None))
    source.add(["c@x"])
    with ImapProxy(dovecot.port) as proxy:
        source.account = replace(source.account, port=proxy.port)
        assert keys(run(source, context, cursor)) == ["c@x"]
    assert proxy.commands == [
        "CAPABILITY", "LOGIN", "STATUS", "STATUS", "EXAMINE", "UID SEARCH", "UID FETCH",
        "UNSELECT", "LOGOUT",
    ]  # fmt: skip


def test_headers_only_never_a_body(
    dovecot: Dovecot, source: ImapSource, context: ConnectorContext
) -> None:
    source.dovecot.append(source.user, [mail("a@x", body="SECRET BODY TEXT\n" * 100)])
    with ImapProxy(dovecot.port) as proxy:
        source.account = replace(source.account, port=proxy.port)
        [meta] = messages(run(source, context, None)).values()
    assert meta.message_id == "a@x"
    [fetch] = [line for line in proxy.lines if b" FETCH " in line]
    assert b"BODY.PEEK[HEADER.FIELDS (FROM SENDER TO CC BCC REPLY-TO DATE MESSAGE-ID" in fetch
    assert b"SECRET BODY" not in proxy.received
    assert b"MIME-Version" not in proxy.received  # only the fields detection reads


# --- what a user sees --------------------------------------------------------------------------


def test_keepwarm_sync_of_an_imap_account_lists_the_people(
    source: ImapSource, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    me, ann = "Me <me@example.net>", "Ann Lee <ann@example.org>"
    source.dovecot.append(source.user, [
        mail("1@x", sender=ann, to=me),
        mail("2@x", sender=ann, to=me, date="Tue, 2 Jul 2024 09:00:00 +0000"),
        bad_mail(),
    ])  # fmt: skip
    source.dovecot.append(source.user, [mail("3@x", sender=me, to="Bo <bo@example.com>")], "Sent")
    account = source.account
    config = tmp_path / "keepwarm.toml"
    config.write_text(
        f'[owner]\naddresses = ["me@example.net"]\n[store]\nurl = "sqlite:///{tmp_path}/kw.db"\n'
        f'[[accounts]]\nname = "work"\nkind = "imap"\nhost = "{account.host}"\n'
        f'port = {account.port}\nsecurity = "none"\nusername = "{account.username}"\n'
        f'password_file = "{account.password_file}"\n'
    )
    synced = run_cli(capsys, "--config", str(config), "sync")
    assert synced.code == 0, synced.err
    people = run_cli(capsys, "--config", str(config), "contacts", "--format", "json").json()
    assert {p["address"]: p["touchpoints"] for p in people} == {
        "ann@example.org": 2,
        "bo@example.com": 1,
    }
    [status] = run_cli(capsys, "--config", str(config), "status", "--format", "json").json()[
        "accounts"
    ]
    assert (status["name"], status["kind"], status["error"]) == ("work", "imap", None)
    assert status["skipped_reasons"] == {"no-date": 1}
    source.add(["4@x"])  # from alice@example.org
    assert run_cli(capsys, "--config", str(config), "sync").code == 0
    people = run_cli(capsys, "--config", str(config), "contacts", "--format", "json").json()
    assert "alice@example.org" in {p["address"] for p in people}
