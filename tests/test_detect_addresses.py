"""Addresses: normalising, display names, address lists, owner identities, organisations."""

from __future__ import annotations

import time
from email.utils import formataddr

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keepwarm.config.schema import AccountConfig, Config, OwnerConfig
from keepwarm.detect.addresses import (
    Identities,
    decode_name,
    matches,
    normalise,
    organisation_of,
    parse_people,
)
from keepwarm.model import Person


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Alice@Example.ORG ", "alice@example.org"),
        ("<bob@example.net>", "bob@example.net"),
        ("John.Smith+news@GoogleMail.com", "johnsmith@gmail.com"),
        ("j.o.h.n.smith@gmail.com", "johnsmith@gmail.com"),
        ("me+keepwarm@fastmail.com", "me@fastmail.com"),
        ("me+x@Outlook.com", "me@outlook.com"),
        ("me+x@hotmail.com", "me@hotmail.com"),
        ("me+x@icloud.com", "me@icloud.com"),
        ("me+x@proton.me", "me@proton.me"),
        # Elsewhere "+" may be part of a distinct mailbox: kept.
        ("jane+work@corp.example", "jane+work@corp.example"),
        # Dots only mean nothing at Gmail.
        ("first.last@example.com", "first.last@example.com"),
        ("user@Bücher.Example", "user@bücher.example"),
        ("user@example.com.", "user@example.com"),
    ],
)
def test_normalise_canonical_forms(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "no-at-sign",
        "@example.com",
        "user@",
        "user@localhost",
        "two words@example.com",
        "user@exa mple.com",
        "user@example..com",
        "user@[192.0.2.1]",
        "user@under_score.com",
        ".dot@example.com",
        "+only-tag@gmail.com",
        "a@b@c.com",
        "x" * 65 + "@example.com",
    ],
)
def test_normalise_rejects_implausible_addresses(raw: str) -> None:
    assert normalise(raw) is None


def test_decode_name_decodes_rfc2047_and_tidies() -> None:
    assert decode_name("=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?=") == "Jörg Müller"
    assert decode_name("=?iso-8859-1?q?Ren=E9_Dupont?=") == "René Dupont"
    assert decode_name('"=?utf-8?q?Zo=C3=AB?= Quinn"') == "Zoë Quinn"
    assert decode_name('  "Doe,   John"\t ') == "Doe, John"
    assert decode_name("'Ann'") == "Ann"
    assert decode_name('""') is None
    assert decode_name("   ") is None


@pytest.mark.parametrize(
    "raw",
    [
        "=?x-no-such-charset?q?Myst=C3=A9ry?=",
        "=?utf-8?b?!!!not base64?=",
        "=?utf-8?q?broken",
        "=?unknown-8bit?q?x=FFy?=",
        "=?utf-8?q?nul=00byte?=",
        "=?utf-16?b?2D0=?=",  # a lone surrogate
    ],
)
def test_decode_name_never_raises_and_returns_storable_text(raw: str) -> None:
    name = decode_name(raw)
    assert name is None or (name.encode("utf-8") and "\x00" not in name)


def test_decode_name_reads_unknown_charset_as_utf8() -> None:
    assert decode_name("=?x-no-such-charset?q?Myst=C3=A9ry?=") == "Mystéry"


def test_parse_people_plain_and_quoted() -> None:
    people = parse_people('"Doe, Jane" <Jane@Example.com>, bob@example.net, <carol@example.org>')
    assert people == (
        Person("jane@example.com", "Doe, Jane"),
        Person("bob@example.net", None),
        Person("carol@example.org", None),
    )


def test_parse_people_groups_and_comments() -> None:
    people = parse_people(
        'Friends: bob@example.net, "Carol C." <carol@example.com>;, dave@example.org (Dave D.)'
    )
    assert [p.address for p in people] == [
        "bob@example.net",
        "carol@example.com",
        "dave@example.org",
    ]
    assert people[2].name == "Dave D."
    assert parse_people("undisclosed-recipients:;") == ()
    assert parse_people("Empty Group:;") == ()


def test_parse_people_skips_junk_and_duplicates() -> None:
    people = parse_people("not an address, ALICE@example.org, alice@example.org, , bob@localhost")
    assert people == (Person("alice@example.org", None),)
    assert parse_people("") == ()


def test_parse_people_normalises_gmail_and_decodes_names() -> None:
    people = parse_people("=?utf-8?q?Zo=C3=AB?= <Zoe.Q+lists@gmail.com>")
    assert people == (Person("zoeq@gmail.com", "Zoë"),)


def test_parse_people_escaped_quotes_in_names() -> None:
    people = parse_people(r'"Robert \"Bob\" Jones" <bob@example.com>')
    assert people == (Person("bob@example.com", 'Robert "Bob" Jones'),)


_names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20
)
_locals = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,15}", fullmatch=True)
_domains = st.from_regex(r"[a-z0-9-]{1,10}\.(com|org|example|co\.uk)", fullmatch=True)


@given(st.lists(st.tuples(_names, _locals, _domains), max_size=6))
def test_parse_people_reads_what_formataddr_writes(entries: list[tuple[str, str, str]]) -> None:
    # Whatever fast path parse_people takes, it must agree with the standard way of writing
    # a header: every plausible address comes back once, in order.
    raw = ", ".join(formataddr((name, f"{local}@{domain}")) for name, local, domain in entries)
    expected: list[str] = []
    for _, local, domain in entries:
        normal = normalise(f"{local}@{domain}")
        if normal is not None and normal not in expected:
            expected.append(normal)
    assert [person.address for person in parse_people(raw)] == expected


def test_identities_from_config_account_and_discovered() -> None:
    config = Config(
        owner=OwnerConfig(addresses=("Me@Example.com",)),
        accounts=(AccountConfig(name="other", kind="imap", addresses=("me@work.example",)),),
    )
    account = AccountConfig(name="home", kind="gmail", addresses=("my.name@gmail.com",))
    identities = Identities.from_config(config, account, discovered=("alias@example.com", "junk"))
    assert identities.addresses == frozenset(
        {"me@example.com", "me@work.example", "myname@gmail.com", "alias@example.com"}
    )
    assert identities.is_owner("ME@example.com")
    assert identities.is_owner("My.Name+x@googlemail.com")
    assert not identities.is_owner("someone@example.com")
    assert not identities.is_owner("not an address")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("alice@example.org", "example.org"),
        ("alice@mail.eng.example.org", "example.org"),
        ("bob@example.co.uk", "example.co.uk"),
        ("bob@london.example.co.uk", "example.co.uk"),
        ("kim@example.com.au", "example.com.au"),
        ("taro@example.co.jp", "example.co.jp"),
        ("BOB@Example.ORG", "example.org"),
        ("x@gmail.com", None),
        ("x@googlemail.com", None),
        ("x@yahoo.co.uk", None),
        ("x@yahoo.fr", None),
        ("x@hotmail.de", None),
        ("x@web.de", None),
        ("x@qq.com", None),
        ("x@163.com", None),
        ("x@proton.me", None),
        ("x@co.uk", None),
        ("x@localhost", None),
        ("not an address", None),
    ],
)
def test_organisation_of(address: str, expected: str | None) -> None:
    assert organisation_of(address) == expected


def test_organisation_of_extra_free_mail() -> None:
    assert organisation_of("x@isp.example") == "isp.example"
    assert organisation_of("x@isp.example", ["isp.example"]) is None
    assert organisation_of("x@mail.isp.example", ["@ISP.example"]) is None


def test_matches_addresses_and_domains() -> None:
    assert matches("Alice@Example.org", "alice@example.org")
    assert matches("john.smith@googlemail.com", "JohnSmith@gmail.com")
    assert not matches("alice@example.org", "bob@example.org")
    assert matches("alice@example.org", "@example.org")
    assert matches("alice@eng.example.org", "@example.org")
    assert not matches("alice@badexample.org", "@example.org")
    assert not matches("alice@example.org.evil", "@example.org")
    assert matches("bob@gmail.com", "@googlemail.com") is False
    assert matches("bob@googlemail.com", "@gmail.com")
    assert not matches("garbage", "@example.org")
    assert not matches("alice@example.org", "@")


def test_hostile_address_lists_finish_quickly() -> None:
    # Shapes that make a naive address regex backtrack for hours; each must take well
    # under a second (the stdlib fallback included).
    hostile = [
        "a@b.co" + ",     a@b.co     " * 2000 + " x y",
        " " * 200_000 + "x(",
        "Name " * 50_000 + "x",
        '"' + "\\a" * 100_000,
        "<" * 200_000,
    ]
    for raw in hostile:
        start = time.process_time()
        parse_people(raw)
        assert time.process_time() - start < 1.0, raw[:40]
