"""The IMAP connector's pure parts: the FETCH answer reader on the byte shapes real servers
send, UID sets, the cursor and its resync guard, and the config rules for imap accounts."""

from __future__ import annotations

import imaplib
import io
from datetime import UTC, datetime, timedelta

import pytest

from keepwarm.config.load import parse
from keepwarm.connectors.imap import cursor as cursors
from keepwarm.connectors.imap.fetch import Fetched, fetch_items, read_fetch_responses, uid_set
from keepwarm.errors import ConfigError, CursorExpired

HEADER = b"From: a@example.org\r\nDate: Mon, 15 Jan 2024 10:00:00 +0100\r\n\r\n"
ITEM = b"BODY[HEADER.FIELDS (FROM DATE MESSAGE-ID)]"


class Wire:
    """Bytes a server sent, read the way imaplib reads its socket."""

    def __init__(self, data: bytes) -> None:
        self.stream = io.BytesIO(data)
        self.sent: list[bytes] = []

    def readline(self) -> bytes:
        return self.stream.readline()

    def read(self, size: int) -> bytes:
        return self.stream.read(size)

    def send(self, data: bytes) -> None:
        self.sent.append(data)


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def read(data: bytes) -> list[Fetched]:
    return list(read_fetch_responses(Wire(data), b"KW1"))


def test_the_common_shape() -> None:
    answer = (
        b"* 1 FETCH (UID 101 " + ITEM + b" " + literal(HEADER) + b")\r\n"
        b"* 2 FETCH (UID 102 " + ITEM + b" " + literal(b"\r\n") + b")\r\n"
        b"KW1 OK Fetch completed (0.001 + 0.000 secs).\r\n"
    )
    assert read(answer) == [Fetched(101, HEADER), Fetched(102, b"\r\n")]


def test_uid_after_the_literal_and_lines_in_between() -> None:
    answer = (
        b"* 7 EXISTS\r\n"
        b"* 3 FETCH (FLAGS (\\Seen))\r\n"  # unsolicited: another client set a flag
        b"* 1 FETCH (" + ITEM + b" " + literal(HEADER) + b" UID 101)\r\n"
        b"* 2 EXPUNGE\r\n"
        b"* OK [HIGHESTMODSEQ 9] still here\r\n"
        b"KW1 OK done\r\n"
    )
    assert read(answer) == [Fetched(101, HEADER)]


def test_a_header_as_a_quoted_string_or_nil() -> None:
    answer = (
        b'* 1 FETCH (UID 5 BODY[HEADER.FIELDS (FROM)] "")\r\n'
        b"* 2 FETCH (UID 6 BODY[HEADER.FIELDS (FROM)] NIL)\r\n"
        b"KW1 OK done\r\n"
    )
    assert read(answer) == [Fetched(5, b""), Fetched(6, b"")]


def test_gmail_labels_plain_quoted_and_as_a_literal() -> None:
    gm = b"* 1 FETCH (UID 9 X-GM-MSGID 1778813567912345678 X-GM-LABELS "
    answer = (
        gm + b"(\\Inbox \\Sent) " + ITEM + b" " + literal(HEADER) + b")\r\n"
        + gm.replace(b"UID 9", b"UID 10") + b'("\\\\Sent" "Work (old)") ' + ITEM + b" "
        + literal(HEADER) + b")\r\n"
        + gm.replace(b"UID 9", b"UID 11") + b"(" + literal(b"Caf\xc3\xa9") + b" \\Sent) "
        + ITEM + b" " + literal(HEADER) + b")\r\n"
        b"KW1 OK done\r\n"
    )  # fmt: skip
    found = read(answer)
    assert [(f.uid, f.header, f.gm_msgid) for f in found] == [
        (9, HEADER, 1778813567912345678),
        (10, HEADER, 1778813567912345678),
        (11, HEADER, 1778813567912345678),
    ]
    assert [sorted(f.gm_labels or ()) for f in found] == [
        ["\\Inbox", "\\Sent"],
        ["Work (old)", "\\Sent"],
        ["Café", "\\Sent"],
    ]


def test_a_literal_holding_protocol_text_is_data() -> None:
    sneaky = b"Subject: x\r\n* 99 FETCH (UID 1)\r\nKW1 OK fake\r\n\r\n"
    answer = b"* 1 FETCH (UID 3 " + ITEM + b" " + literal(sneaky) + b")\r\nKW1 OK done\r\n"
    assert read(answer) == [Fetched(3, sneaky)]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"* 1 FETCH (UID 3 " + ITEM + b" {50}\r\nshort", imaplib.IMAP4.abort),
        (b"* 1 FETCH (UID 3 " + ITEM + b" " + literal(HEADER), imaplib.IMAP4.abort),
        (b"* 1 FETCH (UID 3 FLAGS (\\Seen)", imaplib.IMAP4.abort),
        (b"* BYE Server shutting down.\r\n", imaplib.IMAP4.abort),
        (b"KW1 NO [SERVERBUG] Internal error\r\n", imaplib.IMAP4.error),
    ],
    ids=["eof-in-literal", "eof-after-literal", "unterminated", "bye", "no"],
)
def test_broken_answers_raise_imaplib_errors(answer: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        read(answer)


def test_uid_sets_are_compact_ranges() -> None:
    assert uid_set([1, 2, 3, 4, 9, 11, 12]) == "1:4,9,11:12"
    assert uid_set([7]) == "7"
    assert uid_set(list(range(1, 1001))) == "1:1000"


def test_fetch_items_name_only_header_fields() -> None:
    wanted = "(UID BODY.PEEK[HEADER.FIELDS (FROM DATE)])"
    assert fetch_items(("From", "Date"), gmail=False) == wanted
    assert "X-GM-MSGID X-GM-LABELS" in fetch_items(("From",), gmail=True)


# --- cursor ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", '{"v": 2, "folders": {}}', '{"v": 1}',
     '{"v": 1, "folders": {"INBOX": {"uidvalidity": "x"}}}',
     '{"v": 1, "folders": {"INBOX": {"uidvalidity": 1, "since": "yesterday"}}}',
     '{"v": 1, "folders": {"INBOX": {"uidvalidity": 1, "colour": 3}}}'],
)  # fmt: skip
def test_an_unreadable_cursor_expires(text: str) -> None:
    with pytest.raises(CursorExpired):
        cursors.load(text)


def test_the_cursor_round_trips() -> None:
    state = cursors.Cursor(
        folders={"Envoyés": cursors.FolderState(7, 42, 43, 99, None, 1700000000, [1, 2])},
        plan=[("INBOX", "inbox"), ("Envoyés", "sent")],
        plan_key="abc",
        planned_at=1700000000,
    )
    text = cursors.dump(state)
    assert cursors.load(text) == state
    assert cursors.dump(cursors.load(text)) == text


def test_the_resync_guard_narrows_the_fourth_resync_in_a_week() -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    old = cursors.FolderState(1, 500, 501, synced=int((now - timedelta(hours=1)).timestamp()))
    since = []
    for i in range(5):
        state, guarded = cursors.start_over(old, 100 + i, now + timedelta(days=i), 1095)
        since.append((state.since, guarded))
        state.synced, old = int((now + timedelta(days=i)).timestamp()), state
    assert since == [
        ("2023-11-26", False), ("2023-11-27", False), ("2023-11-28", False),
        ("2026-11-25", True), ("2026-11-26", True),  # two days before the last full read
    ]  # fmt: skip
    later = now + timedelta(days=30)
    assert cursors.start_over(old, 200, later, 1095)[1] is False  # quiet for weeks: full again


# --- config ------------------------------------------------------------------------------------


def imap_account(**extra: str) -> str:
    lines = ['name = "w"', 'kind = "imap"', 'host = "imap.example.org"', 'username = "me"']
    lines += [f'{k} = "{v}"' for k, v in extra.items()]
    return "[[accounts]]\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({}, 'accounts[0].password_file: kind "imap" needs a password'),
        ({"auth": "xoauth2"}, 'accounts[0].password_command: auth = "xoauth2" needs an access'),
        ({"auth": "xoauth2", "oauth_provider": "google", "password_env": "T"},
         "accounts[0].password_env: set either oauth_provider or a token source"),
        ({"oauth_provider": "google", "password_env": "T"},
         'accounts[0].oauth_provider: applies only with auth = "xoauth2"'),
        ({"auth": "kerberos", "password_env": "T"}, "accounts[0].auth: must be one of"),
    ],
)  # fmt: skip
def test_imap_config_rules(extra: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(imap_account(**extra))
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    "extra",
    [
        {"password_env": "T"},
        {"auth": "xoauth2", "password_env": "T"},
        {"auth": "xoauth2", "oauth_provider": "microsoft", "client_id": "11111111-aaaa"},
        {"auth": "xoauth2", "oauth_provider": "google", "credentials_file": "/etc/kw/g.json"},
    ],
)
def test_imap_configs_that_are_fine(extra: dict[str, str]) -> None:
    [account] = parse(imap_account(**extra)).accounts
    assert account.idle is True
