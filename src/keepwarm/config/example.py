"""The commented example config, generated from the schema so it cannot drift from the code.

`config/keepwarm.example.toml` in the repository is this text; a test keeps them equal.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
import typing
from typing import Any

from keepwarm.config.schema import AccountConfig, Config

HEADER = """\
# keepwarm configuration (TOML).
#
# Every key is listed with its default, commented out: uncomment a line to change it.
# keepwarm reads the file given by --config, else $KEEPWARM_CONFIG, else
# $XDG_CONFIG_HOME/keepwarm/keepwarm.toml (~/.config/keepwarm/keepwarm.toml), else
# /etc/keepwarm/keepwarm.toml. Paths may start with ~. Every problem is reported at once with
# its key, e.g. `accounts[1].port: must be an integer, got "x"`.
#
# Generated from the schema by keepwarm.config.example.example_toml(); do not edit by hand.
"""

# Tables whose defaults are empty get an example line, since there is no default to show.
_TABLE_EXAMPLES = {
    "contacts.tiers": 'inner = ["partner@example.org", "@family.example"]',
    "contacts.tags": 'climbing = ["alex@example.net", "sam@example.com"]',
}

_ACCOUNT_EXAMPLES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("A local Maildir (mbox is the same with kind = \"mbox\" and a file path).", {
        "name": "home", "kind": "maildir", "path": "~/Maildir",
        "addresses": ("me@example.org",),
    }),
    ("IMAP, the password in a file only keepwarm can read (chmod 600).", {
        "name": "work", "kind": "imap", "host": "imap.example.org", "port": 993,
        "security": "tls", "username": "me", "password_file": "/etc/keepwarm/imap-password",
        "addresses": ("me@work.example.org",),
    }),
    ("An iCalendar feed: url (http, https, file) or path, not both.", {
        "name": "team-calendar", "kind": "ics",
        "url": "https://calendar.example.org/team.ics",
    }),
    ("Gmail: credentials_file is a google-auth authorized-user JSON "
     "(client_id, client_secret, refresh_token, token_uri).", {
        "name": "gmail", "kind": "gmail", "credentials_file": "~/.config/keepwarm/gmail.json",
    }),
    ("Outlook / Microsoft 365 mail over Microsoft Graph (outlook_calendar for the calendar).", {
        "name": "office", "kind": "outlook",
        "client_id": "00000000-0000-0000-0000-000000000000", "tenant": "organizations",
    }),
    ("CalDAV, the password printed by a command (an array: no shell is involved).", {
        "name": "calendar", "kind": "caldav", "url": "https://dav.example.org/calendars/me/",
        "username": "me", "password_command": ("pass", "show", "keepwarm/caldav"),
    }),
)  # fmt: skip


def example_toml() -> str:
    """The example configuration: every section and key, commented, with its doc and default."""
    lines = [HEADER.rstrip("\n")]
    for spec in dataclasses.fields(Config):
        if spec.metadata.get("internal"):
            continue
        lines += ["", f"# {'=' * 96}", f"# {spec.name}: {spec.metadata['doc']}", f"# {'=' * 96}"]
        if spec.name == "accounts":
            lines += _accounts()
        else:
            lines += _table(spec.name, _default(spec))
    return "\n".join(lines) + "\n"


def _table(name: str, instance: Any) -> list[str]:
    """`[name]` with its keys commented out, then its sub-tables."""
    lines, later = [f"[{name}]"], []
    hints = typing.get_type_hints(type(instance))
    for spec in dataclasses.fields(instance):
        key, value = _key(spec), getattr(instance, spec.name)
        if dataclasses.is_dataclass(value):
            later += ["", f"# {spec.metadata['doc']}", *_table(f"{name}.{key}", value)]
        elif isinstance(value, dict):
            later += _dict_table(f"{name}.{key}", spec, value)
        else:
            lines += _key_lines(spec, hints[spec.name], value)
    return lines + later


def _dict_table(name: str, spec: dataclasses.Field[Any], value: dict[str, Any]) -> list[str]:
    lines = ["", f"# {spec.metadata['doc']}"]
    if not value:
        return [*lines, f"[{name}]", f"# {_TABLE_EXAMPLES[name]}"]
    for entry, item in value.items():
        lines += [*_table(f"{name}.{entry}", item), ""]
    return lines[:-1]


def _accounts() -> list[str]:
    lines = [
        "# Each [[accounts]] table is one mail or calendar source. Which keys apply depends on",
        "# kind; name and kind are always required. All keys, with their defaults:",
        "#",
        "# [[accounts]]",
    ]
    hints = typing.get_type_hints(AccountConfig)
    for spec in dataclasses.fields(AccountConfig):
        default = _default(spec)
        for line in _key_lines(spec, hints[spec.name], default, required=default == ""):
            lines.append(f"#{line[1:]}" if line.startswith("# ") else f"# {line}")
    lines += ["#", "# Examples, one per kind of source:"]
    for doc, values in _ACCOUNT_EXAMPLES:
        lines += ["", *_comment(doc, "## "), "# [[accounts]]"]
        lines += [f"# {key} = {_toml(value)}" for key, value in values.items()]
    return lines


def _key_lines(
    spec: dataclasses.Field[Any], hint: Any, value: Any, required: bool = False
) -> list[str]:
    meta, key = spec.metadata, _key(spec)
    rules = [f"{sign} {meta[rule]}" for rule, sign in _SIGNS if rule in meta]
    choices = meta.get("choices", ())
    if any(choice not in meta["doc"] for choice in choices):
        rules.append("one of: " + ", ".join(choices))
    doc = meta["doc"] + (f" ({'; '.join(rules)})" if rules else "")
    if required:
        shown = "(required)"
    elif value is None:
        shown = f"(not set; {_kind(hint)})"
    else:
        shown = _toml(value)
    return [*_comment(doc), f"# {key} = {shown}"]


def _comment(text: str, prefix: str = "# ") -> list[str]:
    return textwrap.wrap(text, 98, initial_indent=prefix, subsequent_indent=prefix)


_SIGNS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def _key(spec: dataclasses.Field[Any]) -> str:
    return spec.name.removesuffix("_")  # from_ is `from` in TOML


def _default(spec: dataclasses.Field[Any]) -> Any:
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return spec.default


def _kind(hint: Any) -> str:
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    inner = args[0] if args else hint
    if typing.get_origin(inner) is tuple:
        return "an array of strings"
    return {str: "a string", int: "an integer", float: "a number"}.get(inner, "a value")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON strings are valid TOML basic strings
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return repr(value)
