"""Addresses: normalise, parse header address lists, owner identities, organisations.

Everything here is pure and never raises on bad input: a mailbox full of odd headers must not
stop detection, so unusable addresses become None (or are left out of a tuple).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.header import decode_header
from email.utils import getaddresses
from functools import lru_cache

from keepwarm.config.schema import AccountConfig, Config
from keepwarm.model import Person

# Gmail ignores dots in the local part and everything after "+"; googlemail.com is the same
# mailbox under its old (German/UK) name.
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})

# Providers documented to deliver "user+tag@" to "user@". Elsewhere "+" may be a real part of a
# distinct mailbox (a company server need not treat it as a delimiter), so tags are kept there:
# wrongly merging two people is worse than failing to merge one person's tagged variants, which
# the user can still do with a contacts alias.
SUBADDRESS_DOMAINS = frozenset(
    {
        "fastmail.com", "fastmail.fm", "outlook.com", "hotmail.com", "live.com", "msn.com",
        "icloud.com", "me.com", "mac.com", "protonmail.com", "protonmail.ch", "proton.me",
        "pm.me", "yandex.ru", "yandex.com", "zoho.com", "hey.com",
    }
)  # fmt: skip

# Consumer mailbox domains: their users belong to no organisation.
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
        "passport.com", "icloud.com", "me.com", "mac.com", "aol.com", "aim.com", "gmx.com",
        "gmx.net", "gmx.de", "gmx.at", "gmx.ch", "web.de", "t-online.de", "freenet.de",
        "protonmail.com", "protonmail.ch", "proton.me", "pm.me", "fastmail.com", "fastmail.fm",
        "yandex.ru", "yandex.com", "ya.ru", "mail.ru", "inbox.ru", "list.ru", "bk.ru",
        "rambler.ru", "qq.com", "foxmail.com", "163.com", "126.com", "yeah.net", "sina.com",
        "sohu.com", "naver.com", "daum.net", "hanmail.net", "zoho.com", "tutanota.com",
        "tuta.io", "hey.com", "mail.com", "email.com", "ymail.com", "rocketmail.com",
        "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "libero.it", "virgilio.it",
        "seznam.cz", "wp.pl", "o2.pl", "interia.pl", "btinternet.com", "comcast.net",
        "verizon.net", "att.net", "sbcglobal.net", "bigpond.com", "rediffmail.com",
    }
)  # fmt: skip

# Brands whose every country domain is free mail (yahoo.co.uk, hotmail.fr, outlook.de, ...).
FREE_MAIL_BRANDS = frozenset({"yahoo", "hotmail", "outlook", "live", "gmx", "yandex", "aol"})

# Two-label public suffixes under which organisations register (a small offline list; the full
# Public Suffix List would be a dependency and a download for a marginal gain).
TWO_LEVEL_SUFFIXES = frozenset(
    {
        "co.uk", "org.uk", "ac.uk", "gov.uk", "ltd.uk", "plc.uk", "me.uk", "net.uk", "nhs.uk",
        "com.au", "net.au", "org.au", "edu.au", "gov.au", "co.nz", "org.nz", "ac.nz",
        "govt.nz", "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp", "co.kr", "or.kr", "ac.kr",
        "com.br", "net.br", "org.br", "gov.br", "com.cn", "net.cn", "org.cn", "edu.cn",
        "gov.cn", "com.hk", "org.hk", "edu.hk", "com.sg", "edu.sg", "gov.sg", "com.tw",
        "edu.tw", "co.in", "net.in", "org.in", "ac.in", "gov.in", "co.za", "org.za", "ac.za",
        "com.mx", "com.ar", "co.il", "ac.il", "com.tr", "com.my", "co.id", "co.th", "ac.th",
        "com.ph", "com.vn", "com.ua", "com.pl", "co.at", "ac.at", "gv.at", "com.es",
        "com.pt", "com.sa", "com.eg", "com.ng", "co.ke",
    }
)  # fmt: skip

# A local part has no whitespace, controls or structural specials (quoted local parts are valid
# RFC 5322 but essentially never seen between people); a domain has at least two labels of
# letters in any script (IDN), digits and hyphens, and may end in the root's dot.
_ADDRESS = re.compile(
    r"([^\s\x00-\x1f\x7f<>()\[\],;:\\\"@]{1,64})@((?:(?:[^\W_]|-)+\.)+(?:[^\W_]|-)+)\.?"
)


# Python's security releases add `strict` to getaddresses (refuses ambiguous headers such as
# `alice@a.org <bob@b.org>` instead of guessing); use it wherever it exists.
_STRICT: dict[str, bool] = (
    {"strict": True} if "strict" in inspect.signature(getaddresses).parameters else {}
)


@lru_cache(maxsize=65536)
def normalise(address: str) -> str | None:
    """The canonical form of an address, or None when it is not a plausible `local@domain`.

    Lower-cases the whole address (mailbox case-sensitivity is theoretical), maps googlemail.com
    to gmail.com and drops Gmail's dots and "+tag"s, and drops "+tag"s only for
    `SUBADDRESS_DOMAINS`, the providers known to deliver them to the untagged mailbox.
    """
    text = address.strip().lower()
    if text[:1] == "<":
        text = text.strip("<>").strip()
    found = _ADDRESS.fullmatch(text)
    if found is None or len(text) > 254:
        return None
    local, domain = found.groups()
    if domain in GMAIL_DOMAINS:
        domain = "gmail.com"
        local = local.partition("+")[0].replace(".", "")
    elif domain in SUBADDRESS_DOMAINS:
        local = local.partition("+")[0]
    if not local or local[0] == "." or local[-1] == ".":
        return None
    return f"{local}@{domain}"


MAX_TEXT_CHARS = 4000
_CONTROLS = dict.fromkeys([*range(32), 127], " ")


def decode_text(raw: str) -> str:
    """Header text with RFC 2047 encoded words decoded and whitespace collapsed. Never raises:
    a word in an unknown or wrong charset is read as UTF-8, else Latin-1."""
    # Nothing shown needs more; decode_header is slow on thousands of encoded words.
    text = raw = raw[:MAX_TEXT_CHARS]
    if "=?" in text:
        try:
            text = "".join(_decode_chunk(chunk, charset) for chunk, charset in decode_header(raw))
        except Exception:
            # Broken base64 and the parser's own errors (HeaderParseError is no ValueError):
            # the raw text is still informative.
            text = raw
        # An encoded word may carry bytes no str can be stored as (lone surrogates).
        text = text.encode("utf-8", "replace").decode("utf-8")
    if not text.isprintable():
        text = text.translate(_CONTROLS)
    return " ".join(text.split())


def _decode_chunk(chunk: bytes | str, charset: str | None) -> str:
    if isinstance(chunk, str):
        return chunk
    # decode_header hands back the unencoded stretches as raw-unicode-escape bytes.
    for candidate in (charset or "raw-unicode-escape", "utf-8"):
        try:
            return chunk.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return chunk.decode("latin-1")


def decode_name(raw: str) -> str | None:
    """A display name: RFC 2047 words decoded, whitespace collapsed, surrounding quotes removed.

    Returns None for an empty name. Never raises.
    """
    text = decode_text(raw).strip("\"' ").strip()
    return text or None


# The common shapes `a@b.c`, `Name <a@b.c>`, `"Doe, Jane" <a@b.c>` and `<a@b.c>` are read
# here, one regex match per mailbox: the stdlib parser is correct but costs tens of
# microseconds per header, and a mailbox has millions of them. Comments, groups and anything
# else go to getaddresses. An unquoted name may not contain "@": `a@b.c <d@e.f>` is ambiguous.
# No two quantifiers here can share a character, so a failing match cannot backtrack
# exponentially (a header can be a megabyte of hostile text).
_ADDR = r"[^<>\s\"(),;:\\]+"
_ELEMENT = re.compile(
    r"\s*(?:(?:"
    r'(?:"((?:[^"\\]|\\.)*)"\s*|((?:[^<>@",;:()\\\s][^<>@",;:()\\]*)?))<(' + _ADDR + r")>"
    r"|(" + _ADDR + r"))\s*)?(?:,|\Z)"
)
_ESCAPE = re.compile(r"\\(.)")
MAX_LIST_CHARS = 100_000


def _simple_pairs(raw: str) -> list[tuple[str, str]] | None:
    """(name, address) pairs of a header in the common shapes, or None for anything else."""
    pairs: list[tuple[str, str]] = []
    position, end = 0, len(raw)
    while position < end:
        found = _ELEMENT.match(raw, position)
        if found is None:
            return None
        quoted, phrase, angle, bare = found.groups()
        if angle or bare:
            name = _ESCAPE.sub(r"\1", quoted) if quoted and "\\" in quoted else quoted or phrase
            pairs.append((name or "", angle or bare))
        position = found.end()
    return pairs


# Cached: the same From and To values recur across a mailbox (every message from one person,
# the owner's own address in every To), and the result is immutable.
@lru_cache(maxsize=32768)
def parse_people(raw: str) -> tuple[Person, ...]:
    """The mailboxes of an address-list header value, normalised, with decoded display names.

    Group names and empty groups (`undisclosed-recipients:;`) yield nobody; unusable addresses
    are left out; duplicates keep their first occurrence. Never raises.
    """
    if not raw:
        return ()
    if len(raw) > MAX_LIST_CHARS:
        # Thousands of people are far past any group limit already; reading the rest would
        # only give hostile input more time (the stdlib parser is slow on megabytes of junk).
        raw = raw[: raw.rfind(",", 0, MAX_LIST_CHARS) + 1 or MAX_LIST_CHARS]
    pairs = _simple_pairs(raw)
    if pairs is not None:
        return _people(pairs)
    try:
        pairs = getaddresses([raw], **_STRICT)
    except Exception:
        # The stdlib parser has raised assorted errors on junk over the versions.
        return ()
    return _people(pairs)


def _people(pairs: Iterable[tuple[str, str]]) -> tuple[Person, ...]:
    seen: set[str] = set()
    people: list[Person] = []
    for name, address in pairs:
        normal = normalise(address) if address else None
        if normal is None or normal in seen:
            continue
        seen.add(normal)
        people.append(Person(normal, decode_name(name) if name else None))
    return tuple(people)


@dataclass(frozen=True, slots=True)
class Identities:
    """The owner's addresses, normalised: config owner + accounts' own + discovered (send-as)."""

    addresses: frozenset[str]

    @classmethod
    def of(cls, addresses: Iterable[str]) -> Identities:
        """Identities from raw addresses; unusable ones are ignored."""
        normal = (normalise(address) for address in addresses)
        return cls(frozenset(address for address in normal if address is not None))

    @classmethod
    def from_config(
        cls, config: Config, account: AccountConfig | None = None, discovered: Iterable[str] = ()
    ) -> Identities:
        """Every configured owner address, the account's own, and those a source revealed."""
        extra = account.addresses if account is not None else ()
        return cls.of([*config.owner_addresses(), *extra, *discovered])

    def is_owner(self, address: str) -> bool:
        """True when `address` (raw or normalised) is one of the owner's."""
        normal = normalise(address)
        return normal is not None and normal in self.addresses


def domain_of(address: str) -> str | None:
    """The lower-cased domain after the last "@" (or of a bare "@domain"), or None."""
    _, at, domain = address.strip().strip("<>").rpartition("@")
    domain = domain.strip().rstrip(".").lower()
    return domain if at and domain else None


def organisation_of(address: str, extra_free_mail: Iterable[str] = ()) -> str | None:
    """The organisation's registrable domain (`a@mail.example.co.uk` -> `example.co.uk`).

    None for free-mail domains (built in, plus `extra_free_mail`, e.g. config
    detect.free_mail_domains, with or without a leading "@") and for unusable addresses.
    """
    normal = normalise(address)
    domain = domain_of(normal) if normal is not None else None
    if domain is None:
        return None
    labels = domain.split(".")
    keep = 3 if ".".join(labels[-2:]) in TWO_LEVEL_SUFFIXES else 2
    if len(labels) < keep:
        return None
    registrable = ".".join(labels[-keep:])
    extra = {item.strip().lstrip("@").lower() for item in extra_free_mail}
    if (
        registrable in FREE_MAIL_DOMAINS
        or labels[-keep] in FREE_MAIL_BRANDS
        or registrable in extra
        or domain in extra
    ):
        return None
    return registrable


def matches(address: str, pattern: str) -> bool:
    """True when `address` is `pattern`, or, for a pattern "@domain" (or a bare domain),
    when its domain is that domain or a subdomain of it. Addresses compare normalised."""
    pattern = pattern.strip()
    if "@" not in pattern or pattern.startswith("@"):
        want = pattern.lstrip("@").rstrip(".").lower()
        domain = domain_of(normalise(address) or address)
        return bool(want) and domain is not None and (domain == want or domain.endswith("." + want))
    normal = normalise(address)
    return normal is not None and normal == normalise(pattern)
