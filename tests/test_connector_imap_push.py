"""IMAP push against the private Dovecot: IDLE wakes on new mail, renews itself, notices mail
that came since the last poll, survives a lost connection, and falls back to STATUS."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.connector_contract import final_cursor, keys, mail
from tests.servers.imap_proxy import ImapProxy
from tests.test_connector_imap import ImapSource

from keepwarm.connectors.base import ConnectorContext
from keepwarm.connectors.imap import ImapConnector
from keepwarm.connectors.imap.client import connect
from keepwarm.connectors.imap.idle import IdleWatch
from keepwarm.connectors.imap.tokens import secret_reader
from keepwarm.errors import TransientError

if TYPE_CHECKING:
    from tests.servers.dovecot import Dovecot

pytest_plugins = ("tests.servers.dovecot",)


@pytest.fixture
def source(dovecot: Dovecot, tmp_path: Path) -> ImapSource:
    return ImapSource(dovecot, tmp_path)


@pytest.fixture
def context(tmp_path: Path) -> ConnectorContext:
    now = datetime.now(UTC) + timedelta(minutes=5)
    return ConnectorContext(state_dir=tmp_path / "state", now=lambda: now)


@pytest.fixture
def proxy(dovecot: Dovecot, source: ImapSource) -> Iterator[ImapProxy]:
    with ImapProxy(dovecot.port) as running:
        source.account = replace(source.account, port=running.port)
        yield running


def deliver_later(source: ImapSource, key: str, delay: float) -> list[float]:
    """Append a message from another connection after `delay` s; the list gets its time."""
    done: list[float] = []

    def later() -> None:
        time.sleep(delay)
        source.add([key])
        done.append(time.monotonic())

    threading.Thread(target=later, daemon=True).start()
    return done


def test_idle_wakes_within_seconds_of_an_append(
    source: ImapSource, context: ConnectorContext, proxy: ImapProxy
) -> None:
    connector = ImapConnector(source.account, context)
    try:
        assert connector.wait_for_change(0.3) is False  # nothing yet: IDLE is set up
        appended = deliver_later(source, "a@x", 1.0)
        assert connector.wait_for_change(20) is True
        woke = time.monotonic()
        assert woke - appended[0] < 4.0  # Dovecot pushes EXISTS about a second after APPEND
        assert keys(list(connector.poll(None))) == ["a@x"]
    finally:
        connector.close()
    assert proxy.commands.count("IDLE") == 1


def test_waiting_in_short_steps_costs_no_round_trips(
    source: ImapSource, context: ConnectorContext, proxy: ImapProxy
) -> None:
    connector = ImapConnector(source.account, context)
    try:
        started = time.monotonic()
        assert [connector.wait_for_change(0.4) for _ in range(4)] == [False] * 4
        assert 1.5 < time.monotonic() - started < 5
        assert proxy.commands == ["CAPABILITY", "LOGIN", "EXAMINE", "IDLE"]
    finally:
        connector.close()
    assert proxy.commands[-2:] == ["DONE", "LOGOUT"]


def test_idle_is_renewed_and_still_wakes(
    source: ImapSource, context: ConnectorContext, proxy: ImapProxy
) -> None:
    token = secret_reader(source.account)
    watch = IdleWatch(lambda: connect(source.account, token), source.account, "INBOX", renew=0.5)
    try:
        assert watch.wait(1.8) is False
        assert watch.idles >= 3
        assert proxy.commands.count("DONE") == watch.idles - 1  # each renewal ends the last
        appended = deliver_later(source, "a@x", 0.2)
        assert watch.wait(20) is True
        assert time.monotonic() - appended[0] < 4.0
    finally:
        watch.close()


def test_mail_since_the_stored_cursor_wakes_at_once(
    source: ImapSource, context: ConnectorContext, proxy: ImapProxy
) -> None:
    source.add(["a@x"])
    cursor = final_cursor(list(ImapConnector(source.account, context).poll(None)))
    source.add(["b@x"])  # between the poll and the IDLE: would wait for the next poll
    connector = ImapConnector(source.account, context)
    try:
        started = time.monotonic()
        assert connector.wait_for_change(30, cursor) is True
        assert time.monotonic() - started < 2
        assert keys(list(connector.poll(cursor))) == ["b@x"]
    finally:
        connector.close()


def test_a_lost_idle_connection_is_transient_and_the_next_wait_reconnects(
    source: ImapSource, context: ConnectorContext, proxy: ImapProxy
) -> None:
    connector = ImapConnector(source.account, context)
    try:
        assert connector.wait_for_change(0.3) is False
        source.dovecot.kick(source.user)
        with pytest.raises(TransientError):
            connector.wait_for_change(5)
        assert connector.wait_for_change(0.3) is False
        source.add(["a@x"])
        assert connector.wait_for_change(20) is True
    finally:
        connector.close()
    assert proxy.commands.count("LOGIN") == 2


def test_without_idle_on_the_server_status_is_checked_instead(
    dovecot: Dovecot, source: ImapSource
) -> None:
    with ImapProxy(dovecot.port, hide=("IDLE",)) as proxy:
        account = replace(source.account, port=proxy.port)
        token = secret_reader(account)
        watch = IdleWatch(lambda: connect(account, token), account, "INBOX", fallback_interval=0.3)
        try:
            assert watch.wait(0.8) is False
            appended = deliver_later(source, "a@x", 0.2)
            assert watch.wait(20) is True
            assert time.monotonic() - appended[0] < 2.0
        finally:
            watch.close()
    assert "IDLE" not in proxy.commands
    assert proxy.commands.count("STATUS") >= 3


def test_idle_false_only_sleeps(
    source: ImapSource, context: ConnectorContext, proxy: ImapProxy
) -> None:
    connector = ImapConnector(replace(source.account, idle=False), context)
    source.add(["a@x"])
    started = time.monotonic()
    assert connector.wait_for_change(0.3) is False
    assert time.monotonic() - started >= 0.3
    connector.close()
    assert proxy.commands == []


def test_gmail_is_watched_on_all_mail(dovecot: Dovecot, source: ImapSource) -> None:
    source.dovecot.append(source.user, [mail("a@x")], "[Gmail]/All Mail", flags=("gmid1",))
    with ImapProxy(dovecot.port, gmail=True) as proxy:
        account = replace(source.account, port=proxy.port)
        context = ConnectorContext(state_dir=Path("/nonexistent"))
        connector = ImapConnector(account, context)
        try:
            cursor = final_cursor(list(connector.poll(None)))
            source.dovecot.append(source.user, [mail("b@x")], "[Gmail]/All Mail")
            assert connector.wait_for_change(20, cursor) is True
        finally:
            connector.close()
    examined = [line for line in proxy.lines if b" EXAMINE " in line]
    assert all(b"[Gmail]/All Mail" in line for line in examined)


def test_idle_over_tls(dovecot: Dovecot, source: ImapSource, context: ConnectorContext) -> None:
    account = replace(source.account, security="tls", port=dovecot.tls_port,
                      ca_file=dovecot.ca_file)  # fmt: skip
    connector = ImapConnector(account, context)
    try:
        assert connector.wait_for_change(0.3) is False
        appended = deliver_later(source, "a@x", 0.5)
        assert connector.wait_for_change(20) is True
        assert time.monotonic() - appended[0] < 4.0
    finally:
        connector.close()
