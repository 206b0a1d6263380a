"""The mbox connector against real mbox files written in tmp_path."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
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

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, SourceProblem
from keepwarm.connectors.mbox import MboxConnector

SEPARATOR = b"From alice@example.org Mon Jan 15 10:00:00 2024\n"


def entry(data: bytes) -> bytes:
    """One mbox entry as a local delivery agent appends it: From_ line, message, blank line."""
    return SEPARATOR + data.rstrip(b"\n") + b"\n\n"


class MboxSource:
    """An mbox file (or a directory of them) that messages are appended to."""

    def __init__(self, path: Path, mailbox: Path) -> None:
        self.mailbox = mailbox
        mailbox.parent.mkdir(parents=True, exist_ok=True)
        mailbox.touch()
        self.account = AccountConfig(name="home", kind="mbox", path=str(path))

    def append(self, data: bytes) -> None:
        with self.mailbox.open("ab") as fh:
            fh.write(data)

    def add(self, keys: list[str]) -> None:
        self.append(b"".join(entry(mail(key)) for key in keys))

    def add_bad(self, key: str) -> None:
        self.append(entry(bad_mail()))


class TestMboxFileContract(ConnectorContract):
    @pytest.fixture
    def source(self, tmp_path: Path) -> MboxSource:
        return MboxSource(tmp_path / "inbox", tmp_path / "inbox")


class TestMboxDirectoryContract(ConnectorContract):
    @pytest.fixture
    def source(self, tmp_path: Path) -> MboxSource:
        source = MboxSource(tmp_path / "mail", tmp_path / "mail" / "Inbox.sbd" / "Work")
        (tmp_path / "mail" / "Work.msf").write_bytes(b"// <!-- <mdb:mork:z v=1.4/> -->")
        (tmp_path / "mail" / "Drafts").write_bytes(b"")  # empty: not read until it holds mail
        return source


@pytest.fixture
def mbox(tmp_path: Path) -> MboxSource:
    return MboxSource(tmp_path / "inbox", tmp_path / "inbox")


@pytest.fixture
def context(tmp_path: Path) -> ConnectorContext:
    now = datetime.now(UTC) + timedelta(minutes=5)
    return ConnectorContext(state_dir=tmp_path / "state", now=lambda: now)


def test_source_id_is_the_byte_offset_of_the_from_line(
    mbox: MboxSource, context: ConnectorContext
) -> None:
    mbox.add(["a@x", "b@x"])
    found = messages(run(mbox, context, None))
    data = mbox.mailbox.read_bytes()
    for meta in found.values():
        name, offset = meta.source_id.rsplit(":", 1)
        assert name == "inbox"
        assert data[int(offset) :].startswith(SEPARATOR)
        assert meta.folder == "inbox"
        assert meta.sent is None


def test_from_lines_in_bodies_do_not_split_messages(
    mbox: MboxSource, context: ConnectorContext
) -> None:
    body = "Hi,\nFrom what I hear it went well.\n\n>From here on, quoted.\n"
    mbox.add(["a@x"])
    mbox.append(entry(mail("b@x", body=body)))
    mbox.add(["c@x"])
    batches = run(mbox, context, None)
    assert keys(batches) == ["a@x", "b@x", "c@x"]
    assert skips(batches) == []


def test_growth_resumes_at_the_offset(mbox: MboxSource, context: ConnectorContext) -> None:
    mbox.add(["a@x", "b@x"])
    cursor = final_cursor(run(mbox, context, None))
    mbox.add(["c@x"])
    batches = run(mbox, context, cursor)
    assert keys(batches) == ["c@x"]
    offset = int(messages(batches)["c@x"].source_id.rsplit(":", 1)[1])
    assert offset == len(entry(mail("a@x"))) * 2


def test_a_rewritten_file_is_read_again(mbox: MboxSource, context: ConnectorContext) -> None:
    mbox.add(["a@x", "b@x", "c@x"])
    cursor = final_cursor(run(mbox, context, None))
    # A mail client expunges b and writes the file anew, then more mail arrives.
    replacement = mbox.mailbox.with_suffix(".new")
    replacement.write_bytes(entry(mail("a@x")) + entry(mail("c@x")))
    os.replace(replacement, mbox.mailbox)
    mbox.add(["d@x"])
    assert keys(run(mbox, context, cursor)) == ["a@x", "c@x", "d@x"]


def test_an_in_place_rewrite_is_noticed_by_the_fingerprint(
    mbox: MboxSource, context: ConnectorContext
) -> None:
    mbox.add(["a@x", "b@x"])
    cursor = final_cursor(run(mbox, context, None))
    inode = mbox.mailbox.stat().st_ino
    with mbox.mailbox.open("r+b") as fh:  # same inode, same size, other content
        fh.write(entry(mail("e@x")) + entry(mail("f@x")))
    mbox.add(["g@x"])
    assert mbox.mailbox.stat().st_ino == inode
    assert keys(run(mbox, context, cursor)) == ["e@x", "f@x", "g@x"]


def test_a_partly_written_last_message_waits_until_complete(
    mbox: MboxSource, tmp_path: Path
) -> None:
    clock = [datetime.now(UTC)]
    context = ConnectorContext(state_dir=tmp_path, now=lambda: clock[0])
    mbox.add(["a@x"])
    whole = entry(mail("b@x"))
    mbox.append(whole[:200])  # the delivery agent is half-way through the header block
    batches = run(mbox, context, None)
    assert keys(batches) == ["a@x"]
    cursor = final_cursor(batches)
    mbox.append(whole[200:])
    assert keys(run(mbox, context, cursor)) == ["b@x"]


def test_an_unterminated_last_message_counts_once_the_file_is_quiet(
    mbox: MboxSource, tmp_path: Path
) -> None:
    mbox.add(["a@x"])
    mbox.append(SEPARATOR + mail("b@x").rstrip(b"\n"))  # an exporter that ends without \n\n
    clock = [datetime.now(UTC)]
    context = ConnectorContext(state_dir=tmp_path, now=lambda: clock[0])
    assert keys(run(mbox, context, None)) == ["a@x"]
    clock[0] += timedelta(minutes=2)
    assert keys(run(mbox, context, None)) == ["a@x", "b@x"]


def test_broken_and_oversized_headers_are_skipped(
    mbox: MboxSource, context: ConnectorContext
) -> None:
    mbox.add(["a@x"])
    mbox.append(entry(b"From: a@example.org\nX-Filler: " + b"y" * 1_100_000 + b"\n\nbody\n"))
    mbox.append(entry(b"Date: yesterday-ish\nFrom: a@example.org\n\nbody\n"))
    mbox.append(entry(mail("b@x", newline="\r\n")).replace(b"\n\n", b"\r\n\r\n"))
    batches = run(mbox, context, None)
    assert keys(batches) == ["a@x", "b@x"]
    assert sorted(skip.reason for skip in skips(batches)) == ["bad-date", "too-large"]


def test_directory_of_mbox_files(tmp_path: Path, context: ConnectorContext) -> None:
    root = tmp_path / "Mail"
    (root / "Archives.sbd").mkdir(parents=True)
    (root / "Inbox").write_bytes(entry(mail("in@x")))
    (root / "Inbox.msf").write_bytes(b"// <!-- <mdb:mork:z v=1.4/> -->")
    (root / "Sent").write_bytes(entry(mail("sent@x")))
    (root / "sent-mail.mbox").write_bytes(entry(mail("mutt@x")))
    (root / "Archives.sbd" / "2023").write_bytes(entry(mail("old@x")))
    (root / "notes.txt").write_bytes(b"not mail")
    (root / "Empty").write_bytes(b"")
    account = AccountConfig(name="home", kind="mbox", path=str(root))
    found = messages(list(MboxConnector(account, context).poll(None)))
    assert {key: (m.folder, m.sent) for key, m in found.items()} == {
        "in@x": ("Inbox", None),
        "sent@x": ("Sent", True),
        "mutt@x": ("sent-mail", True),
        "old@x": ("Archives/2023", None),
    }
    assert found["old@x"].source_id == f"Archives.sbd{os.sep}2023:0"


def test_sent_folder_setting_marks_a_single_file(
    mbox: MboxSource, context: ConnectorContext
) -> None:
    mbox.add(["a@x"])
    mbox.account = replace(mbox.account, sent_folder="inbox")
    assert messages(run(mbox, context, None))["a@x"].sent is True


def test_missing_or_wrong_path_is_a_problem_of_the_account(
    tmp_path: Path, context: ConnectorContext
) -> None:
    (tmp_path / "notes").write_text("Dear diary\n")
    for name, words in [("nowhere", "does not exist"), ("notes", "not an mbox")]:
        account = AccountConfig(name="home", kind="mbox", path=str(tmp_path / name))
        with pytest.raises(SourceProblem, match=words):
            list(MboxConnector(account, context).poll(None))
