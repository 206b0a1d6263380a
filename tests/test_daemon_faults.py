"""The network breaks under `keepwarm run` and the daemon recovers on its own, exactly (issue 8).

The daemon's IMAP traffic (its polls and its IDLE watcher) goes through `FaultProxy`, which
breaks connections at seeded random byte offsets: an orderly close (FIN), a reset (RST) and a
stall (the server goes silent and only the account's `timeout` can end the wait). One of each
lands in the first sync, anywhere in the bytes a clean first sync takes; then, with the daemon
idle, new mail arrives and faults land in what reads it (the IDLE push or the poll), and one in
a poll that finds nothing new. The daemon must retry on its own (`daemon.backoff_min = 1`) and
resume where its last stored batch left off. In the end its store must say exactly what a
clean `keepwarm sync` of the final mailbox says: the same log rows, skipped and filtered counts,
and contact list. On SQLite and on the real PostgreSQL, with other faults on each.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.servers.daemon_process import (
    Daemon,
    command,
    differences,
    secret_file,
    snapshot,
    states,
    wait_until,
    write_config,
)
from tests.servers.fault_proxy import KINDS, FaultKind, FaultProxy
from tests.servers.imap_proxy import ImapProxy
from tests.servers.mailgen import OWNER, Generated, mailbox

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext
from keepwarm.connectors.imap import ImapConnector
from keepwarm.errors import TransientError
from keepwarm.store import Store

if TYPE_CHECKING:
    from tests.servers.dovecot import Dovecot, ImapUser

pytest_plugins = ("tests.servers.dovecot",)

SEED = 20_260_802
MESSAGES = 10_000
ROUND = 40  # messages arriving before each idle-time fault
TIMEOUT = 2  # the account's `timeout`: how long a stalled poll waits
# Retries after one second (doubling while failures go on); polls every 10 s otherwise.
DAEMON = "mail_interval = 10\njitter = 0\nbackoff_min = 1"


@dataclass(frozen=True)
class Mailbox:
    """A Dovecot user with its first-sync mail in place and three rounds of mail to come."""

    dovecot: Dovecot
    user: ImapUser
    secret: Path
    rounds: list[list[Generated]]

    def accounts(self, port: int) -> str:
        """The account's TOML, reached through `port` (a proxy's, or Dovecot's own)."""
        return (
            f'[[accounts]]\nname = "mail"\nkind = "imap"\nhost = "{self.dovecot.host}"\n'
            f'port = {port}\nsecurity = "none"\nusername = "{self.user.username}"\n'
            f'password_file = "{self.secret}"\naddresses = ["{OWNER}"]\ntimeout = {TIMEOUT}\n'
        )

    def deliver(self, mail: list[Generated]) -> None:
        """New mail as an MTA and the owner's client add it: one MULTIAPPEND a folder."""
        for folder in ("INBOX", "Sent"):
            data = [m.data for m in mail if m.folder == folder]
            if data:
                when = datetime.now(UTC) - timedelta(minutes=5)
                self.dovecot.append(self.user, data, folder, when=when)


@dataclass(frozen=True)
class Meter:
    """A clean first sync and an empty poll, measured: where faults may land."""

    first_sync: int  # server bytes of a first sync
    empty_poll: int  # server bytes of a poll that finds nothing new
    rows: int  # log rows after the first sync


class Watch:
    """The daemon's store as the test sees it while the daemon runs."""

    def __init__(self, store_url: str, daemon: Daemon) -> None:
        self.store = Store.open(store_url)
        self.daemon = daemon

    def close(self) -> None:
        self.store.close()

    def rows(self) -> int:
        return self.store.count_touchpoints()

    def grown(self, rows: int) -> None:
        wait_until(lambda: self.rows() > rows, 60, f"more than {rows} log rows", self.daemon)

    def caught_up(self, rows: int, timeout: float = 120) -> None:
        """Wait for `rows` log rows and the account without an error (a batch stored after a
        failure clears it)."""
        wait_until(lambda: self.rows() >= rows, timeout, f"{rows} log rows", self.daemon)
        wait_until(self._healthy, timeout, "the account to recover", self.daemon)

    def _healthy(self) -> bool:
        return all(a.error_kind is None for a in self.store.account_states())


def mailbox_for(dovecot: Dovecot, tmp_path: Path, seed: int) -> Mailbox:
    user = dovecot.add_user()
    now = datetime.now(UTC) - timedelta(days=1)
    generated = list(mailbox(MESSAGES + 3 * ROUND, seed=seed, now=now))
    first, later = generated[:MESSAGES], generated[MESSAGES:]
    for folder in ("INBOX", "Sent"):
        mail = ((m.data, m.stamp) for m in first if m.folder == folder)
        dovecot.write_maildir(user, mail, folder)
    rounds = [later[i * ROUND : (i + 1) * ROUND] for i in range(3)]
    return Mailbox(dovecot, user, secret_file(tmp_path, user.password), rounds)


def meter(box: Mailbox, tmp_path: Path) -> Meter:
    with FaultProxy(box.dovecot.port) as proxy:
        url = f"sqlite:///{tmp_path / 'metered' / 'keepwarm.db'}"
        config = write_config(tmp_path / "metered", url, box.accounts(proxy.port))
        command(config, "sync")
        first = proxy.total
        command(config, "sync")
        empty = proxy.total - first
    with Store.open(url) as store:
        return Meter(first, empty, store.count_touchpoints())


def test_the_daemon_recovers_from_dropped_reset_and_stalled_connections(
    dovecot: Dovecot, tmp_path: Path, store_url: str
) -> None:
    seed = SEED + store_url.startswith("postgresql")  # other faults on each dialect
    rng = random.Random(seed)
    box = mailbox_for(dovecot, tmp_path, seed)
    metered = meter(box, tmp_path)
    with FaultProxy(dovecot.port) as proxy:
        config = write_config(tmp_path / "daemon", store_url, box.accounts(proxy.port), DAEMON)
        kinds: list[FaultKind] = list(KINDS)
        rng.shuffle(kinds)
        for kind in kinds:
            proxy.arm(kind, rng.randint(metered.first_sync // 20, metered.first_sync * 9 // 10))
        with Daemon(config, tmp_path / "daemon.log") as daemon:
            watch = Watch(store_url, daemon)
            try:
                daemon.start()
                proxy.wait_fired(3, 120)
                watch.caught_up(metered.rows)
                # Resumed after each fault: at most the batch in flight was read again.
                assert proxy.total < metered.first_sync * 1.5, proxy.fired

                # Idle. New mail, read unbroken (by push or the next poll): how many bytes
                # that takes says where a fault in such a round may land.
                rows, before = watch.rows(), proxy.total
                box.deliver(box.rounds[0])
                watch.grown(rows)
                watch.caught_up(watch.rows())
                round_bytes = proxy.total - before
                for kind, mail in zip(kinds[:2], box.rounds[1:], strict=True):
                    rows, fired = watch.rows(), len(proxy.fired)
                    proxy.arm(kind, rng.randint(1, round_bytes * 9 // 10))
                    box.deliver(mail)
                    proxy.wait_fired(fired + 1, 60)
                    watch.grown(rows)
                    watch.caught_up(watch.rows())
                # A poll with nothing new: greeting, login, a STATUS per folder, logout.
                proxy.arm(kinds[2], rng.randint(1, metered.empty_poll - 1))
                proxy.wait_fired(6, 60)
                watch.caught_up(watch.rows())

                clean_url = f"sqlite:///{tmp_path / 'clean' / 'keepwarm.db'}"
                clean_config = write_config(
                    tmp_path / "clean", clean_url, box.accounts(dovecot.port)
                )
                command(clean_config, "sync")
                want = snapshot(clean_config, clean_url)
                watch.caught_up(len(want.rows))
                clean_states = states(clean_url)
                wait_until(lambda: watch.store.load_states() == clean_states, 60,
                           "the projection", daemon)  # fmt: skip
            finally:
                watch.close()
            assert daemon.stop() == 0, daemon.tail()
            assert differences(snapshot(config, store_url), want) == [], proxy.fired
            assert daemon.problems() == []
            log = daemon.log.read_text()
    assert proxy.armed == 0
    assert "did not answer in time" in log  # a stall in the first sync met the read timeout
    assert log.count('"error_kind": "transient"') >= 3, proxy.fired


@pytest.mark.parametrize("fault", ["cut", "stall"])
def test_a_connection_lost_while_logging_in_is_retried_not_parked(
    dovecot: Dovecot, tmp_path: Path, fault: str
) -> None:
    """Found by the test above: imapclient reports any IMAP4.error during LOGIN as a
    LoginError, a connection that ended half-way through the answer (imaplib's `abort`)
    included; that was an AuthError, and the daemon parked the account until the user acted."""
    user = dovecot.add_user()
    with ImapProxy(dovecot.port) as proxy:
        account = AccountConfig(
            name="mail", kind="imap", host=dovecot.host, port=proxy.port, security="none",
            username=user.username, password_file=str(secret_file(tmp_path, user.password)),
            timeout=1,
        )  # fmt: skip
        (proxy.cut_after if fault == "cut" else proxy.stall_after)("LOGIN", 20)
        context = ConnectorContext(state_dir=tmp_path)
        with ImapConnector(account, context) as connector, pytest.raises(TransientError):
            list(connector.poll(None))
        assert proxy.commands.count("LOGIN") == 1
        with ImapConnector(account, context) as connector:  # the next poll logs in again
            assert list(connector.poll(None))[-1].cursor


@pytest.mark.parametrize("security", ["none", "starttls"])
def test_a_fault_at_any_byte_of_a_poll_start_is_transient(
    dovecot: Dovecot, tmp_path: Path, security: str
) -> None:
    """Faults anywhere in the first 4 KB of a poll (greeting, STARTTLS and its handshake,
    login, LIST, STATUS, EXAMINE, SEARCH): the poll ends in a TransientError, which the daemon
    retries, never in an AuthError (the account parked) or another error. The daemon test
    above samples this region only a few times a run; the connector alone can take many."""
    rng = random.Random(SEED + 7)
    user = dovecot.add_user()
    mail = list(mailbox(300, seed=SEED, now=datetime.now(UTC)))
    dovecot.write_maildir(user, ((m.data, m.stamp) for m in mail), "INBOX")
    context = ConnectorContext(state_dir=tmp_path)
    outcomes: list[str] = []
    with FaultProxy(dovecot.port) as proxy:
        account = AccountConfig(
            name="mail", kind="imap", host=dovecot.host, port=proxy.port, security=security,
            username=user.username, password_file=str(secret_file(tmp_path, user.password)),
            ca_file=dovecot.ca_file, timeout=0.3,
        )  # fmt: skip
        for _ in range(40):
            fault = proxy.arm(rng.choice(KINDS), rng.randint(0, 4000))
            with ImapConnector(account, context) as connector:
                try:
                    list(connector.poll(None))
                    outcomes.append("ok")
                except TransientError:
                    outcomes.append("transient")
                except Exception as exc:  # what this test is here to catch
                    outcomes.append(f"{fault}: {type(exc).__name__}: {exc}")
            assert proxy.armed == 0, f"{fault} did not go off: a poll is shorter than that"
    assert [o for o in outcomes if o not in ("ok", "transient")] == []
    assert outcomes.count("transient") >= 35  # the faults really hit the polls
