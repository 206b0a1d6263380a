"""When a parked account (its sign-in was refused) is worth trying again."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

from keepwarm.config.schema import AccountConfig


def fingerprint(account: AccountConfig, state_dir: Path) -> Hashable:
    """What must change before a parked account is worth trying again: its config, or any
    token file (`keepwarm auth` rewrites them) or its password file."""
    files = []
    tokens = state_dir / "tokens"
    paths = sorted(tokens.glob("*")) if tokens.is_dir() else []
    if account.password_file:
        paths.append(Path(account.password_file).expanduser())
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        files.append((str(path), stat.st_mtime_ns, stat.st_size))
    return (account, tuple(files))
