"""The contract every connector passes, against its real source (files, a local server).

A test module subclasses `ConnectorContract` and provides a `source` fixture: a `Source` that
adds items to the real thing the connector reads. Items are compared by key (Message-ID or
iCalendar UID), so the suite is the same for mail and calendars.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar, Protocol

import pytest

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, create
from keepwarm.errors import CursorExpired
from keepwarm.model import Batch, MeetingMeta, MessageMeta, Skip


class Source(Protocol):
    """The real source behind one account, as a test drives it."""

    account: AccountConfig

    def add(self, keys: list[str]) -> None:
        """Add one good item per key (a message with that Message-ID, an event with that UID)."""

    def add_bad(self, key: str) -> None:
        """Add one item that cannot be read (missing date, no DTSTART, ...)."""


def mail(
    key: str,
    *,
    sender: str = "Alice Example <alice@example.org>",
    to: str = "Me <me@example.net>",
    date: str = "Mon, 15 Jan 2024 10:00:00 +0100",
    body: str = "Hello,\n\nsee you soon.\n",
    newline: str = "\n",
) -> bytes:
    """A plausible message whose Message-ID is `key`, as an MTA would deliver it."""
    lines = [
        "Return-Path: <alice@example.org>",
        "Received: from mx.example.org (mx.example.org [192.0.2.1])",
        "\tby mail.example.net with ESMTPS; Mon, 15 Jan 2024 10:00:01 +0100",
        f"From: {sender}",
        f"To: {to}",
        "Subject: =?utf-8?q?Caf=C3=A9_tomorrow=3F?=",
        f"Date: {date}",
        f"Message-ID: <{key}>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        *body.split("\n"),
    ]
    return newline.join(lines).encode()


def bad_mail() -> bytes:
    """A message detection cannot use: no Date, no From."""
    return b"Subject: lost\nX-Junk: yes\n\nbody\n"


def key_of(item: MessageMeta | MeetingMeta) -> str:
    if isinstance(item, MessageMeta):
        assert item.message_id is not None
        return item.message_id
    return item.uid


def run(source: Source, context: ConnectorContext, cursor: str | None) -> list[Batch]:
    """One poll to the end with a new connector built through the registry, then closed."""
    connector = create(source.account, context)
    try:
        return list(connector.poll(cursor))
    finally:
        connector.close()


def keys(batches: list[Batch]) -> list[str]:
    return sorted(key_of(item) for batch in batches for item in batch.items)


def skips(batches: list[Batch]) -> list[Skip]:
    return [skip for batch in batches for skip in batch.skipped]


def messages(batches: list[Batch]) -> dict[str, MessageMeta]:
    """The messages of a poll by Message-ID."""
    found = {}
    for batch in batches:
        for item in batch.items:
            assert isinstance(item, MessageMeta)
            found[key_of(item)] = item
    return found


def final_cursor(batches: list[Batch], before: str | None = None) -> str | None:
    """The cursor after the whole poll: the last batch's, or the one kept when it has none."""
    cursor = before
    for batch in batches:
        cursor = batch.cursor if batch.cursor is not None else cursor
    return cursor


class ConnectorContract:
    """First sync, incremental sync, idempotent re-run, bad item skipped, cursor restart,
    cursor expiry, and batch cursors that each resume right after their batch."""

    # Calendar feeds have no notion of "new since": a changed feed is sent whole.
    resends_everything: ClassVar[bool] = False
    # How many items make several batches (0: the connector sends one batch whatever the size).
    many: ClassVar[int] = 2_500

    @pytest.fixture
    def context(self, tmp_path: Path) -> ConnectorContext:
        # A few minutes ahead of the files' real times: settle periods do not hold items back.
        now = datetime.now(UTC) + timedelta(minutes=5)
        return ConnectorContext(state_dir=tmp_path / "state", now=lambda: now)

    def test_first_sync_reads_every_item(self, source: Source, context: ConnectorContext) -> None:
        source.add(["a@x", "b@x", "c@x"])
        batches = run(source, context, None)
        assert keys(batches) == ["a@x", "b@x", "c@x"]
        assert skips(batches) == []
        assert final_cursor(batches) is not None

    def test_incremental_sync_sees_only_new_items(
        self, source: Source, context: ConnectorContext
    ) -> None:
        source.add(["a@x", "b@x"])
        cursor = final_cursor(run(source, context, None))
        source.add(["c@x"])
        batches = run(source, context, cursor)
        expected = ["a@x", "b@x", "c@x"] if self.resends_everything else ["c@x"]
        assert keys(batches) == expected

    def test_nothing_new_yields_no_items(self, source: Source, context: ConnectorContext) -> None:
        source.add(["a@x"])
        cursor = final_cursor(run(source, context, None))
        batches = run(source, context, cursor)
        assert keys(batches) == []
        assert final_cursor(batches, cursor) == cursor

    def test_rerun_from_the_same_cursor_yields_the_same_items(
        self, source: Source, context: ConnectorContext
    ) -> None:
        source.add(["a@x"])
        cursor = final_cursor(run(source, context, None))
        source.add(["b@x", "c@x"])
        first = run(source, context, cursor)
        second = run(source, context, cursor)  # the first was never stored: a crash, say
        assert [b.items for b in first] == [b.items for b in second]
        assert final_cursor(first) == final_cursor(second)
        assert keys(first) == (["a@x", "b@x", "c@x"] if self.resends_everything else ["b@x", "c@x"])

    def test_bad_item_is_a_skip_and_the_rest_is_read(
        self, source: Source, context: ConnectorContext
    ) -> None:
        source.add(["a@x"])
        source.add_bad("bad@x")
        source.add(["b@x"])
        batches = run(source, context, None)
        assert keys(batches) == ["a@x", "b@x"]
        [skip] = skips(batches)
        assert skip.reason
        assert skip.source_id

    def test_cursor_survives_a_restart(self, source: Source, context: ConnectorContext) -> None:
        source.add(["a@x", "b@x"])
        cursor = final_cursor(run(source, context, None))
        # Through JSON-text only, as the store keeps it; a new connector instance reads it.
        assert isinstance(cursor, str)
        assert keys(run(source, context, cursor)) == []
        source.add(["c@x"])
        expected = ["a@x", "b@x", "c@x"] if self.resends_everything else ["c@x"]
        assert keys(run(source, context, cursor)) == expected

    def test_an_unreadable_cursor_asks_for_a_full_resync(
        self, source: Source, context: ConnectorContext
    ) -> None:
        source.add(["a@x"])
        with pytest.raises(CursorExpired):
            run(source, context, "not a cursor")

    def test_each_batch_cursor_resumes_after_that_batch(
        self, source: Source, context: ConnectorContext
    ) -> None:
        count = self.many or 3
        names = [f"m{i:05d}@x" for i in range(count)]
        source.add(names)
        batches = run(source, context, None)
        assert keys(batches) == sorted(names)
        if not self.many:
            assert len([b for b in batches if b.items]) == 1
            return
        assert len(batches) >= 3
        assert all(len(b.items) <= 1000 for b in batches)
        done: list[str] = []
        for batch in batches[:-1]:
            # Stored up to here, then the daemon died: the rest, and nothing else, comes next.
            done += [key_of(item) for item in batch.items]
            assert batch.cursor is not None
            assert keys(run(source, context, batch.cursor)) == sorted(set(names) - set(done))
