"""`keepwarm run` as a real process: push wake-ups, parking, and no account waiting on another."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.connector_contract import mail
from tests.daemon_proc import running

if TYPE_CHECKING:
    from tests.servers.dovecot import Dovecot, ImapUser

pytest_plugins = ("tests.servers.dovecot",)

HEAD = '[owner]\naddresses = ["me@example.net"]\n[store]\nurl = "sqlite:///{root}/kw.db"\n'


def imap_account(dovecot: Dovecot, user: ImapUser, secret: Path, **extra: object) -> str:
    lines = [
        "[[accounts]]",
        'name = "work"',
        'kind = "imap"',
        f'host = "{dovecot.host}"',
        f"port = {dovecot.port}",
        'security = "none"',
        f'username = "{user.username}"',
        f'password_file = "{secret}"',
        *(f"{k} = {v}" for k, v in extra.items()),
    ]
    return "\n".join(lines) + "\n"


def password_file(path: Path, password: str) -> Path:
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word: a hung server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_new_mail_wakes_the_account_long_before_its_interval(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    user = dovecot.add_user()
    dovecot.append(user, [mail("first@x")])
    secret = password_file(tmp_path / "pw", user.password)
    config = tmp_path / "keepwarm.toml"
    config.write_text(
        HEAD.format(root=tmp_path) + imap_account(dovecot, user, secret, interval_seconds=3600)
    )
    with running(config) as daemon:
        first = daemon.wait_event("account synced", account="work")
        assert first["new"] == 1
        time.sleep(1.0)  # the watcher is idling by now
        dovecot.append(user, [mail("second@x", sender="Bob <bob@example.org>")])
        started = time.monotonic()
        second = daemon.wait_event("account synced", count=2, timeout=20, account="work")
        assert second["new"] == 1
        assert time.monotonic() - started < 20  # an hour's interval, woken in seconds
        assert daemon.stop() == 0


def test_a_hung_server_holds_its_own_slot_and_nobody_waits_for_it(
    tmp_path: Path, silent_server: int
) -> None:
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1.M1P1.host:2,S").write_bytes(mail("m1@x", to="me@example.net"))
    config = tmp_path / "keepwarm.toml"
    config.write_text(
        HEAD.format(root=tmp_path)
        # Listed first: a loop polling in order would sit here for the whole timeout.
        + '[[accounts]]\nname = "hung"\nkind = "ics"\n'
        f'url = "http://127.0.0.1:{silent_server}/cal.ics"\ntimeout = 120\n'
        + f'[[accounts]]\nname = "home"\nkind = "maildir"\npath = "{maildir}"\n'
        + "[daemon]\nstop_timeout = 3\n"
    )
    with running(config) as daemon:
        synced = daemon.wait_event("account synced", account="home", timeout=15)
        assert synced["new"] == 1
        assert not daemon.matching("account synced", account="hung")
        assert not daemon.matching("account failed", account="hung")  # still hanging
        started = time.monotonic()
        assert daemon.stop() == 0  # SIGTERM does not wait two minutes for the hung one
        assert time.monotonic() - started < 15
        assert daemon.matching(
            "stopping with jobs still running; they are redone on the next start"
        )


def test_a_refused_password_parks_the_account_until_the_password_changes(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    user = dovecot.add_user()
    dovecot.append(user, [mail("first@x")])
    secret = password_file(tmp_path / "pw", "not-the-password")
    config = tmp_path / "keepwarm.toml"
    config.write_text(
        HEAD.format(root=tmp_path)
        + imap_account(dovecot, user, secret, interval_seconds=10)
        + "[daemon]\njitter = 0\nbackoff_min = 1\n"
    )
    with running(config) as daemon:
        failed = daemon.wait_event("account failed", account="work")
        assert failed["error_kind"] == "auth"
        time.sleep(12)  # past the interval and any backoff: a parked account is not retried
        assert len(daemon.matching("account failed", account="work")) == 1
        assert daemon.matching("account parked until its sign-in is renewed", account="work")
        password_file(secret, user.password)  # what `keepwarm auth` or the user does
        synced = daemon.wait_event("account synced", account="work", timeout=15)
        assert synced["new"] == 1
        assert daemon.stop() == 0
