"""Start-up stays light: the CLI and an opened store import no library they do not need yet.

The daemon's idle memory (bench/daemon_idle.py) and `keepwarm --help`'s speed depend on it: the
Google, Microsoft, CalDAV and iCalendar libraries load only when an account uses them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = (
    "msal",
    "googleapiclient",
    "google.auth",
    "icalendar",
    "recurring_ical_events",
    "caldav",
    "lxml",
    "alembic",
    "jinja2",
    "tenacity",
)


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    modules = set(json.loads(out.strip().splitlines()[-1]))
    return {name for name in HEAVY if name in modules}


def test_the_cli_imports_no_heavy_library() -> None:
    assert loaded_after("import keepwarm.cli") == set()


def test_opening_a_migrated_store_imports_no_alembic(tmp_path: Path) -> None:
    from keepwarm.store import Store

    url = f"sqlite:///{tmp_path / 'keepwarm.db'}"
    Store.open(url).close()  # migrated here, with Alembic
    assert loaded_after(f"from keepwarm.store import Store\nStore.open({url!r}).close()") == set()
