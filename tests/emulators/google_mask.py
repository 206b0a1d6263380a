"""Partial responses: the `fields` parameter of Google's JSON APIs (`a,b/c,d(e,f)`)."""

from __future__ import annotations

import re
from typing import Any

from tests.emulators.google_errors import ApiError


def parse_mask(text: str) -> dict[str, Any]:
    """`"a,b/c,d(e,f/g)"` -> {"a": {}, "b": {"c": {}}, "d": {"e": {}, "f": {"g": {}}}}."""
    tree: dict[str, Any] = {}
    position = _parse_into(text.replace(" ", ""), 0, tree)
    if position != len(text.replace(" ", "")):
        raise ApiError(400, "invalidParameter", f"Invalid field selection {text}")
    return tree


def _parse_into(text: str, i: int, tree: dict[str, Any]) -> int:
    while i < len(text):
        name = re.match(r"[\w@]+(?:/[\w@]+)*", text[i:])
        if not name:
            raise ApiError(400, "invalidParameter", f"Invalid field selection {text}")
        node = tree
        for part in name[0].split("/"):
            node = node.setdefault(part, {})
        i += len(name[0])
        if i < len(text) and text[i] == "(":
            i = _parse_into(text, i + 1, node)
            if i >= len(text) or text[i] != ")":
                raise ApiError(400, "invalidParameter", f"Invalid field selection {text}")
            i += 1
        if i < len(text) and text[i] == ")":
            return i
        if i < len(text):
            if text[i] != ",":
                raise ApiError(400, "invalidParameter", f"Invalid field selection {text}")
            i += 1
    return i


def apply_mask(value: Any, mask: str | dict[str, Any]) -> Any:
    """Keep only the selected fields (lists are filtered item by item)."""
    tree = parse_mask(mask) if isinstance(mask, str) else mask
    if not tree:
        return value
    if isinstance(value, list):
        return [apply_mask(item, tree) for item in value]
    if isinstance(value, dict):
        return {k: apply_mask(v, tree[k]) for k, v in value.items() if k in tree}
    return value
