"""A small vCard reader: who each card names and their email addresses. Pure.

Covers what address books export: vCard 2.1 (bare parameters, QUOTED-PRINTABLE with soft line
breaks, CHARSET), 3.0 and 4.0 (folded lines, TYPE=pref / PREF=n, escaped text, item groups).
Everything else on a card is ignored; nothing here raises on odd input.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re

Person = tuple[str | None, tuple[str, ...]]

# A content line: optional group ("item1."), the property name, parameters, ":" and the value.
# Parameter values may be quoted and contain ":" or ";", hence the quoted alternative.
_LINE = re.compile(
    r"""^(?:[A-Za-z0-9-]+\.)?            # group
    (?P<name>[A-Za-z0-9-]+)
    (?P<params>(?:;(?:"[^"]*"|[^";:])*)*)
    :(?P<value>.*)$""",
    re.DOTALL | re.VERBOSE,
)
_PARAM = re.compile(r""";((?:"[^"]*"|[^";])*)""")
_UNESCAPED_SEMICOLON = re.compile(r"(?<!\\);")


def read_vcards(text: str) -> list[Person]:
    """(display name or None, email addresses) for every card with at least one address.

    The name is FN, else built from N; addresses are in preference order (PREF first), then
    as written, without duplicates. Addresses are returned as written: callers normalise.
    """
    people: list[Person] = []
    card: _Card | None = None
    for line in _content_lines(text):
        match = _LINE.match(line)
        if match is None:
            continue
        name = match["name"].upper()
        params = _params(match["params"])
        value = match["value"]
        if name == "BEGIN" and value.strip().upper() == "VCARD":
            card = _Card()
        elif card is None:
            continue
        elif name == "END" and value.strip().upper() == "VCARD":
            if card.emails:
                people.append(card.person())
            card = None
        elif name == "FN":
            card.fn = _text(_decode(value, params)) or card.fn
        elif name == "N":
            card.n = _structured_name(_decode(value, params))
        elif name == "EMAIL":
            card.add_email(_decode(value, params), params)
    return people


class _Card:
    """What a card has said so far."""

    def __init__(self) -> None:
        self.fn: str | None = None
        self.n: str | None = None
        # (preference rank, position, address); lower ranks are preferred.
        self.emails: list[tuple[int, int, str]] = []

    def add_email(self, value: str, params: dict[str, list[str]]) -> None:
        address = value.strip()
        if address.lower().startswith("mailto:"):
            address = address[len("mailto:") :].strip()
        if "@" not in address:
            return
        if any(existing.lower() == address.lower() for _, _, existing in self.emails):
            return
        self.emails.append((_preference(params), len(self.emails), address))

    def person(self) -> Person:
        ordered = tuple(address for _, _, address in sorted(self.emails))
        return (self.fn or self.n, ordered)


def _content_lines(text: str) -> list[str]:
    """Logical lines: folded lines joined, and vCard 2.1 quoted-printable soft breaks undone."""
    lines: list[str] = []
    for raw in re.split(r"\r\n|\r|\n", text):
        if lines and lines[-1].endswith("=") and _is_quoted_printable(lines[-1]):
            # Quoted-printable ends a line with "=" when the value goes on; what follows,
            # leading blanks included, is part of the value.
            lines[-1] = lines[-1][:-1] + raw
        elif raw[:1] in (" ", "\t") and lines:
            # RFC 6350 3.2: a line break followed by one space or tab continues the line.
            lines[-1] += raw[1:]
        elif raw.strip():
            lines.append(raw)
    return lines


def _is_quoted_printable(line: str) -> bool:
    head = line.split(":", 1)[0].upper()
    return "QUOTED-PRINTABLE" in head


def _params(raw: str) -> dict[str, list[str]]:
    """Parameters by upper-case name; a vCard 2.1 bare parameter ("INTERNET") counts as TYPE."""
    found: dict[str, list[str]] = {}
    for item in _PARAM.findall(raw):
        key, eq, value = item.partition("=")
        if not eq:
            key, value = "TYPE", key
        values = [v.strip().strip('"') for v in value.split(",")]
        found.setdefault(key.strip().upper(), []).extend(v for v in values if v)
    return found


def _preference(params: dict[str, list[str]]) -> int:
    """Lower is preferred: vCard 4 PREF=1..100, TYPE=pref (3.0) or bare PREF (2.1) as 1."""
    for value in params.get("PREF", []):
        if value.isdigit():
            return int(value)
    if any(value.upper() == "PREF" for value in params.get("TYPE", [])):
        return 1
    return 101


def _decode(value: str, params: dict[str, list[str]]) -> str:
    """The value with its transfer encoding (2.1 QUOTED-PRINTABLE, BASE64) and CHARSET undone."""
    encodings = {v.upper() for v in params.get("ENCODING", []) + params.get("TYPE", [])}
    charset = (params.get("CHARSET") or ["utf-8"])[0]
    if "QUOTED-PRINTABLE" in encodings:
        raw = quopri.decodestring(value.encode("latin-1", "replace"))
    elif encodings & {"B", "BASE64"}:
        try:
            raw = base64.b64decode(value, validate=False)
        except (binascii.Error, ValueError):
            return value
    else:
        return value
    try:
        return raw.decode(charset, "replace")
    except LookupError:  # an unknown charset name
        return raw.decode("utf-8", "replace")


def _text(value: str) -> str | None:
    r"""A TEXT value unescaped (\, \; \\ \n), whitespace collapsed; None when empty."""
    out = re.sub(r"\\([\\,;nN])", lambda m: " " if m[1] in "nN" else m[1], value)
    out = " ".join(out.split())
    return out or None


def _structured_name(value: str) -> str | None:
    """N (family;given;additional;prefixes;suffixes) in reading order: "Dr Ada M Lovelace"."""
    parts = [_text(part) or "" for part in _UNESCAPED_SEMICOLON.split(value)]
    parts += [""] * (5 - len(parts))
    family, given, additional, prefixes, suffixes = parts[:5]
    return _text(" ".join((prefixes, given, additional, family, suffixes)))
