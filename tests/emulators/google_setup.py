"""Accounts and sources for tests and benchmarks that run keepwarm against the Google emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.connector_contract import bad_mail, mail
from tests.emulators.google import GoogleEmulator
from tests.emulators.google_calendar import timed

from keepwarm.config.schema import AccountConfig

OWNER = "me@example.net"
FAST = 1e7  # rate_limit for tests: the emulator enforces no quota unless told to


@pytest.fixture
def emulator() -> Iterator[GoogleEmulator]:
    """A fresh emulator with the owner's mailbox and calendar."""
    with GoogleEmulator() as emu:
        emu.user(OWNER)
        yield emu


def credentials_file(emu: GoogleEmulator, folder: Path, *scopes: str, user: str = OWNER) -> str:
    """Write google-auth authorized-user JSON for `user`; returns its path."""
    info = emu.oauth.authorized_user_info(user, *((scopes,) if scopes else ()))
    path = folder / f"credentials-{user}-{len(list(folder.glob('credentials-*')))}.json"
    path.write_text(json.dumps(info))
    return str(path)


def account(
    emu: GoogleEmulator, folder: Path, kind: str = "gmail", **overrides: Any
) -> AccountConfig:
    """A gmail (or google_calendar) account on the emulator, with credentials_file."""
    settings: dict[str, Any] = {
        "name": "work" if kind == "gmail" else "agenda",
        "kind": kind,
        "endpoint": emu.base,
        "rate_limit": FAST,
        **overrides,
    }
    sources = ("credentials_file", "client_secrets_file", "service_account_file")
    if not any(name in overrides for name in sources):
        settings["credentials_file"] = credentials_file(emu, folder)
    return AccountConfig(**settings)


class GmailSource:
    """The contract's view of a Gmail mailbox on the emulator."""

    def __init__(self, emu: GoogleEmulator, folder: Path) -> None:
        self.box = emu.user(OWNER).mailbox
        self.account = account(emu, folder)

    def add(self, keys: list[str]) -> None:
        for key in keys:
            self.box.deliver(mail(key))

    def add_bad(self, key: str) -> None:
        self.box.deliver(bad_mail())


class CalendarSource:
    """The contract's view of a Google calendar: each new half-hour event starts an hour after
    the last (a change re-reads from the earliest changed start: earlier meetings must not
    overlap it), in the past, with the owner and one guest who accepted."""

    def __init__(self, emu: GoogleEmulator, folder: Path) -> None:
        self.calendar = emu.user(OWNER).calendar
        self.account = account(emu, folder, "google_calendar")
        self.next = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)

    def _start(self) -> datetime:
        self.next += timedelta(hours=1)
        return self.next

    def add(self, keys: list[str]) -> None:
        for key in keys:
            start = self._start()
            self.calendar.put(
                {
                    "iCalUID": key,
                    "summary": "Coffee",
                    "start": timed(start, "Europe/Berlin"),
                    "end": timed(start + timedelta(minutes=30), "Europe/Berlin"),
                    "organizer": {"email": "alice@example.org", "displayName": "Alice"},
                    "attendees": [
                        {"email": "alice@example.org", "responseStatus": "accepted"},
                        {"email": OWNER, "responseStatus": "accepted"},
                    ],
                }
            )

    def add_bad(self, key: str) -> None:
        self._start()
        self.calendar.put({"iCalUID": key, "summary": "broken", "start": {"dateTime": "soon"}})
