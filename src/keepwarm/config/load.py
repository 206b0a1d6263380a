"""TOML -> `Config`: a generic walker over the schema's dataclasses, then cross-field checks.

The walker reads types from the dataclasses' hints and rules from field metadata, so a new key
in `schema.py` is validated without code here. Every problem is collected with its key path and
raised at once as one `ConfigError`. Tables of dataclasses (`model.tiers`) are merged over the
defaults: a tier named in the file changes only the keys it sets, and new names are added.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import operator
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from datetime import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs

from keepwarm.config.schema import ACCOUNT_KINDS, AccountConfig, Config, SmtpConfig
from keepwarm.errors import ConfigError

SYSTEM_PATH = Path("/etc/keepwarm/keepwarm.toml")

Problems = list[tuple[str, str]]  # (key path, what is wrong)

_BAD = object()  # a value that failed validation; the problem is already recorded
_BOUNDS = (("gt", ">", operator.gt), ("ge", ">=", operator.ge),
           ("lt", "<", operator.lt), ("le", "<=", operator.le))  # fmt: skip
_NAMES = {str: ("a string", "strings"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), bool: ("true or false", "booleans")}  # fmt: skip
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAYS = {n: i for i, name in enumerate(_DAY_NAMES) for n in (name, name[:3])}
_REQUIRED = {
    "maildir": ("path",), "mbox": ("path",), "imap": ("host", "username"),
    "caldav": ("url", "username"), "gmail": ("credentials_file",),
    "google_calendar": ("credentials_file",), "outlook": ("client_id",),
    "outlook_calendar": ("client_id",),
}  # fmt: skip


def find_path(explicit: str | Path | None) -> Path | None:
    """The config file to read: explicit, $KEEPWARM_CONFIG, XDG, /etc; None means use defaults."""
    for given, source in ((explicit, "the path given"), (os.environ.get("KEEPWARM_CONFIG"), None)):
        if given is not None and str(given) != "":
            path = Path(given).expanduser()
            if not path.exists():
                named_by = source or "$KEEPWARM_CONFIG"
                raise ConfigError([f"{path}: no such file ({named_by})"])
            return path
    xdg = os.environ.get("XDG_CONFIG_HOME")
    # platformdirs honours XDG_CONFIG_HOME on Linux only; the documented order promises it anywhere.
    user_dir = Path(xdg) / "keepwarm" if xdg else platformdirs.user_config_path("keepwarm")
    for candidate in (user_dir / "keepwarm.toml", SYSTEM_PATH):
        if candidate.is_file():
            return candidate
    return None


def load(path: Path | None) -> Config:
    """Read and validate the file at `path`; None gives the defaults."""
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError([f"cannot read the file: {why}"], str(path)) from None
    return parse(text, path)


def parse(text: str, path: Path | None = None) -> Config:
    """Validate TOML text into a `Config`, raising one `ConfigError` listing every problem."""
    where = str(path) if path is not None else None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_problem(exc)], where) from None
    problems: Problems = []
    config = dataclasses.replace(_table(Config, data, "", problems, None), path=path)
    # A value that already failed falls back to its default; checks on it would only add noise.
    failed = [key for key, _ in problems]
    for key, message in _check(config):
        if not any(f == key or f.startswith((key + ".", key + "[")) for f in failed):
            problems.append((key, message))
    if problems:
        raise ConfigError([f"{key}: {message}" for key, message in problems], where)
    return typing.cast(Config, config)


def parse_schedule(text: str) -> tuple[int, time]:
    """`"Mon 08:00"` -> `(0, time(8, 0))`: weekday (Monday is 0, as `datetime.weekday`), time."""
    match = re.fullmatch(r"\s*([A-Za-z]+)\s+(\d{1,2}):(\d\d)\s*", text)
    if match and match[1].lower() in _DAYS and int(match[2]) < 24 and int(match[3]) < 60:
        return _DAYS[match[1].lower()], time(int(match[2]), int(match[3]))
    raise ValueError(f'expected "<Mon..Sun> HH:MM" like "Mon 08:00", got {_show(text)}')


def _syntax_problem(exc: tomllib.TOMLDecodeError) -> str:
    match = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(exc))
    if match:
        return f"line {match[2]}, column {match[3]}: TOML syntax error: {match[1]}"
    return f"TOML syntax error: {exc}"


def _table(cls: type[Any], raw: Any, where: str, out: Problems, base: Any) -> Any:
    if not isinstance(raw, dict):
        out.append((where, f"must be a table, got {_show(raw)}"))
        return base if base is not None else cls()
    hints = typing.get_type_hints(cls)
    # A field named for a Python keyword (from_) is spelled without the underscore in TOML.
    known = {
        f.name.removesuffix("_"): f
        for f in dataclasses.fields(cls)
        if not f.metadata.get("internal")
    }
    values: dict[str, Any] = {}
    for key, item in raw.items():
        here = f"{where}.{key}" if where else key
        spec = known.get(key)
        if spec is None:
            out.append((here, _unknown(key, known)))
            continue
        value = _value(hints[spec.name], item, here, spec.metadata, out, _default(spec))
        if value is not _BAD:
            values[spec.name] = _expand(value) if spec.metadata.get("path") else value
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def _value(
    tp: Any, raw: Any, where: str, meta: Mapping[str, Any], out: Problems, default: Any
) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):  # X | None: TOML has no null, so it is X
        inner = next(arg for arg in args if arg is not type(None))
        return _value(inner, raw, where, meta, out, None)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _table(tp, raw, where, out, default if isinstance(default, tp) else None)
    if origin is tuple:
        if not isinstance(raw, list):
            return _wrong(tp, raw, where, out)
        items = [_value(args[0], x, f"{where}[{i}]", meta, out, None) for i, x in enumerate(raw)]
        return _BAD if any(item is _BAD for item in items) else tuple(items)
    if origin is dict:
        if not isinstance(raw, dict):
            return _wrong(tp, raw, where, out)
        merged = dict(default) if isinstance(default, dict) else {}
        for key, item in raw.items():
            merged[key] = _value(args[1], item, f"{where}.{key}", meta, out, merged.get(key))
        return _BAD if any(value is _BAD for value in merged.values()) else merged
    return _scalar(tp, raw, where, meta, out)


def _scalar(tp: type, raw: Any, where: str, meta: Mapping[str, Any], out: Problems) -> Any:
    accepted = (int, float) if tp is float else tp  # TOML writes 90 for 90.0
    if not isinstance(raw, accepted) or (tp is not bool and isinstance(raw, bool)):
        return _wrong(tp, raw, where, out)
    value: Any = raw
    if tp is float:
        value = float(value)
    if tp is float and not math.isfinite(value):
        out.append((where, f"must be a finite number, got {_show(raw)}"))
        return _BAD
    for rule, sign, holds in _BOUNDS:
        if rule in meta and not holds(value, meta[rule]):
            out.append((where, f"must be {sign} {meta[rule]}, got {_show(raw)}"))
            return _BAD
    if "choices" in meta and value not in meta["choices"]:
        out.append((where, f"must be one of {', '.join(meta['choices'])}, got {_show(raw)}"))
        return _BAD
    return value


def _wrong(tp: Any, raw: Any, where: str, out: Problems) -> object:
    out.append((where, f"must be {_describe(tp)}, got {_show(raw)}"))
    return _BAD


def _describe(tp: Any, plural: bool = False) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        return ("arrays" if plural else "an array") + " of " + _describe(args[0], plural=True)
    if origin is dict or dataclasses.is_dataclass(tp):
        return "tables" if plural else "a table"
    return _NAMES[tp][plural]


def _show(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, str):
        return json.dumps(raw if len(raw) <= 60 else raw[:57] + "...", ensure_ascii=False)
    if isinstance(raw, int | float):
        return repr(raw)
    if isinstance(raw, list):
        return "an array"
    if isinstance(raw, dict):
        return "a table"
    return f"a date/time ({raw.isoformat()})"  # the only other TOML values


def _unknown(key: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    if close:
        return f"unknown key (did you mean {close[0]}?)"
    if len(known) <= 12:
        return f"unknown key (known keys: {', '.join(known)})"
    return "unknown key"


def _default(spec: dataclasses.Field[Any]) -> Any:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return None


def _expand(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(os.path.expanduser(item) for item in value)
    return os.path.expanduser(value)


def _check(config: Config) -> Problems:
    """Rules across fields, on a `Config` the walker built (types and bounds already hold)."""
    out: Problems = []
    for i, account in enumerate(config.accounts):
        _check_account(account, f"accounts[{i}]", out)
    names = [account.name for account in config.accounts]
    for i, name in enumerate(names):
        if name and name in names[:i]:
            out.append(
                (f"accounts[{i}].name", f"{_show(name)} is also accounts[{names.index(name)}]")
            )
    smtp = config.smtp
    _one_source(smtp, "smtp", "password", out)
    if smtp.username and not _sources(smtp, "password"):
        out.append(("smtp.password_file", f"smtp.username needs a password: {_SOURCES_HELP}"))
    _plain_text(smtp.security, smtp.host, "smtp.security", out)
    model, tiers = config.model, ", ".join(config.model.tiers)
    if model.cold_below >= model.cooling_below:
        out.append(
            (
                "model.cold_below",
                f"must be < cooling_below ({model.cooling_below}), got {model.cold_below}",
            )
        )
    if model.default_tier not in model.tiers:
        out.append(("model.default_tier", f"must be a tier in model.tiers ({tiers})"))
    for name in config.contacts.tiers:
        if name not in model.tiers:
            out.append((f"contacts.tiers.{name}", f"no such tier in model.tiers ({tiers})"))
    try:
        parse_schedule(config.digest.schedule)
    except ValueError as exc:
        out.append(("digest.schedule", str(exc)))
    if not _is_zone(config.digest.timezone):
        zone = _show(config.digest.timezone)
        out.append(("digest.timezone", f"must be an IANA zone like Europe/London, got {zone}"))
    for i, pattern in enumerate(config.detect.noreply_patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            out.append((f"detect.noreply_patterns[{i}]", f"not a valid regular expression: {exc}"))
    for key, value in _address_values(config):
        if "@" not in value:
            out.append((key, f"must be an email address (or @domain), got {_show(value)}"))
    return out


def _check_account(account: AccountConfig, at: str, out: Problems) -> None:
    kind = _show(account.kind)
    if not account.name.strip():
        out.append((f"{at}.name", "required: a short unique name for logs and status"))
    if not account.kind:
        out.append((f"{at}.kind", f"required: one of {', '.join(ACCOUNT_KINDS)}"))
    for name in _REQUIRED.get(account.kind, ()):
        if not getattr(account, name):
            out.append((f"{at}.{name}", f"required for kind {kind}"))
    if account.kind == "ics" and (account.url is None) == (account.path is None):
        out.append((f"{at}.url", 'kind "ics" needs exactly one of url or path'))
    if account.kind in ("imap", "caldav") and not _sources(account, "password"):
        out.append((f"{at}.password_file", f"kind {kind} needs a password: {_SOURCES_HELP}"))
    _one_source(account, at, "password", out)
    _one_source(account, at, "client_secret", out)
    if account.kind == "imap":
        _plain_text(account.security, account.host, f"{at}.security", out)
    web = ("http", "https")
    urls = {"url": (*web, "file") if account.kind == "ics" else web, "authority": ("https",)}
    for name, schemes in {"endpoint": web, "graph_endpoint": web, **urls}.items():
        url = getattr(account, name)
        if url is not None and (problem := _url_problem(url, schemes)):
            out.append((f"{at}.{name}", f"{problem}, got {_show(url)}"))


def _url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # a malformed IPv6 authority
        return "must be a URL"
    if parts.scheme not in schemes:
        wanted = filter(None, (", ".join(schemes[:-1]), schemes[-1]))
        return f"must be a URL with scheme {' or '.join(wanted)}"
    return "must name a host" if parts.scheme != "file" and not host else None


_SOURCES_HELP = "set password_file, password_env or password_command"


def _sources(section: AccountConfig | SmtpConfig, prefix: str) -> list[str]:
    names = (f"{prefix}_file", f"{prefix}_env", f"{prefix}_command")
    return [name for name in names if getattr(section, name) is not None]


def _one_source(section: AccountConfig | SmtpConfig, at: str, prefix: str, out: Problems) -> None:
    given = _sources(section, prefix)
    if len(given) > 1:
        out.append((f"{at}.{given[1]}", f"set only one of {', '.join(given)}"))
    if getattr(section, f"{prefix}_command") == ():
        out.append((f"{at}.{prefix}_command", "must name a command, got an empty array"))


def _plain_text(security: str, host: str | None, key: str, out: Problems) -> None:
    if security == "none" and host and not _is_loopback(host):
        out.append((key, f'"none" (unencrypted) is refused for non-loopback host {_show(host)}'))


def _is_loopback(host: str) -> bool:
    name = host.strip("[]").rstrip(".").lower()
    try:
        return name == "localhost" or ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _address_values(config: Config) -> Iterator[tuple[str, str]]:
    contacts, accounts = config.contacts, enumerate(config.accounts)
    lists = [("owner.addresses", config.owner.addresses)]
    lists += [(f"accounts[{i}].addresses", a.addresses) for i, a in enumerate(config.accounts)]
    lists += [(f"contacts.aliases[{i}]", group) for i, group in enumerate(contacts.aliases)]
    lists += [("contacts.ignore", contacts.ignore), ("contacts.pin", contacts.pin)]
    lists += [(f"contacts.tiers.{k}", v) for k, v in contacts.tiers.items()]
    lists += [(f"contacts.tags.{k}", v) for k, v in contacts.tags.items()]
    for key, values in lists:
        yield from ((f"{key}[{i}]", value) for i, value in enumerate(values))
    singles = [(f"accounts[{i}].mailbox", a.mailbox) for i, a in accounts]
    singles += [("digest.to", config.digest.to), ("smtp.from", config.smtp.from_)]
    yield from ((key, value) for key, value in singles if value is not None)
