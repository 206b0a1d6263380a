"""Header parsing: raw bytes to MessageMeta, and the reasons a message is skipped."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keepwarm.detect.headers import WANTED, parse_headers
from keepwarm.errors import MalformedInput
from keepwarm.model import MessageMeta, Person

DATA = Path(__file__).parent / "data" / "mail"
NOW = datetime(2024, 6, 1, tzinfo=UTC)

TYPICAL = b"""Return-Path: <alice@example.org>
Received: from mx.example.org (mx.example.org [192.0.2.1])
\tby mail.example.com (Postfix) with ESMTPS id 4AB12
\tfor <me@example.com>; Tue, 12 Mar 2024 10:15:02 +0000 (UTC)
DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1;
\th=from:to:subject:date; b=abcdef
MIME-Version: 1.0
From: Alice Example <Alice@Example.org>
To: Me Myself <me@example.com>,
 "Doe, Bob" <bob@example.net>
Cc: carol@example.org
Subject: Re: lunch
 next week?
Date: Tue, 12 Mar 2024 03:15:00 -0700
Message-ID: < CAF123@mail.example.org >
In-Reply-To: <CAF000@mail.example.com>
References: <root@example.com>
 <CAF000@mail.example.com>
List-Id: Friends <friends.example.org>
Content-Type: text/plain; charset=utf-8

From: body@example.org
Date: Mon, 1 Jan 2001 00:00:00 +0000
This is the body; it is never read.
"""


def parse(raw: bytes) -> MessageMeta:
    return parse_headers(raw, "id-1", now=NOW)


def reason_of(raw: bytes) -> str:
    with pytest.raises(MalformedInput) as caught:
        parse_headers(raw, "id-1", now=NOW)
    return caught.value.reason


def test_typical_message() -> None:
    meta = parse_headers(TYPICAL, "maildir-key", sent=False, folder="INBOX", now=NOW)
    assert meta.source_id == "maildir-key"
    assert meta.sender == (Person("alice@example.org", "Alice Example"),)
    assert meta.to == (Person("me@example.com", "Me Myself"), Person("bob@example.net", "Doe, Bob"))
    assert meta.cc == (Person("carol@example.org", None),)
    assert meta.bcc == ()
    assert meta.date == datetime(2024, 3, 12, 10, 15, tzinfo=UTC)
    assert meta.date.tzinfo is UTC
    assert meta.message_id == "CAF123@mail.example.org"
    assert meta.in_reply_to == "CAF000@mail.example.com"
    assert meta.references == ("root@example.com", "CAF000@mail.example.com")
    assert meta.subject == "Re: lunch next week?"
    assert dict(meta.signals) == {
        "return-path": "<alice@example.org>",
        "list-id": "Friends <friends.example.org>",
        "content-type": "text/plain; charset=utf-8",
    }
    assert meta.sent is False
    assert meta.folder == "INBOX"


def test_header_block_alone_and_crlf() -> None:
    head = TYPICAL.split(b"\n\n")[0]
    assert parse(head) == parse(TYPICAL)
    assert parse(TYPICAL.replace(b"\n", b"\r\n")) == parse(TYPICAL)


def test_the_body_is_never_read() -> None:
    raw = b"From: a@example.org\nTo: b@example.org\n\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
    assert reason_of(raw) == "no-date"


def test_field_names_are_case_insensitive_and_repeated_lists_join() -> None:
    raw = (
        b"FROM: a@example.org\nto: b@example.org\nTO: c@example.org\n"
        b"date: Mon, 4 Mar 2024 10:00:00 +0000\nMESSAGE-id: <X@Y>\nSubject : spaced\n"
    )
    meta = parse(raw)
    assert [p.address for p in meta.to] == ["b@example.org", "c@example.org"]
    assert meta.message_id == "X@Y"
    assert meta.subject == "spaced"


def test_only_wanted_fields_and_near_misses_are_not_read() -> None:
    raw = (
        b"From: a@example.org\nDate: Mon, 4 Mar 2024 10:00:00 +0000\n"
        b"X-To: nobody@example.org\nTox: nobody@example.org\nResent-To: x@example.org\n"
        b"X-Autoreplyx: yes\n"
    )
    meta = parse(raw)
    assert meta.to == ()
    assert meta.signals == ()


def test_wanted_is_the_documented_set() -> None:
    must = {
        "From", "Sender", "To", "Cc", "Bcc", "Reply-To", "Date", "Message-ID", "In-Reply-To",
        "References", "Subject", "List-Id", "List-Unsubscribe", "Precedence", "Auto-Submitted",
        "X-Auto-Response-Suppress", "X-Autoreply", "X-Autorespond", "Content-Type",
        "Content-Class",
    }  # fmt: skip
    assert must <= set(WANTED)
    assert len(set(WANTED)) == len(WANTED)


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Tue, 12 Mar 2024 03:15:00 -0700", datetime(2024, 3, 12, 10, 15, tzinfo=UTC)),
        ("12 Mar 2024 03:15 +0100", datetime(2024, 3, 12, 2, 15, tzinfo=UTC)),
        ("Tue, 12 Mar 2024 03:15:00 -0700 (PDT)", datetime(2024, 3, 12, 10, 15, tzinfo=UTC)),
        ("Tue, 12 Mar 2024 03:15:00 GMT", datetime(2024, 3, 12, 3, 15, tzinfo=UTC)),
        ("Tue, 12 Mar 2024 03:15:00 -0000", datetime(2024, 3, 12, 3, 15, tzinfo=UTC)),
        ("Tue, 12 Mar 2024 03:15:00", datetime(2024, 3, 12, 3, 15, tzinfo=UTC)),
        ("Tue, 12 Mar 99 03:15:00 +0000", datetime(1999, 3, 12, 3, 15, tzinfo=UTC)),
        ("tue,  12  mar  2024  03:15:00  +0530", datetime(2024, 3, 11, 21, 45, tzinfo=UTC)),
    ],
)
def test_dates_become_aware_utc(date: str, expected: datetime) -> None:
    meta = parse(b"From: a@example.org\nDate: " + date.encode() + b"\n")
    assert meta.date == expected
    assert meta.date.utcoffset() == UTC.utcoffset(None)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"From: a@example.org\n", "no-date"),
        (b"From: a@example.org\nDate:   \n", "no-date"),
        (b"From: a@example.org\nDate: yesterday-ish\n", "bad-date"),
        (b"From: a@example.org\nDate: Mon, 31 Feb 2024 10:00:00 +0000\n", "bad-date"),
        (b"From: a@example.org\nDate: Mon, 1 Jan 2024 25:00:00 +0000\n", "bad-date"),
        (b"From: a@example.org\nDate: Thu, 1 Jan 1970 00:00:00 +0000\n", "implausible-date"),
        (b"From: a@example.org\nDate: Sun, 31 Dec 1989 23:59:59 +0000\n", "implausible-date"),
        (b"From: a@example.org\nDate: Thu, 1 Jan 2099 00:00:00 +0000\n", "implausible-date"),
        (b"From: a@example.org\nDate: Mon, 3 Jun 2024 12:00:00 +0000\n", "implausible-date"),
        (b"Date: Mon, 4 Mar 2024 10:00:00 +0000\nTo: b@example.org\n", "no-sender"),
        (b"From: MAILER DAEMON <>\nDate: Mon, 4 Mar 2024 10:00:00 +0000\n", "no-sender"),
        (b"From: undisclosed:;\nDate: Mon, 4 Mar 2024 10:00:00 +0000\n", "no-sender"),
        (b"\x00\x01\x02 binary junk without any field \xff\xfe", "bad-header"),
        (b"", "bad-header"),
        (b"\n\nFrom: a@example.org\n", "bad-header"),
    ],
)
def test_unusable_messages_raise_malformed_input(header: bytes, reason: str) -> None:
    assert reason_of(header) == reason


def test_future_dates_within_two_days_are_accepted() -> None:
    meta = parse(b"From: a@example.org\nDate: Sun, 2 Jun 2024 23:00:00 +0000\n")
    assert meta.date == datetime(2024, 6, 2, 23, tzinfo=UTC)


def test_sender_header_stands_in_for_an_unusable_from() -> None:
    raw = b"From: Team\nSender: real@example.org\nDate: Mon, 4 Mar 2024 10:00:00 +0000\n"
    assert parse(raw).sender == (Person("real@example.org", None),)


def test_header_block_over_one_megabyte_is_too_large() -> None:
    filler = b"".join(b"X-Filler-%d: %s\n" % (i, b"x" * 70) for i in range(26_000))
    raw = b"From: a@example.org\nDate: Mon, 4 Mar 2024 10:00:00 +0000\n" + filler
    assert len(raw) > 2_000_000
    assert reason_of(raw) == "too-large"
    assert reason_of(raw + b"\nbody") == "too-large"


def test_a_large_body_does_not_matter() -> None:
    raw = b"From: a@example.org\nDate: Mon, 4 Mar 2024 10:00:00 +0000\n\n" + b"y" * 5_000_000
    assert parse(raw).sender == (Person("a@example.org", None),)


def test_message_ids_without_brackets_and_missing() -> None:
    base = b"From: a@example.org\nDate: Mon, 4 Mar 2024 10:00:00 +0000\n"
    assert parse(base).message_id is None
    assert parse(base + b"Message-ID: bare@example.org\n").message_id == "bare@example.org"
    assert parse(base + b"Message-ID: <>\n").message_id is None
    assert parse(base + b"Message-ID: <long\n id@example.org>\n").message_id == "longid@example.org"
    refs = parse(base + b"References: a@x b@x\nIn-Reply-To: <c@x> (comment)\n")
    assert refs.references == ("a@x", "b@x")
    assert refs.in_reply_to == "c@x"


def test_nul_and_control_bytes_never_reach_the_meta() -> None:
    raw = (
        b"From: A\x00nn <a@example.org>\nSubject: hi\x00 there\x07\n"
        b"Date: Mon, 4 Mar 2024 10:00:00 +0000\n"
    )
    meta = parse(raw)
    assert meta.sender == (Person("a@example.org", "Ann"),)
    assert meta.subject == "hi there"


def test_sample_rfc2047_names() -> None:
    meta = parse((DATA / "rfc2047_names.eml").read_bytes())
    assert meta.sender == (Person("joerg.mueller@example.de", "Jörg Müller"),)
    assert meta.to == (
        Person("rene@example.fr", "René Dupont"),
        Person("zoe@example.org", "Zoë Quinn"),
    )
    assert meta.cc == (Person("mystery@example.com", "Mystery"),)
    assert meta.subject == "Café tomorrow?"
    assert meta.date == datetime(2024, 3, 5, 8, tzinfo=UTC)


def test_sample_group_syntax() -> None:
    meta = parse((DATA / "group_syntax.eml").read_bytes())
    assert [p.address for p in meta.to] == [
        "bob@example.net",
        "carol@example.com",
        "dave@example.org",
    ]
    assert meta.to[1].name == "Carol C."
    assert meta.cc == ()


def test_sample_undisclosed_recipients() -> None:
    meta = parse((DATA / "undisclosed_recipients.eml").read_bytes())
    assert meta.to == ()
    assert meta.sender == (Person("bob@example.net", "Bob Example"),)


def test_sample_eight_bit_headers_are_decoded_leniently() -> None:
    meta = parse((DATA / "eight_bit_headers.eml").read_bytes())
    assert meta.sender == (Person("jose@example.es", "José Núñez"),)  # Latin-1 line
    assert meta.subject == "Grüße aus Köln"  # UTF-8 line of the same message
    assert meta.message_id == "8bit-1@example.es"


def test_sample_missing_date() -> None:
    assert reason_of((DATA / "missing_date.eml").read_bytes()) == "no-date"


def test_sample_gmail_plus_and_dots() -> None:
    meta = parse((DATA / "gmail_plus_dots.eml").read_bytes())
    assert meta.sender == (Person("johnsmith@gmail.com", "John Smith"),)
    assert [p.address for p in meta.to] == ["me@fastmail.com", "jane+work@corp.example"]


def test_parse_rate_is_not_catastrophic() -> None:
    # The real target (well over 20,000/s for ingest's 5,000 messages/s) is measured on a
    # quiet machine; this only catches a regression by an order of magnitude (e.g. a switch
    # to email.policy.default), with room for a busy CI runner.
    blocks = [TYPICAL.replace(b"CAF123", b"id%d" % i) for i in range(2000)]
    start = time.process_time()
    for block in blocks:
        parse_headers(block, "x", now=NOW)
    rate = len(blocks) / max(time.process_time() - start, 1e-9)
    assert rate > 2000
