"""Token files are private from the first byte and never half-written."""

from __future__ import annotations

import stat
from pathlib import Path

from keepwarm.connectors.auth.files import read_private, write_private


def test_token_file_is_0600_and_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "tokens" / "google-home.json"
    assert read_private(path) is None
    write_private(path, b'{"refresh_token": "one"}')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_private(path, b'{"refresh_token": "two"}')
    assert read_private(path) == b'{"refresh_token": "two"}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # No temp files are left beside it.
    assert [p.name for p in path.parent.iterdir()] == ["google-home.json"]
