"""`keepwarm auth google ACCOUNT` as a user on a headless server runs it: the real command in a
subprocess, the emulator as Google, and this test as the browser on another machine."""

from __future__ import annotations

import http.client
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from tests.cli_runner import run_cli
from tests.connector_contract import keys, mail
from tests.emulators.google import GoogleEmulator
from tests.emulators.google_setup import FAST, OWNER, credentials_file
from tests.emulators.google_setup import emulator as emulator  # the fixture

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, create
from keepwarm.connectors.google.auth import CALENDAR_READONLY, GMAIL_METADATA, GMAIL_SETTINGS


@dataclass
class Session:
    process: subprocess.Popen[str]
    url: str
    state: Path

    def finish(self, paste: str | None = None) -> tuple[int, str, str]:
        out, err = self.process.communicate(paste, timeout=60)
        return self.process.returncode, out, err


@pytest.fixture
def start(emulator: GoogleEmulator, tmp_path: Path) -> Iterator[object]:
    """Start `keepwarm auth google work` against a config of one gmail account."""
    running: list[subprocess.Popen[str]] = []

    def begin(*args: str, credentials: str | None = None, kind: str = "gmail") -> Session:
        secrets = tmp_path / "client_secret.json"
        secrets.write_text(json.dumps(emulator.oauth.client_secrets()))
        source = (
            f'credentials_file = "{credentials}"'
            if credentials
            else f'client_secrets_file = "{secrets}"'
        )
        config = tmp_path / "keepwarm.toml"
        config.write_text(
            f'[store]\nurl = "sqlite:///{tmp_path / "state" / "keepwarm.db"}"\n'
            f'[[accounts]]\nname = "work"\nkind = "{kind}"\nendpoint = "{emulator.base}"\n'
            f"{source}\n"
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "keepwarm", "--config", str(config), "auth", "google", "work",
             "--port", "0", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        running.append(process)
        assert process.stderr is not None
        shown = ""
        for line in process.stderr:  # the instructions, up to the invitation to paste
            shown += line
            if "paste it here" in line:
                break
        found = re.search(r"(http://127\.0\.0\.1:\d+/o/oauth2/auth\?\S+)", shown)
        assert found, f"no URL of the emulator in: {shown!r}"
        return Session(process, found[1], tmp_path / "state")

    yield begin
    for process in running:
        if process.poll() is None:
            process.kill()
            process.wait()


def browse(url: str) -> str:
    """The browser: open Google's consent page, which answers with the redirect to follow."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    connection.request("GET", f"{parts.path}?{parts.query}")
    answer = connection.getresponse()
    assert answer.status == 302, answer.read()
    return str(answer.getheader("Location"))


def follow(url: str) -> str:
    """The browser follows the redirect to 127.0.0.1:PORT (tunnelled to the server)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    connection.request("GET", f"{parts.path}?{parts.query}")
    return connection.getresponse().read().decode()


def read(emulator: GoogleEmulator, state: Path, kind: str = "gmail", **settings: str) -> list[str]:
    """What the account reads now: message ids or event UIDs."""
    acct = AccountConfig(
        name="work", kind=kind, endpoint=emulator.base, rate_limit=FAST, **settings
    )
    now = datetime.now(UTC)
    connector = create(acct, ConnectorContext(state_dir=state, now=lambda: now))
    try:
        return keys(list(connector.poll(None)))
    finally:
        connector.close()


def test_loopback_redirect_through_a_tunnel_stores_a_private_token(
    emulator: GoogleEmulator, start: object
) -> None:
    emulator.user(OWNER).mailbox.deliver(mail("a@x"))
    session = start()  # type: ignore[operator]
    query = parse_qs(urlsplit(session.url).query)
    assert query["scope"] == [GMAIL_METADATA]  # the narrowest scope that works
    assert query["code_challenge_method"] == ["S256"]
    assert query["access_type"] == ["offline"]
    assert "authorised" in follow(browse(session.url))
    code, out, err = session.finish()
    assert code == 0, err
    token = session.state / "tokens" / "google-work.json"
    assert str(token) in out
    assert f"reads the mail of {OWNER}" in out  # the token was tried at once
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    stored = json.loads(token.read_text())
    assert stored["type"] == "authorized_user"
    assert stored["token_uri"] == f"{emulator.base}/token"
    assert stored["refresh_token"] not in out + err  # secrets stay off the terminal
    # The connector now reads the mailbox with the stored token.
    secrets = session.state.parent / "client_secret.json"
    assert read(emulator, session.state, client_secrets_file=str(secrets)) == ["a@x"]


def test_pasting_the_redirected_address_works_without_a_tunnel(
    emulator: GoogleEmulator, start: object
) -> None:
    session = start("--send-as")  # type: ignore[operator]
    assert parse_qs(urlsplit(session.url).query)["scope"] == [f"{GMAIL_METADATA} {GMAIL_SETTINGS}"]
    redirected = browse(session.url)  # the browser cannot reach 127.0.0.1 here: copy the URL
    code, _, err = session.finish(f"{redirected}\n")
    assert code == 0, err
    stored = json.loads((session.state / "tokens" / "google-work.json").read_text())
    assert stored["scopes"] == sorted([GMAIL_METADATA, GMAIL_SETTINGS])


def test_a_foreign_or_denied_redirect_stores_nothing(
    emulator: GoogleEmulator, start: object
) -> None:
    emulator.oauth.deny = True
    session = start()  # type: ignore[operator]
    denied = browse(session.url)
    code, _, err = session.finish(f"http://127.0.0.1:1/?state=forged&code=x\n{denied}\n")
    assert code != 0
    assert "state differs" in err  # the forged one is refused and the flow waits on
    assert "access_denied" in err
    assert not (session.state / "tokens").exists()


def test_a_scope_left_unticked_is_refused(emulator: GoogleEmulator, start: object) -> None:
    emulator.oauth.unticked = frozenset({GMAIL_METADATA})
    session = start()  # type: ignore[operator]
    code, _, err = session.finish(browse(session.url) + "\n")
    assert code != 0
    assert "without https://www.googleapis.com/auth/gmail.metadata" in err
    assert not (session.state / "tokens").exists()


def test_an_account_with_a_credentials_file_gets_that_file_renewed(
    emulator: GoogleEmulator, start: object, tmp_path: Path
) -> None:
    old = credentials_file(emulator, tmp_path)
    before = json.loads(Path(old).read_text())
    # As `keepwarm auth google` writes it: with the authorization endpoint of the token's issuer.
    Path(old).write_text(json.dumps({**before, "auth_uri": f"{emulator.base}/o/oauth2/auth"}))
    emulator.oauth.revoke(before["refresh_token"])
    emulator.user(OWNER).add_calendar("team@group.calendar.google.com", "Team")
    session = start(credentials=old, kind="google_calendar")  # type: ignore[operator]
    assert parse_qs(urlsplit(session.url).query)["scope"] == [CALENDAR_READONLY]
    code, out, err = session.finish(browse(session.url) + "\n")
    assert code == 0, err
    assert f"primary: {OWNER}" in out  # the calendars it can read, for `calendars`
    assert "team@group.calendar.google.com  (Team)" in out
    after = json.loads(Path(old).read_text())
    assert after["client_id"] == before["client_id"]
    assert after["refresh_token"] != before["refresh_token"]
    assert stat.S_IMODE(Path(old).stat().st_mode) == 0o600
    emulator.user(OWNER).calendar.put(
        {"iCalUID": "lunch@x", "start": {"date": "2026-01-05"}, "end": {"date": "2026-01-06"}}
    )
    assert read(emulator, tmp_path, "google_calendar", credentials_file=old) == ["lunch@x"]


@pytest.mark.parametrize(
    ("account", "words"),
    [
        ('name = "home"\nkind = "maildir"\npath = "/m"', "not gmail or google_calendar"),
        ('name = "work"\nkind = "gmail"\nservice_account_file = "/k.json"\nusers = ["a@b.c"]',
         "nothing to authorise"),
        ('name = "work"\nkind = "gmail"\nclient_secrets_file = "WEB"', 'of type "Desktop app"'),
        ('name = "work"\nkind = "gmail"\nclient_secrets_file = "/missing.json"',
         "cannot read the OAuth client JSON"),
    ],
)  # fmt: skip
def test_what_cannot_be_authorised_is_said_before_any_url(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, account: str, words: str
) -> None:
    web = tmp_path / "web.json"
    web.write_text(json.dumps({"web": {"client_id": "x", "client_secret": "y"}}))
    config = tmp_path / "keepwarm.toml"
    config.write_text(f"[[accounts]]\n{account.replace('WEB', str(web))}\n")
    name = "home" if "maildir" in account else "work"
    done = run_cli(capsys, "--config", str(config), "auth", "google", name)
    assert done.code == 2
    assert words in done.err
    assert "http" not in done.err
    assert run_cli(capsys, "--config", str(config), "auth", "google", "nobody").code == 2
