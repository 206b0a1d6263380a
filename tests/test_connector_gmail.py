"""The Gmail connector with the real googleapiclient (built offline from its discovery document)
and google-auth, against the local Gmail emulator."""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from tests.connector_contract import (
    ConnectorContract,
    final_cursor,
    keys,
    mail,
    messages,
    run,
    skips,
)
from tests.emulators.google import GoogleEmulator
from tests.emulators.google_setup import OWNER, GmailSource, account, credentials_file
from tests.emulators.google_setup import emulator as emulator  # the fixture

from keepwarm.config.schema import Config, OwnerConfig
from keepwarm.connectors.base import ConnectorContext, SourceProblem, create
from keepwarm.connectors.google.auth import GMAIL_METADATA, GMAIL_SETTINGS
from keepwarm.daemon.ingest import sync_account
from keepwarm.detect.headers import WANTED
from keepwarm.errors import CursorExpired
from keepwarm.model import Batch, MessageMeta
from keepwarm.store import Store

LIST, GET, HISTORY = (
    "gmail.users.messages.list",
    "gmail.users.messages.get",
    "gmail.users.history.list",
)


@pytest.fixture
def context(tmp_path: Path) -> ConnectorContext:
    now = datetime.now(UTC) + timedelta(minutes=5)
    return ConnectorContext(state_dir=tmp_path / "state", now=lambda: now, wanted_headers=WANTED)


def poll(acct: object, context: ConnectorContext, cursor: str | None = None) -> list[Batch]:
    connector = create(acct, context)  # type: ignore[arg-type]
    try:
        return list(connector.poll(cursor))
    finally:
        connector.close()


class TestGmailContract(ConnectorContract):
    # Three list pages of 500 make three batches; the real client's batch encoding costs about
    # 3 ms a message here, so the suite's default 2,500 would only add time.
    many: ClassVar[int] = 1_200

    @pytest.fixture
    def source(self, emulator: GoogleEmulator, tmp_path: Path) -> GmailSource:
        return GmailSource(emulator, tmp_path)


def test_labels_decide_direction_and_exclusions(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext
) -> None:
    box = emulator.user(OWNER).mailbox
    for key, labels in [
        ("inbox@x", ["INBOX", "UNREAD", "CATEGORY_PERSONAL"]),
        ("sent@x", ["SENT"]),
        ("archived@x", []),
        ("spam@x", ["SPAM"]),
        ("trash@x", ["TRASH", "SENT"]),
        ("draft@x", ["DRAFT"]),
        ("chat@x", ["CHAT"]),
    ]:
        box.deliver(mail(key, sender="Me <me@example.net>" if "sent" in key else "A <a@b.org>"),
                    labels)  # fmt: skip
    acct = account(emulator, tmp_path)
    found = messages(poll(acct, context))
    assert sorted(found) == ["archived@x", "inbox@x", "sent@x"]
    assert found["sent@x"].sent is True
    assert found["inbox@x"].sent is None
    # Spam and the bin are not even listed (includeSpamTrash defaults to false).
    assert emulator.calls[GET] == 5


def test_only_the_wanted_headers_are_fetched_and_never_a_body(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext
) -> None:
    raw = (
        b"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.de>\r\n"
        b"To: Me <me@example.net>, Bob <bob@example.org>\r\n"
        b"Cc: carol@example.org\r\n"
        b"Subject: Plans\r\n"
        b"Date: Tue, 02 Apr 2024 09:15:00 +0200\r\n"
        b"Message-ID: <plans@example.de>\r\n"
        b"References: <a@example.de>\r\n <b@example.de>\r\n"
        b"List-Id: <team.example.de>\r\n"
        b"X-Secret-Header: not wanted\r\n"
        b"\r\nthe body\r\n"
    )
    emulator.user(OWNER).mailbox.deliver(raw)
    [meta] = messages(poll(account(emulator, tmp_path), context)).values()
    assert isinstance(meta, MessageMeta)
    assert meta.sender[0].name == "Jürgen"
    assert [p.address for p in meta.to] == ["me@example.net", "bob@example.org"]
    assert [p.address for p in meta.cc] == ["carol@example.org"]
    assert meta.date == datetime(2024, 4, 2, 7, 15, tzinfo=UTC)
    assert meta.references == ("a@example.de", "b@example.de")
    assert ("list-id", "<team.example.de>") in meta.signals
    [(_, params)] = [entry for entry in emulator.log if entry[0] == GET]
    assert params["format"] == ["metadata"]
    assert params["metadataHeaders"] == list(WANTED)
    assert "snippet" not in params["fields"][0]
    assert "payload/headers" in params["fields"][0]


def test_backfill_stops_at_backfill_days_by_internal_date(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext
) -> None:
    box = emulator.user(OWNER).mailbox
    now = context.now()
    # 600 messages within 30 days, 600 older; the list runs newest first, 500 a page.
    for i in range(1200):
        received = now - timedelta(hours=1 + i)
        box.deliver(mail(f"m{i:04d}@x"), internal_date=received)
    acct = account(emulator, tmp_path, backfill_days=25)  # 600 hours = 25 days
    batches = poll(acct, context)
    assert len(keys(batches)) == 599  # hours 1..599: within 25 days of now
    assert emulator.calls[LIST] == 2  # the second page reached past the cutoff: no third
    assert emulator.calls[GET] == 1000
    assert max(emulator.batch_sizes) <= 50
    assert final_cursor(batches) is not None


def test_quota_units_are_the_minimum_plus_the_profile(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add([f"m{i}@x" for i in range(1010)])
    connector = create(source.account, context)
    try:
        batches = list(connector.poll(None))
        pacer = connector.api(None).pacer  # type: ignore[attr-defined]
    finally:
        connector.close()
    assert len(keys(batches)) == 1010
    minimum = 3 * 5 + 1010 * 5  # three list pages and one metadata get per message
    assert emulator.total_units == minimum + 1  # getProfile (sendAs.list refused, uncharged)
    # Our own count is what we asked for: the refused sendAs.list included.
    assert sum(pacer.spent.values()) == emulator.total_units + 1
    assert max(emulator.batch_sizes) == 50


def test_each_new_message_comes_once_through_history(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add(["a@x"])
    cursor = final_cursor(poll(source.account, context))
    emulator.reset_counts()
    assert keys(poll(source.account, context, cursor)) == []
    assert emulator.calls == {HISTORY: 1}  # nothing new: one history.list, 2 units
    assert emulator.total_units == 2
    source.add([f"n{i}@x" for i in range(1100)])  # three pages of history
    emulator.user(OWNER).mailbox.relabel(next(iter(source.box.messages)), add=["STARRED"])
    batches = poll(source.account, context, cursor)
    assert len(keys(batches)) == 1100
    assert len(batches) == 3
    done: list[str] = []
    for batch in batches[:-1]:  # each page's cursor resumes right after it
        done += keys([batch])
        rest = poll(source.account, context, batch.cursor)
        assert sorted(keys(rest)) == sorted(set(keys(batches)) - set(done))


def test_spam_seen_in_history_is_not_even_fetched(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext
) -> None:
    source = GmailSource(emulator, tmp_path)
    cursor = final_cursor(poll(source.account, context))
    source.box.deliver(mail("spam@x"), ["SPAM"])
    source.box.deliver(mail("ok@x"))
    emulator.reset_counts()
    assert keys(poll(source.account, context, cursor)) == ["ok@x"]
    assert emulator.calls[GET] == 1


def test_expired_history_resyncs_everything_without_duplicates(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add(["a@x", "b@x"])
    cursor = final_cursor(poll(source.account, context))
    source.box.expire_history()
    with pytest.raises(CursorExpired, match="history"):
        poll(source.account, context, cursor)
    # The daemon's answer to CursorExpired: read it all again; the store keeps each once.
    config = Config(owner=OwnerConfig(addresses=(OWNER,)), accounts=(source.account,))
    store = Store.open(f"sqlite:///{tmp_path / 'state' / 'keepwarm.db'}")
    try:
        first = sync_account(store, config, source.account, context, now=context.now)
        assert (first.ok, first.new) == (True, 2)
        source.box.expire_history()
        source.add(["c@x"])
        again = sync_account(store, config, source.account, context, now=context.now)
        assert again.ok
        assert again.items == 3  # everything was read again ...
        assert again.new == 1  # ... once stored
        assert store.count_touchpoints() == 3
    finally:
        store.close()


def test_send_as_addresses_are_owner_identities_when_the_scope_allows(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext
) -> None:
    box = emulator.user(OWNER).mailbox
    box.send_as.append({"sendAsEmail": "me@alias.example", "isPrimary": False})
    box.deliver(mail("a@x"))
    wide = credentials_file(emulator, tmp_path, GMAIL_METADATA, GMAIL_SETTINGS)
    [batch] = poll(account(emulator, tmp_path, credentials_file=wide), context)
    assert batch.identities == {OWNER, "me@alias.example"}
    # gmail.metadata alone cannot read settings: Google says 403, we do without.
    [batch] = poll(account(emulator, tmp_path), context)
    assert batch.identities == {OWNER}
    assert keys([batch]) == ["a@x"]


def test_a_message_deleted_between_list_and_get_is_left_out(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add(["a@x", "b@x", "c@x"])
    emulator.fail(GET, 404, "notFound", message="Requested entity was not found.")
    batches = poll(source.account, context)
    assert len(keys(batches)) == 2
    assert skips(batches) == []


def test_backfill_resumes_from_an_old_page_token_or_starts_over(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add([f"m{i}@x" for i in range(520)])
    first = run(source, context, None)[0]
    assert first.cursor is not None
    assert '"p"' in first.cursor
    emulator.fail(LIST, 400, "invalidArgument", message="Invalid pageToken")
    with pytest.raises(CursorExpired, match="page token"):
        run(source, context, first.cursor)
    assert len(keys(run(source, context, first.cursor))) == 20


def test_dropped_delegated_user_state_is_forgotten(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add(["a@x"])
    cursor = final_cursor(poll(source.account, context))
    assert cursor is not None
    stale = cursor.replace('"users":{', '"users":{"old@example.net":{"h":"5"},')
    batches = poll(replace(source.account), context, stale)
    assert final_cursor(batches, stale) == cursor


def test_an_https_endpoint_is_verified_against_ca_file(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with GoogleEmulator(tls) as emu:
        emu.user(OWNER).mailbox.deliver(mail("a@x"))
        now = datetime.now(UTC)
        context = ConnectorContext(state_dir=tmp_path, now=lambda: now)
        untrusted = account(emu, tmp_path)
        with pytest.raises(SourceProblem, match="cannot be verified") as caught:
            poll(untrusted, context)
        assert "ca_file" in caught.value.fix
        assert keys(poll(replace(untrusted, ca_file=str(cert)), context)) == ["a@x"]
