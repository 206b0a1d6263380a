"""Gmail over IMAP: the private Dovecot behind a proxy that speaks Gmail's X-GM-EXT-1
(tests/servers/imap_proxy.py). All Mail is read once, labels say what was sent, drafts are left
out, X-GM-MSGID names each message, and INBOX is never read a second time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.connector_contract import final_cursor, keys, mail, messages
from tests.servers.imap_proxy import ImapProxy
from tests.test_connector_imap import ImapSource

from keepwarm.connectors.base import ConnectorContext
from keepwarm.connectors.imap import ImapConnector
from keepwarm.model import Batch

if TYPE_CHECKING:
    from tests.servers.dovecot import Dovecot

pytest_plugins = ("tests.servers.dovecot",)

ALL_MAIL = "[Gmail]/All Mail"
ME = "Me <me@gmail.example>"


@pytest.fixture
def gmail(dovecot: Dovecot, tmp_path: Path) -> Iterator[tuple[ImapSource, ImapProxy]]:
    source = ImapSource(dovecot, tmp_path)
    with ImapProxy(dovecot.port, gmail=True) as proxy:
        source.account = replace(source.account, port=proxy.port)
        yield source, proxy


@pytest.fixture
def context(tmp_path: Path) -> ConnectorContext:
    now = datetime.now(UTC) + timedelta(minutes=5)
    return ConnectorContext(state_dir=tmp_path / "state", now=lambda: now)


def poll(source: ImapSource, context: ConnectorContext, cursor: str | None) -> list[Batch]:
    connector = ImapConnector(source.account, context)
    try:
        return list(connector.poll(cursor))
    finally:
        connector.close()


def store(source: ImapSource, message: bytes, msgid: int, *labels: str) -> None:
    flags = (f"gmid{msgid:x}", *labels)
    source.dovecot.append(source.user, [message], ALL_MAIL, flags=flags)


def test_all_mail_is_read_once_with_labels_and_gmail_ids(
    gmail: tuple[ImapSource, ImapProxy], context: ConnectorContext
) -> None:
    source, proxy = gmail
    received = mail("in@x")
    store(source, received, 0x18C2F5A1B2C3D4E5)
    store(source, mail("out@x", sender=ME, to="Ann <ann@example.org>"), 0x18C2F5A1B2C3D4E6,
          "gmsent")  # fmt: skip
    store(source, mail("draft@x", sender=ME), 0x18C2F5A1B2C3D4E7, "gmdraft")
    store(source, mail("quoted@x", sender=ME), 0x18C2F5A1B2C3D4E8, "gmsent", "gmquoted")
    source.dovecot.append(source.user, [received])  # Gmail shows it in INBOX as well
    source.dovecot.append(source.user, [mail("out@x")], "[Gmail]/Sent Mail")
    found = messages(poll(source, context, None))
    assert {k: (m.source_id, m.sent, m.folder) for k, m in found.items()} == {
        "in@x": ("gmail/18c2f5a1b2c3d4e5", None, ALL_MAIL),
        "out@x": ("gmail/18c2f5a1b2c3d4e6", True, ALL_MAIL),
        "quoted@x": ("gmail/18c2f5a1b2c3d4e8", True, ALL_MAIL),
    }
    examined = [line for line in proxy.lines if b" EXAMINE " in line or b" STATUS " in line]
    assert examined
    assert all(ALL_MAIL.encode() in line for line in examined)
    [fetch] = [line for line in proxy.lines if b" FETCH " in line]
    assert b"X-GM-MSGID X-GM-LABELS BODY.PEEK[HEADER.FIELDS (" in fetch


def test_gmail_incremental_reads_only_new_mail(
    gmail: tuple[ImapSource, ImapProxy], context: ConnectorContext
) -> None:
    source, _ = gmail
    store(source, mail("a@x"), 1)
    cursor = final_cursor(poll(source, context, None))
    store(source, mail("b@x"), 2)
    batches = poll(source, context, cursor)
    assert keys(batches) == ["b@x"]
    assert keys(poll(source, context, final_cursor(batches))) == []
