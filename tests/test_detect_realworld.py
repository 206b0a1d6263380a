"""Real and hostile input: CPython's email test corpus, and generated header blocks.

The corpus is found through $KEEPWARM_EMAIL_SAMPLES, else the Debian package
libpython3.11-testsuite (/usr/lib/python3.11/test/test_email/data), else the running
interpreter's own test suite. Without it the test fails: a skipped test would hide that the
parser was never tried on real mail.
"""

from __future__ import annotations

import os
import random
import sysconfig
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keepwarm.detect.automated import automated_reason, noreply_pattern, role_locals
from keepwarm.detect.headers import parse_headers
from keepwarm.errors import MalformedInput
from keepwarm.model import MessageMeta, Person

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def corpus_dir() -> Path:
    candidates = [
        os.environ.get("KEEPWARM_EMAIL_SAMPLES"),
        "/usr/lib/python3.11/test/test_email/data",
        str(Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"),
    ]
    for candidate in candidates:
        if candidate and any(Path(candidate).glob("msg_*.txt")):
            return Path(candidate)
    pytest.fail(
        "CPython's email test messages were not found: install libpython3.11-testsuite "
        "(apt-get install libpython3.11-testsuite) or set KEEPWARM_EMAIL_SAMPLES to a folder "
        "of msg_*.txt files"
    )


def parse_sample(name: str) -> MessageMeta:
    return parse_headers((corpus_dir() / name).read_bytes(), name, now=NOW)


def test_every_corpus_message_parses_or_is_malformed() -> None:
    samples = sorted(corpus_dir().glob("msg_*.txt"))
    assert len(samples) >= 40
    results = [parse_or_reason(sample.read_bytes(), sample.name) for sample in samples]
    reasons = {result for result in results if isinstance(result, str)}
    assert reasons <= {"no-date", "bad-date", "implausible-date", "no-sender", "bad-header"}
    parsed = [result for result in results if isinstance(result, MessageMeta)]
    assert len(parsed) >= 20  # most of the corpus is ordinary mail
    for meta in parsed:
        assert meta.date is not None
        assert meta.date.tzinfo is UTC
        assert meta.sender


def test_known_facts_of_corpus_messages() -> None:
    first = parse_sample("msg_01.txt")
    assert first.message_id == "15090.61304.110929.45684@aaa.zzz.org"
    assert first.sender == (Person("bbb@ddd.com", "John X. Doe"),)  # name from a comment
    assert first.to == (Person("bbb@zzz.org", None),)
    assert first.date == datetime(2001, 5, 4, 18, 5, 44, tzinfo=UTC)
    assert first.subject == "This is a test message"

    assert [p.address for p in parse_sample("msg_20.txt").cc] == [
        "ccc@zzz.org",
        "ddd@zzz.org",
        "eee@zzz.org",
    ]
    assert parse_sample("msg_36.txt").to == ()  # "To: IETF-Announce:;", an empty group

    def reason(meta: MessageMeta) -> str | None:
        return automated_reason(meta, noreply=noreply_pattern(), role_locals=role_locals())

    assert reason(parse_sample("msg_16.txt")) == "mailing-list"  # bounce relayed by Mailman
    assert reason(parse_sample("msg_25.txt")) == "auto-reply"  # Auto-Submitted DSN
    assert reason(parse_sample("msg_32.txt")) == "bulk"  # Precedence: bulk
    assert reason(first) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("msg_05.txt", "no-date"),  # a Date line in the body does not count
        ("msg_19.txt", "bad-header"),  # a digest body with no header at all
        ("msg_43.txt", "no-sender"),  # "From: MAILER DAEMON <>"
    ],
)
def test_corpus_messages_that_cannot_be_used(name: str, why: str) -> None:
    with pytest.raises(MalformedInput) as caught:
        parse_sample(name)
    assert caught.value.reason == why


# --- generated input ----------------------------------------------------------------------

_FIELDS = ["From", "To", "Cc", "Bcc", "Date", "Subject", "Message-ID", "References",
           "Reply-To", "Sender", "List-Id", "Content-Type", "Received", "X-Junk"]  # fmt: skip
_CODECS = ["utf-8", "latin-1", "cp1252", "utf-16", "koi8-r", "shift_jis", "gb2312"]
_text = st.text(max_size=80)
_mailbox = st.builds(
    lambda name, local, domain: formataddr((name, f"{local}@{domain}")),
    st.text(max_size=15),
    st.from_regex(r"[A-Za-z0-9._+-]{1,12}", fullmatch=True),
    st.from_regex(r"[a-z0-9-]{1,8}\.(com|org|co\.uk)", fullmatch=True),
)
_address_value = st.one_of(
    st.lists(_mailbox, max_size=5).map(", ".join),
    st.lists(_mailbox, max_size=3).map(lambda ms: "Group: " + ", ".join(ms) + ";"),
    st.just("undisclosed-recipients:;"),
    _text,
)
_date_value = st.one_of(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)).map(
        lambda d: format_datetime(d.replace(tzinfo=UTC))
    ),
    st.sampled_from(["Thu, 1 Jan 1970 00:00:00 +0000", "Fri, 1 Jan 2099 00:00:00 +0000",
                     "Mon, 31 Feb 2024 10:00:00 +0000", "31 Dec 9999 23:59:59 -1200",
                     "1 Jan 0001 00:00:00 +1400", "Tue, 12 Mar 2024 99:99:99 +9999", ""]),
    _text,
)  # fmt: skip


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 12))):
        name = draw(st.sampled_from(_FIELDS))
        if name in ("From", "To", "Cc", "Bcc", "Reply-To", "Sender"):
            value = draw(_address_value)
        elif name == "Date":
            value = draw(_date_value)
        elif draw(st.booleans()):
            charset = draw(st.sampled_from(["utf-8", "iso-8859-1"]))
            text = draw(_text).encode(charset, "replace").decode(charset)
            value = Header(text, charset).encode()
        else:
            value = draw(_text)
        codec = draw(st.sampled_from(_CODECS))
        lines.append(name.encode() + b": " + value.encode(codec, "replace"))
    if draw(st.booleans()):
        lines.append(draw(st.binary(max_size=200)))
    random.Random(draw(st.integers())).shuffle(lines)
    return b"\n".join(lines) + draw(st.sampled_from([b"", b"\n\nbody", b"\r\n\r\n"]))


def parse_or_reason(raw: bytes, source_id: str = "g") -> MessageMeta | str:
    try:
        return parse_headers(raw, source_id, now=NOW)
    except MalformedInput as exc:
        return exc.reason


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(header_blocks(), st.binary(max_size=2000)))
def test_generated_input_only_ever_raises_malformed_input(raw: bytes) -> None:
    result = parse_or_reason(raw)
    if isinstance(result, MessageMeta):
        assert result.date is not None
        assert datetime(1990, 1, 1, tzinfo=UTC) <= result.date
        assert result.sender
        for person in (*result.sender, *result.to, *result.cc, *result.bcc):
            assert "@" in person.address
            assert person.address == person.address.lower()
            person.address.encode("utf-8")  # storable: no lone surrogates
            assert "\x00" not in (person.name or "")


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 40), st.sampled_from([b"To", b"Subject", b"References", b"X-Big"]))
def test_huge_headers(kilobytes: int, name: bytes) -> None:
    value = b", ".join(b"p%d@example.org" % i for i in range(kilobytes * 60))
    raw = b"From: a@example.org\nDate: Mon, 4 Mar 2024 10:00:00 +0000\n" + name + b": " + value
    result = parse_or_reason(raw)
    assert isinstance(result, MessageMeta)
    if name == b"To":
        assert len(result.to) == kilobytes * 60


GOOD = (
    b"From: Good Person <good@example.org>\nTo: me@example.com\n"
    b"Date: Mon, 4 Mar 2024 10:00:00 +0000\nMessage-ID: <good@example.org>\n\nbody\n"
)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(header_blocks(), st.binary(max_size=300)), max_size=8), st.data())
def test_a_good_message_is_never_lost_among_bad_ones(bad: list[bytes], data: st.DataObject) -> None:
    batch = list(bad)
    batch.insert(data.draw(st.integers(0, len(batch))), GOOD)
    results = [parse_or_reason(raw, str(i)) for i, raw in enumerate(batch)]
    good = [r for r in results if isinstance(r, MessageMeta) and r.message_id == "good@example.org"]
    assert good
    assert good[0].sender == (Person("good@example.org", "Good Person"),)
    assert good[0].date == datetime(2024, 3, 4, 10, tzinfo=UTC)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=80), _text.map(str.encode)), max_size=6))
def test_junk_fields_do_not_hide_a_good_header(junk: list[bytes]) -> None:
    # Junk lines (unknown fields, stray bytes) before the real fields change nothing;
    # a junk line that is itself a blank line or a continuation is the one legitimate change.
    cleaned = [
        b"X-Junk-%d: " % i + line.replace(b"\n", b" ").replace(b"\r", b" ")
        for i, line in enumerate(junk)
    ]
    raw = b"\n".join(cleaned) + b"\n" + GOOD if cleaned else GOOD
    result = parse_or_reason(raw)
    assert isinstance(result, MessageMeta)
    assert result.message_id == "good@example.org"
    assert result.sender == (Person("good@example.org", "Good Person"),)
