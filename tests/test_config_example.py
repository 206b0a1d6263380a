"""The generated example config: complete, in sync with the repository, and truthful."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from keepwarm.config import AccountConfig, Config
from keepwarm.config.example import example_toml
from keepwarm.config.load import parse

REPO_EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "keepwarm.example.toml"
KEY_LINE = re.compile(r"^# ([a-z_0-9]+) = (.*)$")


def test_the_repository_example_is_the_generated_one() -> None:
    # On failure: python -c "from keepwarm.config.example import example_toml as e;
    #   open('config/keepwarm.example.toml', 'w').write(e())"
    assert REPO_EXAMPLE.read_text(encoding="utf-8") == example_toml()


def test_the_example_as_shipped_parses_into_the_defaults() -> None:
    assert parse(example_toml()) == Config()


def _keys(cls: type[Any], prefix: str) -> dict[str, str]:
    """Every TOML key under `cls` with its doc; tables of dataclasses through their defaults."""
    found: dict[str, str] = {}
    for spec in dataclasses.fields(cls):
        if spec.metadata.get("internal"):
            continue
        default = (
            spec.default_factory()
            if spec.default_factory is not dataclasses.MISSING
            else spec.default
        )
        if dataclasses.is_dataclass(default):
            found |= _keys(type(default), f"{prefix}{spec.name}.")
        elif isinstance(default, dict) and default:
            for name, entry in default.items():
                found |= _keys(type(entry), f"{prefix}{spec.name}.{name}.")
        elif spec.name == "accounts":
            found |= _keys(AccountConfig, "accounts.")
        else:
            found[prefix + spec.name.removesuffix("_")] = spec.metadata["doc"]
    return found


def _documented_keys(text: str) -> set[str]:
    """Every table header and `# key = value` line, qualified by the table it sits in."""
    found, table = set(), ""
    for line in text.splitlines():
        header = re.match(r"^#? ?\[\[?([a-z_.]+)\]\]?$", line)
        if header:
            table = header[1] + "."
            found.add(header[1])
        elif match := KEY_LINE.match(line):
            found.add(table + match[1])
    return found


def test_every_key_of_every_section_is_documented_with_its_doc() -> None:
    text = example_toml()
    expected = _keys(Config, "")
    assert "accounts.password_command" in expected
    assert "smtp.from" in expected
    assert set(expected) <= _documented_keys(text)
    unwrapped = text.replace("\n# ", " ")
    assert [doc for doc in expected.values() if doc not in unwrapped] == []


def test_the_commented_defaults_are_the_real_defaults() -> None:
    """Uncommenting every key line outside [[accounts]] must still give the defaults."""
    lines, table, in_accounts = [], "", False
    for line in example_toml().splitlines():
        if line.startswith("# accounts:"):
            in_accounts = True
        elif line.startswith("# model:"):
            in_accounts = False
        if line.startswith("["):
            table = line
        match = KEY_LINE.match(line)
        example_only = table in ("[contacts.tiers]", "[contacts.tags]")
        if match and not in_accounts and not example_only and not match[2].startswith("("):
            line = line[2:]
        lines.append(line)
    uncommented = "\n".join(lines)
    assert uncommented.count("\nhalf_life_days = 90.0\n") == 1
    assert parse(uncommented) == Config()


def test_the_account_examples_are_valid_configs() -> None:
    text = example_toml()
    examples = text[text.index("# Examples, one per kind") : text.index("# model:")]
    uncommented = "\n".join(
        line[2:] if line == "# [[accounts]]" or KEY_LINE.match(line) else line
        for line in examples.splitlines()
    )
    accounts = parse(uncommented).accounts
    assert [a.kind for a in accounts] == ["maildir", "imap", "ics", "gmail", "outlook", "caldav"]
    imap = accounts[1]
    assert imap.password_file == "/etc/keepwarm/imap-password"
    assert imap.security == "tls"
