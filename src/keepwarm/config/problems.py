"""How a config problem is recorded and worded: its key path, and a TOML value quoted in it.

Shared by the type walker (`load.py`) and the cross-field rules (`checks.py`), so a value reads
the same whichever of them reports it.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

Problems = list[tuple[str, str]]  # (key path, what is wrong)


# Values of these keys may be secrets (or carry them: a feed URL's path is often its password),
# so a problem message names what is wrong without echoing them.
_SECRET_KEY = re.compile(r"(password|secret|token)", re.IGNORECASE)
_URL_KEY = re.compile(r"(url|endpoint|authority)$", re.IGNORECASE)


def show(raw: Any, key: str = "") -> str:
    """A TOML value as a problem message quotes it: strings in quotes and cut at 60 characters.

    `key` is the value's key path: secret-bearing keys are never echoed, and URLs show only
    their scheme and host.
    """
    leaf = key.rsplit(".", 1)[-1]
    if _SECRET_KEY.search(leaf):
        return "a value (not shown: it may be a secret)"
    if isinstance(raw, str) and _URL_KEY.search(leaf):
        parts = urlsplit(raw)
        if not (parts.scheme and raw.startswith(f"{parts.scheme}://")):
            return "a value that is not a URL"
        return json.dumps(f"{parts.scheme}://{parts.hostname or ''}/...")
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
