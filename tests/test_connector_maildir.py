"""The Maildir connector against real Maildir trees written in tmp_path."""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
from keepwarm.connectors import maildir as maildir_module
from keepwarm.connectors.base import ConnectorContext, SourceProblem
from keepwarm.connectors.maildir import (
    MaildirConnector,
    decode_mutf7,
    is_sent_folder,
    read_header_block,
)
from keepwarm.errors import MalformedInput

_counter = itertools.count()


class MaildirSource:
    """A Maildir that messages are delivered into the way an MDA does: tmp/, then rename."""

    def __init__(self, root: Path, **account: Any) -> None:
        self.root = root
        self.folder("")
        self.account = AccountConfig(name="home", kind="maildir", path=str(root), **account)

    def folder(self, name: str) -> Path:
        path = self.root / name if name else self.root
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        return path

    def deliver(self, data: bytes, folder: str = "", sub: str = "new", info: str = "") -> Path:
        path = self.folder(folder)
        unique = f"{time.time_ns()}.M{next(_counter)}P{os.getpid()}.testhost"
        (path / "tmp" / unique).write_bytes(data)
        target = path / sub / (unique + info)
        os.rename(path / "tmp" / unique, target)
        return target

    def add(self, keys: list[str]) -> None:
        for key in keys:
            self.deliver(mail(key))

    def add_bad(self, key: str) -> None:
        self.deliver(bad_mail())


class TestMaildirContract(ConnectorContract):
    @pytest.fixture
    def source(self, tmp_path: Path) -> MaildirSource:
        return MaildirSource(tmp_path / "Maildir")


@pytest.fixture
def maildir(tmp_path: Path) -> MaildirSource:
    return MaildirSource(tmp_path / "Maildir")


@pytest.fixture
def context(tmp_path: Path) -> ConnectorContext:
    now = datetime.now(UTC) + timedelta(minutes=5)
    return ConnectorContext(state_dir=tmp_path / "state", now=lambda: now)


def test_maildirplusplus_sent_folders_mark_mail_as_sent(
    maildir: MaildirSource, context: ConnectorContext
) -> None:
    maildir.deliver(mail("in@x"))
    maildir.deliver(mail("sent@x"), ".Sent", "cur", ":2,S")
    maildir.deliver(mail("items@x"), ".Sent Items", "cur", ":2,S")
    maildir.deliver(mail("de@x"), ".Gesendet", "cur", ":2,S")
    maildir.deliver(mail("fr@x"), ".Envoy&AOk-s", "cur", ":2,S")  # Dovecot's "Envoyés"
    maildir.deliver(mail("arch@x"), ".Archive.2023", "cur", ":2,S")
    maildir.deliver(mail("mine@x"), ".Outgoing", "cur", ":2,S")
    account = replace(maildir.account, sent_folder="Outgoing")
    found = messages(list(MaildirConnector(account, context).poll(None)))
    assert {key: (m.folder, m.sent) for key, m in found.items()} == {
        "in@x": ("INBOX", None),
        "sent@x": ("Sent", True),
        "items@x": ("Sent Items", True),
        "de@x": ("Gesendet", True),
        "fr@x": ("Envoyés", True),
        "arch@x": ("Archive/2023", None),
        "mine@x": ("Outgoing", True),
    }


def test_nested_verbatim_folders_are_read(
    maildir: MaildirSource, context: ConnectorContext
) -> None:
    maildir.deliver(mail("deep@x"), "Archive/2023/Projects", "cur", ":2,S")
    maildir.deliver(mail("out@x"), "Sent Messages", "cur", ":2,S")
    found = messages(run(maildir, context, None))
    assert found["deep@x"].folder == "Archive/2023/Projects"
    assert found["out@x"].sent is True


def test_trash_junk_and_drafts_are_left_out_unless_asked_for(
    maildir: MaildirSource, context: ConnectorContext
) -> None:
    maildir.deliver(mail("keep@x"))
    maildir.deliver(mail("trash@x"), ".Trash", "cur")
    maildir.deliver(mail("spam@x"), ".Junk", "cur")
    maildir.deliver(mail("draft@x"), ".Drafts", "cur")
    assert keys(run(maildir, context, None)) == ["keep@x"]
    maildir.account = replace(maildir.account, folders=("Trash",))
    assert keys(run(maildir, context, None)) == ["keep@x", "trash@x"]


def test_source_id_is_folder_and_unique_name(
    maildir: MaildirSource, context: ConnectorContext
) -> None:
    path = maildir.deliver(mail("a@x"), ".Sent", "cur", ":2,RS")
    [meta] = messages(run(maildir, context, None)).values()
    assert meta.source_id == f"Sent/{path.name.split(':')[0]}"


def test_flag_rename_new_to_cur_is_read_again_under_the_same_source_id(
    maildir: MaildirSource, context: ConnectorContext
) -> None:
    delivered = maildir.deliver(mail("a@x"))
    maildir.deliver(mail("b@x"))
    connector = MaildirConnector(maildir.account, context)
    first = list(connector.poll(None))
    cursor = final_cursor(first)
    assert connector.last_poll.read == 2
    # The mail client sees it: new/ -> cur/ with the Seen flag (a rename: a new ctime).
    os.rename(delivered, maildir.root / "cur" / (delivered.name + ":2,S"))
    again = list(connector.poll(cursor))
    assert keys(again) == ["a@x"]
    assert messages(again)["a@x"].source_id == messages(first)["a@x"].source_id
    assert (connector.last_poll.read, connector.last_poll.reread) == (1, 1)


def test_a_new_file_is_read_without_rereading_the_rest(
    maildir: MaildirSource, context: ConnectorContext
) -> None:
    maildir.add([f"old{i}@x" for i in range(50)])
    connector = MaildirConnector(maildir.account, context)
    cursor = final_cursor(list(connector.poll(None)))
    maildir.add(["new@x"])
    assert keys(list(connector.poll(cursor))) == ["new@x"]
    assert connector.last_poll.read == 1


def test_a_folder_larger_than_the_window_is_read_whole_in_order_and_once(
    maildir: MaildirSource, context: ConnectorContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read in windows of a few files (as a big folder is in windows of 50,000): the same
    messages as one window gives, each once, in ctime order. Hard links share their
    inode's ctime, so each message's five names make runs of equal ctimes that the windows
    split (as a coarse file-system clock does)."""
    for i in range(8):
        first = maildir.deliver(mail(f"m{i}@x"))
        for n in range(4):
            os.link(first, first.with_name(f"{first.name}.link{n}"))
    whole = [item.source_id for b in run(maildir, context, None) for item in b.items]
    monkeypatch.setattr(maildir_module, "WINDOW", 3)
    batches = run(maildir, context, None)
    windowed = [item.source_id for b in batches for item in b.items]
    assert len(set(windowed)) == len(windowed) == 40
    assert sorted(windowed) == sorted(whole)
    ctime = {f"INBOX/{f.name}": f.stat().st_ctime_ns for f in (maildir.root / "new").iterdir()}
    assert [ctime[i] for i in windowed] == sorted(ctime[i] for i in windowed)
    maildir.add(["late@x"])
    assert keys(run(maildir, context, final_cursor(batches))) == ["late@x"]


def test_files_changed_in_the_last_seconds_are_read_again_next_time(
    maildir: MaildirSource, tmp_path: Path
) -> None:
    # With the real clock the files below are younger than the settle period: the cursor stays
    # behind them (a concurrent delivery with an older ctime could not be missed), and once
    # the clock has moved on they are behind the mark.
    clock = [datetime.now(UTC)]
    context = ConnectorContext(state_dir=tmp_path, now=lambda: clock[0])
    maildir.add(["a@x"])
    cursor = final_cursor(run(maildir, context, None))
    assert keys(run(maildir, context, cursor)) == ["a@x"]
    clock[0] += timedelta(seconds=30)
    cursor = final_cursor(run(maildir, context, cursor))
    assert keys(run(maildir, context, cursor)) == []


def test_broken_messages_are_skipped_with_their_reason(
    maildir: MaildirSource, context: ConnectorContext
) -> None:
    maildir.deliver(mail("good@x"))
    maildir.deliver(b"Subject: no date\nFrom: a@example.org\n\nbody\n")
    maildir.deliver(b"From: a@example.org\nSubject: x\n" + b"X-Filler: " + b"y" * 1_100_000)
    (maildir.root / "cur" / "1.M1P1.host:2,S").mkdir()  # not a file: cannot be read
    maildir.deliver(mail("crlf@x", newline="\r\n"))
    maildir.deliver(mail("nobody@x", body="").rstrip(b"\n"))  # header block only, no body
    batches = run(maildir, context, None)
    assert keys(batches) == ["crlf@x", "good@x", "nobody@x"]
    assert sorted(skip.reason for skip in skips(batches)) == ["no-date", "too-large", "unreadable"]


def test_header_block_is_read_without_the_body(tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.write_bytes(mail("a@x", body="x" * 5_000_000))
    block = read_header_block(str(path))
    assert block.endswith(b"charset=utf-8\n\n")
    path.write_bytes(b"From: a@b\r\nDate: x\r\n\r\nbody")
    assert read_header_block(str(path)) == b"From: a@b\r\nDate: x\r\n\r\n"
    path.write_bytes(b"X: " + b"y" * 2_000_000)
    with pytest.raises(MalformedInput) as caught:
        read_header_block(str(path))
    assert caught.value.reason == "too-large"


def test_missing_or_wrong_path_is_a_problem_of_the_account(
    tmp_path: Path, context: ConnectorContext
) -> None:
    for path, words in [
        (tmp_path / "nowhere", "does not exist"),
        (tmp_path / "empty", "holds no Maildir"),
        (tmp_path / "file", "is a file"),
    ]:
        if path.name == "empty":
            path.mkdir()
        elif path.name == "file":
            path.write_text("x")
        account = AccountConfig(name="home", kind="maildir", path=str(path))
        with pytest.raises(SourceProblem, match=words) as caught:
            list(MaildirConnector(account, context).poll(None))
        assert caught.value.fix


def test_sent_folder_names_and_modified_utf7() -> None:
    assert decode_mutf7("Envoy&AOk-s") == "Envoyés"
    assert decode_mutf7("Tom &- Jerry") == "Tom & Jerry"
    assert decode_mutf7("&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-") == "Отправленные"
    assert is_sent_folder("INBOX/Sent Items")
    assert is_sent_folder("ENVIADOS")
    assert is_sent_folder("Out", configured="out")
    assert not is_sent_folder("Sentimental")
