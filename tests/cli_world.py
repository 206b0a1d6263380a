"""A user's setup for the CLI tests: a Maildir of real messages, an .ics file, a TOML config.

Everything is written as a user (or their mail client) would leave it on disk; the tests then
run the real `keepwarm` entry point against it. Dates are relative to NOW, which the tests pin
through KEEPWARM_NOW.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from tests.cli_runner import Run, run_cli

ME = "me@example.org"

# The Maildir connector only trusts files whose change time is a few seconds older than its
# clock, and under test its clock is KEEPWARM_NOW: a pinned clock behind the files' real change
# times would make every sync read every file again. Tomorrow 08:00 UTC stays ahead of them.
NOW = (datetime.now(UTC) + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)


def ago(days: float) -> datetime:
    """NOW minus `days`."""
    return NOW - timedelta(days=days)


@dataclass
class World:
    """A temporary home directory: Maildirs, calendars, vCards and the config naming them."""

    root: Path
    capsys: pytest.CaptureFixture[str]
    accounts: list[tuple[str, str, Path]] = field(default_factory=list)
    _written: int = 0

    @property
    def config(self) -> Path:
        return self.root / "keepwarm.toml"

    @property
    def db(self) -> Path:
        return self.root / "kw.db"

    def maildir(self, name: str = "home") -> Path:
        """An empty Maildir with a Sent folder (Maildir++), configured as account `name`."""
        path = self.root / name
        for folder in (path, path / ".Sent"):
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
        self.accounts.append((name, "maildir", path))
        return path

    def calendar(self, name: str, text: str) -> Path:
        """An .ics file holding `text`, configured as account `name`."""
        path = self.root / f"{name}.ics"
        path.write_text(text, encoding="utf-8")
        self.accounts.append((name, "ics", path))
        return path

    def write_config(self, extra: str = "") -> Path:
        """The TOML config: the owner, a SQLite store in the temporary directory, the accounts."""
        lines = [f'[owner]\naddresses = ["{ME}"]\n', f'[store]\nurl = "sqlite:///{self.db}"\n']
        for name, kind, path in self.accounts:
            lines.append(f'[[accounts]]\nname = "{name}"\nkind = "{kind}"\npath = "{path}"\n')
        self.config.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
        return self.config

    def mail(
        self,
        sender: str,
        to: str,
        when: datetime | None,
        *,
        subject: str = "Catching up",
        body: str = "Good to hear from you.\n",
        cc: Iterable[str] = (),
        headers: Iterable[str] = (),
        account: str = "home",
    ) -> Path:
        """One message file; mail from ME goes to the Sent folder, as a mail client files it."""
        self._written += 1
        n = self._written
        lines = [f"From: {sender}", f"To: {to}"]
        lines += [f"Cc: {', '.join(cc)}"] if cc else []
        lines += [f"Date: {format_datetime(when)}"] if when is not None else []
        lines += [f"Message-ID: <m{n}.{account}@test.example>", f"Subject: {subject}", *headers]
        folder = self.root / account / (".Sent" if ME in sender else "")
        path = folder / "cur" / f"100{n}.M{n}P1.host:2,S"
        path.write_text("\r\n".join(lines) + "\r\n\r\n" + body, encoding="utf-8")
        return path

    def exchange(self, name: str, address: str, days_ago: Iterable[float], **kw: str) -> None:
        """A message from `address` and ME's reply an hour later, at each of `days_ago`."""
        for days in days_ago:
            self.mail(f"{name} <{address}>", ME, ago(days), **kw)
            self.mail(ME, f"{name} <{address}>", ago(days - 1 / 24), **kw)

    def cli(self, *args: str) -> Run:
        """`keepwarm --config <this config> ARGS...`."""
        return run_cli(self.capsys, "--config", str(self.config), *args)

    def ok(self, *args: str) -> Run:
        """Like `cli`, asserting exit 0."""
        run = self.cli(*args)
        assert run.code == 0, (args, run.out, run.err)
        return run


def world(tmp_path: Path, capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch) -> World:
    """A fresh world with the clock pinned at NOW and no config found from the real home."""
    mp.setenv("KEEPWARM_NOW", NOW.isoformat())
    mp.delenv("KEEPWARM_CONFIG", raising=False)
    mp.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    mp.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    return World(tmp_path, capsys)
