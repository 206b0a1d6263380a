"""Exactly once per (recipient, period): the outbox on SQLite and PostgreSQL, a real SMTP server.

What a user would check: how many digests arrived, with which Message-ID, and what the outbox
says about each period.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
import structlog
from alembic import command
from alembic.config import Config as AlembicConfig

from keepwarm.config.schema import Config, DigestConfig, StoreConfig
from keepwarm.daemon.digest_due import Outcome, send_if_due
from keepwarm.digest import outbox as rules
from keepwarm.digest.send import Retry
from keepwarm.store import Store
from keepwarm.store import engine as store_engine

if TYPE_CHECKING:
    from tests.servers.smtp import SmtpServer

pytest_plugins = ("tests.servers.smtp",)


@pytest.fixture(autouse=True)
def _logs_to_a_live_stderr() -> None:
    # CLI tests configure structlog to print to a captured stderr that is closed afterwards.
    structlog.reset_defaults()


ME = "me@example.org"
NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)  # Wednesday; the latest slot is Mon 23 Nov 08:00
FAST = Retry(attempts=2, initial=0.01, maximum=0.02, jitter=0.0)


def make_config(server: SmtpServer, url: str, **digest: object) -> Config:
    return Config(
        store=StoreConfig(url=url),
        digest=DigestConfig(to=f"Sam <{ME}>", timezone="Europe/London", **digest),  # type: ignore[arg-type]
        smtp=server.config(),
    )


def due(store: Store, config: Config, now: datetime = NOW, **kw: object) -> Outcome:
    return send_if_due(store, config, now, retry=FAST, sleep=lambda _: None, **kw)  # type: ignore[arg-type]


def ids(server: SmtpServer) -> list[str]:
    return [r.message["Message-ID"] for r in server.received]


def test_a_period_is_sent_once_and_the_servers_reply_is_kept(
    store: Store, store_url: str, smtp_plain: SmtpServer
) -> None:
    config = make_config(smtp_plain, store_url)
    first = due(store, config)
    assert first.status == "sent"
    assert first.period == "2026-W48"
    assert first.reply == "250 2.0.0 Ok: queued as KW0001"
    assert [due(store, config, NOW + timedelta(hours=h)).status for h in (0, 1, 30)] == [
        "done",
        "done",
        "done",
    ]
    assert ids(smtp_plain) == [first.message_id]
    row = store.outbox.entry(ME, "2026-W48")
    assert row is not None
    assert (row.status, row.reply, row.message_id) == ("sent", first.reply, first.message_id)
    assert row.message is None  # the copy is dropped once the server has it
    assert smtp_plain.received[0].message["X-Keepwarm-Period"] == "2026-W48"


def test_the_next_period_is_due_at_the_next_slot_in_the_digests_zone(
    store: Store, store_url: str, smtp_plain: SmtpServer
) -> None:
    config = make_config(smtp_plain, store_url)
    assert due(store, config).status == "sent"
    monday = datetime(2026, 11, 30, 8, tzinfo=UTC)  # 08:00 GMT
    assert due(store, config, monday - timedelta(seconds=1)).status == "done"
    late = due(store, config, monday)
    assert (late.status, late.period) == ("sent", "2026-W49")
    assert len(smtp_plain.received) == 2


def test_a_machine_that_was_off_sends_once_on_wake(
    store: Store, store_url: str, smtp_plain: SmtpServer
) -> None:
    config = make_config(smtp_plain, store_url)
    woke = datetime(2026, 12, 17, 9, tzinfo=UTC)  # three Mondays missed
    assert due(store, config, woke).period == "2026-W51"
    assert due(store, config, woke + timedelta(minutes=1)).status == "done"
    assert len(smtp_plain.received) == 1


def test_nothing_is_sent_unless_both_recipient_and_server_are_set(
    store: Store, store_url: str, smtp_plain: SmtpServer
) -> None:
    config = make_config(smtp_plain, store_url)
    for broken in (
        Config(store=config.store, smtp=config.smtp),  # no digest.to
        Config(store=config.store, digest=config.digest),  # no smtp.host
    ):
        assert due(store, broken).status == "off"
    assert smtp_plain.received == []
    assert store.outbox.recent() == []


def test_an_empty_week_is_skipped_once_when_configured_so(
    store: Store, store_url: str, smtp_plain: SmtpServer
) -> None:
    config = make_config(smtp_plain, store_url, send_empty=False)
    assert due(store, config).status == "skipped"
    assert due(store, config).status == "done"
    assert smtp_plain.received == []
    row = store.outbox.entry(ME, "2026-W48")
    assert row is not None
    assert row.status == "skipped"


def test_a_transient_failure_waits_its_backoff_then_resends_the_same_bytes(
    store: Store, store_url: str, smtp_plain: SmtpServer
) -> None:
    config = make_config(smtp_plain, store_url)
    smtp_plain.script.extend(["451", "451"])
    failed = due(store, config)
    assert failed.status == "failed"
    assert "451 4.3.0" in (failed.error or "")
    row = store.outbox.entry(ME, "2026-W48")
    assert row is not None
    assert (row.status, row.reply) == ("pending", None)
    assert row.next_attempt == NOW + rules.TRANSIENT_BACKOFF[0]
    # The daemon waits out the backoff...
    assert due(store, config, NOW + timedelta(minutes=4)).status == "waiting"
    # ...then sends the very message it first tried: same Message-ID, same Date, same bytes.
    assert due(store, config, NOW + timedelta(minutes=5)).status == "sent"
    assert len(smtp_plain.received) == 1
    assert smtp_plain.recorder.attempted[0] == smtp_plain.received[0].raw
    assert ids(smtp_plain) == [failed.message_id]


def test_a_permanent_failure_is_reported_and_send_by_hand_retries_at_once(
    store: Store, store_url: str, smtp_plain: SmtpServer
) -> None:
    config = make_config(smtp_plain, store_url)
    smtp_plain.script.append("554")
    failed = due(store, config)
    assert failed.status == "failed"
    assert "refused at DATA: 554 5.7.1 Message rejected by policy" in (failed.error or "")
    assert smtp_plain.recorder.data_commands == 1  # a 5xx is not retried
    row = store.outbox.entry(ME, "2026-W48")
    assert row is not None
    assert row.next_attempt == NOW + rules.PERMANENT_BACKOFF[0]
    assert due(store, config, NOW + timedelta(minutes=10)).status == "waiting"
    assert due(store, config, NOW + timedelta(minutes=10), mode="period").status == "sent"


def test_a_connection_lost_after_the_server_took_it_resends_with_the_same_message_id(
    store: Store, store_url: str, smtp_plain: SmtpServer
) -> None:
    # The documented at-least-once window: the server kept the message but the reply never
    # arrived, so nothing says it was accepted. The resend is byte for byte the same message.
    config = make_config(smtp_plain, store_url)
    smtp_plain.script.extend(["accept-drop", "drop"])
    assert due(store, config).status == "failed"
    assert due(store, config, NOW + timedelta(minutes=5)).status == "sent"
    first, second = smtp_plain.received
    assert first.raw == second.raw
    assert first.message["Message-ID"] == second.message["Message-ID"]


def test_a_claim_by_another_host_is_waited_out_then_taken_over(
    store: Store, store_url: str, smtp_plain: SmtpServer
) -> None:
    config = make_config(smtp_plain, store_url)
    lease = timedelta(minutes=20)
    claimed = store.outbox.claim(
        ME, "2026-W48", message_id="<m@example.org>", message=_raw("<m@example.org>"),
        owner="elsewhere:4242", now=NOW, lease=lease,
    )  # fmt: skip
    assert claimed is not None
    busy = due(store, config, NOW + timedelta(minutes=1))
    assert busy.status == "busy"
    assert "elsewhere:4242" in (busy.detail or "")
    assert smtp_plain.received == []
    sent = due(store, config, NOW + lease)
    assert (sent.status, sent.message_id) == ("sent", "<m@example.org>")
    assert ids(smtp_plain) == ["<m@example.org>"]


def test_a_dead_local_holder_is_taken_over_without_waiting(
    store: Store, store_url: str, smtp_plain: SmtpServer
) -> None:
    child = subprocess.Popen(["true"])  # a process of this host that has ended
    child.wait()
    owner = f"{socket.gethostname()}:{child.pid}"
    assert rules.holder_is_dead(owner)
    store.outbox.claim(
        ME, "2026-W48", message_id="<m@example.org>", message=_raw("<m@example.org>"),
        owner=owner, now=NOW, lease=timedelta(hours=1),
    )  # fmt: skip
    assert due(store, config := make_config(smtp_plain, store_url)).status == "sent"
    assert due(store, config).status == "done"
    assert ids(smtp_plain) == ["<m@example.org>"]


@pytest.mark.parametrize("expired", [False, True], ids=["new-row", "expired-claim"])
def test_racing_claims_for_one_period_have_one_winner(store_url: str, expired: bool) -> None:
    """Six senders at once: for a period nobody started (the unique insert decides) and for a
    pending row whose claim ran out (the conditional update decides)."""
    lease = timedelta(minutes=5)
    if expired:
        with Store.open(store_url) as first:
            first.outbox.claim(
                ME, "2026-W48", message_id="<r@example.org>", message="x", owner="gone:1",
                now=NOW - 2 * lease, lease=lease,
            )  # fmt: skip
    stores = [Store.open(store_url) for _ in range(6)]
    start = threading.Barrier(len(stores))
    won: list[str] = []

    def claim(store: Store, n: int) -> None:
        start.wait()
        row = store.outbox.claim(
            ME, "2026-W48", message_id="<r@example.org>", message="x", owner=f"h:{n}",
            now=NOW, lease=lease,
        )  # fmt: skip
        if row is not None:
            won.append(row.claimed_by or "")

    threads = [threading.Thread(target=claim, args=(s, n)) for n, s in enumerate(stores)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        (winner,) = won
        row = stores[0].outbox.entry(ME, "2026-W48")
        assert row is not None
        assert row.claimed_by == winner
        assert row.attempts == (2 if expired else 1)
    finally:
        for s in stores:
            s.close()


def test_racing_daemons_send_one_digest(store_url: str, smtp_plain: SmtpServer) -> None:
    config = make_config(smtp_plain, store_url)
    smtp_plain.script.append("hold")  # the winner stays mid-DATA while the others look
    stores = [Store.open(store_url) for _ in range(4)]
    start = threading.Barrier(len(stores))
    outcomes: list[Outcome] = []
    done = threading.Event()

    def daemon(store: Store) -> None:
        start.wait()
        outcomes.append(due(store, config))
        done.set()

    threads = [threading.Thread(target=daemon, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        assert smtp_plain.holding.wait(30)
        # Everyone but the sender returns while the sender is still inside DATA.
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while len(outcomes) < 3 and datetime.now(UTC) < deadline:
            done.wait(0.1)
        assert sorted(o.status for o in outcomes) == ["busy", "busy", "busy"]
        smtp_plain.release.set()
        for t in threads:
            t.join(30)
    finally:
        smtp_plain.release.set()
        for s in stores:
            s.close()
    assert sorted(o.status for o in outcomes) == ["busy", "busy", "busy", "sent"]
    assert len(smtp_plain.received) == 1


def _raw(message_id: str) -> str:
    text = (
        f"From: {ME}\r\nTo: {ME}\r\nSubject: keepwarm: test\r\nMessage-ID: {message_id}\r\n"
        "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nhello\r\n"
    )
    assert message_from_bytes(text.encode(), policy=policy.default)["Message-ID"] == message_id
    return text


def test_a_store_from_before_the_outbox_gains_it_on_open(store_url: str) -> None:
    """0002_outbox upgrades a database made by 0001 (and downgrades cleanly)."""
    Store.open(store_url).close()
    engine = sa.create_engine(store_url)
    try:
        config = AlembicConfig()
        config.set_main_option("script_location", str(store_engine.MIGRATIONS))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        assert "outbox" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    with Store.open(store_url) as store:
        assert store.outbox.mark_skipped(ME, "2026-W48", now=NOW)
        assert not store.outbox.mark_skipped(ME, "2026-W48", now=NOW)


def test_a_failure_before_any_outbox_row_is_not_repeated_every_tick(
    store: Store, store_url: str, smtp_plain: SmtpServer
) -> None:
    two = "a@example.org, b@example.org"  # passes the config's address check, names two people
    config = Config(
        store=StoreConfig(url=store_url), digest=DigestConfig(to=two), smtp=smtp_plain.config()
    )
    first = due(store, config)
    assert (first.status, first.config_error) == ("failed", True)
    assert "not one email address" in (first.error or "")
    assert due(store, config, NOW + timedelta(seconds=1)).status == "waiting"
    assert due(store, config, NOW + timedelta(minutes=5)).status == "failed"
    assert due(store, config, NOW + timedelta(seconds=1), mode="period").status == "failed"
    assert store.outbox.recent() == []
    assert smtp_plain.received == []
