"""How a config problem is recorded and worded: its key path, and a TOML value quoted in it.

Shared by the type walker (`load.py`) and the cross-field rules (`checks.py`), so a value reads
the same whichever of them reports it.
"""

from __future__ import annotations

import json
from typing import Any

Problems = list[tuple[str, str]]  # (key path, what is wrong)


def show(raw: Any) -> str:
    """A TOML value as a problem message quotes it: strings in quotes and cut at 60 characters."""
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
