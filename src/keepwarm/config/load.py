"""TOML -> `Config`: a generic walker over the schema's dataclasses, then `checks.py`'s rules.

The walker reads types from the dataclasses' hints and rules from field metadata, so a new key
in `schema.py` is validated without code here. Every problem is collected with its key path and
raised at once as one `ConfigError`. Tables of dataclasses (`model.tiers`) are merged over the
defaults: a tier named in the file changes only the keys it sets, and new names are added.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import operator
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import platformdirs

from keepwarm.config.checks import check
from keepwarm.config.checks import parse_schedule as parse_schedule  # callers import it here
from keepwarm.config.problems import Problems, show
from keepwarm.config.schema import Config
from keepwarm.errors import ConfigError

SYSTEM_PATH = Path("/etc/keepwarm/keepwarm.toml")

_BAD = object()  # a value that failed validation; the problem is already recorded
_BOUNDS = (("gt", ">", operator.gt), ("ge", ">=", operator.ge),
           ("lt", "<", operator.lt), ("le", "<=", operator.le))  # fmt: skip
_NAMES = {str: ("a string", "strings"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), bool: ("true or false", "booleans")}  # fmt: skip


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
    for key, message in check(config):
        if not any(f == key or f.startswith((key + ".", key + "[")) for f in failed):
            problems.append((key, message))
    if problems:
        raise ConfigError([f"{key}: {message}" for key, message in problems], where)
    return typing.cast(Config, config)


def _syntax_problem(exc: tomllib.TOMLDecodeError) -> str:
    match = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(exc))
    if match:
        return f"line {match[2]}, column {match[3]}: TOML syntax error: {match[1]}"
    return f"TOML syntax error: {exc}"


def _table(cls: type[Any], raw: Any, where: str, out: Problems, base: Any) -> Any:
    if not isinstance(raw, dict):
        out.append((where, f"must be a table, got {show(raw, where)}"))
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
        out.append((where, f"must be a finite number, got {show(raw, where)}"))
        return _BAD
    for rule, sign, holds in _BOUNDS:
        if rule in meta and not holds(value, meta[rule]):
            out.append((where, f"must be {sign} {meta[rule]}, got {show(raw, where)}"))
            return _BAD
    if "choices" in meta and value not in meta["choices"]:
        out.append((where, f"must be one of {', '.join(meta['choices'])}, got {show(raw, where)}"))
        return _BAD
    return value


def _wrong(tp: Any, raw: Any, where: str, out: Problems) -> object:
    out.append((where, f"must be {_describe(tp)}, got {show(raw, where)}"))
    return _BAD


def _describe(tp: Any, plural: bool = False) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        return ("arrays" if plural else "an array") + " of " + _describe(args[0], plural=True)
    if origin is dict or dataclasses.is_dataclass(tp):
        return "tables" if plural else "a table"
    return _NAMES[tp][plural]


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
