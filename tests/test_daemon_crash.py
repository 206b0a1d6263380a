"""A crash at any moment loses no touchpoint and duplicates none (issue 8).

`keepwarm run` is SIGKILLed again and again during a first sync and restarted each time; once it
has caught up, its store must say exactly what a clean `keepwarm sync` of the same mail says:
the same log rows (every field), the same skipped and filtered counts, the same contact list
(the projection caught up after every crash).

The kill moments come from a seeded random generator and the clean run's own timeline, and are
spread over the whole run by what the store shows: a few while the daemon starts (imports, the
first start's schema migration, login), most at random points of the backfill (a fraction of
the log to wait for, then a random part of the time one batch takes, so kills land in a FETCH,
in header parsing or inside a batch's transaction), one right after the final batch (the final
cursor write, the projection) and one in a restart with nothing left to read (the projection
catching up). Where the kills landed is checked, so a run whose kills all missed the backfill
fails instead of passing.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.emulators.google import GoogleEmulator
from tests.emulators.google_setup import credentials_file
from tests.servers.daemon_process import (
    Daemon,
    differences,
    secret_file,
    snapshot,
    states,
    wait_until,
    write_config,
)
from tests.servers.mailgen import OWNER, Generated, mailbox

from keepwarm.store import Store

if TYPE_CHECKING:
    from tests.servers.dovecot import Dovecot

pytest_plugins = ("tests.servers.dovecot",)

SEED = 20_260_801
# A good poll is followed by the next one this soon: the shortest interval the config allows.
DAEMON = "mail_interval = 10\njitter = 0"


@dataclass(frozen=True)
class Timeline:
    """A clean `keepwarm sync`, in seconds from its start, as seen by polling its store."""

    first_row: float  # the first batch committed
    last_row: float  # the log reached its final size
    exited: float
    rows: int
    commits: int  # how many times the log grew: about one per batch

    @property
    def per_batch(self) -> float:
        return (self.last_row - self.first_row) / max(1, self.commits - 1)


@dataclass(frozen=True)
class Kill:
    phase: str  # "startup" | "backfill" | "tail" (after the last batch) | "restart" (nothing new)
    target: int | None  # log rows to wait for, then `delay`
    delay: float  # seconds after the target is reached
    early: float  # seconds after the start, when the log holds the target already (or none)


def clean_sync(config: Path, store_url: str) -> Timeline:
    """`keepwarm sync` into an empty store, noting when the log starts and stops growing."""
    store = Store.open(store_url)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "keepwarm", "--config", str(config), "sync"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    first = last = 0.0
    rows = commits = 0
    while process.poll() is None:
        count = store.count_touchpoints()
        if count != rows:
            rows, last, commits = count, time.monotonic() - started, commits + 1
            first = first or last
        time.sleep(0.01)
    exited = time.monotonic() - started
    err = process.stderr.read().decode(errors="replace") if process.stderr else ""
    assert process.returncode == 0, err
    rows = store.count_touchpoints()
    store.close()
    assert rows > 0, err
    return Timeline(first or exited, last or exited, exited, rows, commits)


def kill_plan(rng: random.Random, clean: Timeline, kills: int) -> list[Kill]:
    """`kills` moments: 10% at startup, one after the last batch, one in a restart with nothing
    new, the rest at random fractions of the backfill (ascending, as each restart resumes).

    A backfill kill waits for its fraction of the log, then a random part of one batch's time;
    when an earlier run got past its fraction already, it lands at a random moment of this
    run's start and first batch instead: resuming is part of the backfill too. Every delay
    ends early when the log grows (see `_sleep_or_grow`).
    """
    startup = max(1, kills // 10)
    resume = clean.first_row + clean.per_batch
    plan = [Kill("startup", None, 0, rng.uniform(0.1, clean.first_row)) for _ in range(startup)]
    for fraction in sorted(rng.uniform(0.02, 0.98) for _ in range(kills - startup - 2)):
        delay, early = rng.uniform(0, clean.per_batch), rng.uniform(0.1, resume)
        plan.append(Kill("backfill", int(fraction * clean.rows), delay, early))
    closing = clean.exited - clean.last_row
    plan.append(Kill("tail", clean.rows, rng.uniform(0, closing), rng.uniform(0.1, resume)))
    plan.append(Kill("restart", None, 0, rng.uniform(clean.first_row * 0.5, clean.exited)))
    return plan


def crash_and_recover(
    daemon: Daemon, store_url: str, plan: list[Kill], rows: int, want: list[dict[str, Any]]
) -> list[tuple[str, int]]:
    """SIGKILL the daemon at each planned moment and restart it; then let it catch up until it
    has `rows` log rows and its projection's states are `want` (or a minute passes: the
    comparison afterwards says what differs), and stop it. Returns (phase, log rows at the
    kill) per kill."""
    # The first start creates and migrates the store itself (the first kill, at startup, may
    # land in that); the test opens it after that kill.
    assert plan[0].phase == "startup"
    daemon.start()
    time.sleep(plan[0].early)
    daemon.kill()
    store = Store.open(store_url)
    landed = [(plan[0].phase, store.count_touchpoints())]
    try:
        for kill in plan[1:]:
            daemon.start()
            target = kill.target
            if target is not None and store.count_touchpoints() < target:
                _wait_rows(store, target, daemon)
                _sleep_or_grow(store, kill.delay)
            else:
                _sleep_or_grow(store, kill.early)
            landed.append((kill.phase, store.count_touchpoints()))
            daemon.kill()
        restarted = datetime.now(UTC)
        daemon.start()
        wait_until(lambda: _synced_since(store, restarted), 120, "a whole poll", daemon)
        _wait_rows(store, rows, daemon)
        deadline = time.monotonic() + 60
        while store.load_states() != want and time.monotonic() < deadline:
            assert daemon.running, daemon.tail()
            time.sleep(0.2)
        assert daemon.stop() == 0, daemon.tail()
    finally:
        store.close()
    return landed


def _sleep_or_grow(store: Store, seconds: float) -> None:
    """Sleep `seconds`, or until the log grows if that comes first: a machine faster now than
    during the clean run must not carry a kill past the batch it was meant for."""
    rows, deadline = store.count_touchpoints(), time.monotonic() + seconds
    while time.monotonic() < deadline and store.count_touchpoints() == rows:
        time.sleep(0.005)


def _wait_rows(store: Store, rows: int, daemon: Daemon) -> None:
    wait_until(lambda: store.count_touchpoints() >= rows, 120, f"{rows} log rows", daemon)


def _synced_since(store: Store, moment: datetime) -> bool:
    """Whether a poll stored its last batch after `moment` (every poll ends with one)."""
    return any(a.last_sync is not None and a.last_sync >= moment for a in store.account_states())


def run_crashes(tmp_path: Path, accounts: str, seed: int, kills: int) -> None:
    """The whole test on one source: a clean run, `kills` crashes and restarts, the comparison,
    the spread of the kills."""
    clean_url = f"sqlite:///{tmp_path / 'clean' / 'keepwarm.db'}"
    clean_config = write_config(tmp_path / "clean", clean_url, accounts)
    clean = clean_sync(clean_config, clean_url)
    want = snapshot(clean_config, clean_url)
    assert want.accounts["mail"]["skipped"] > 0  # the mail has something to skip
    assert want.accounts["mail"]["filtered"]  # and something to filter
    assert len(want.contacts) > 100

    url = f"sqlite:///{tmp_path / 'crashed' / 'keepwarm.db'}"
    config = write_config(tmp_path / "crashed", url, accounts, DAEMON)
    plan = kill_plan(random.Random(seed), clean, kills)
    with Daemon(config, tmp_path / "daemon.log") as daemon:
        landed = crash_and_recover(daemon, url, plan, clean.rows, states(clean_url))
        assert differences(snapshot(config, url), want) == [], f"kills (phase, rows): {landed}"
        assert daemon.problems() == []
    # Most kills hit the backfill (some rows stored, not all), at many different points.
    during = [rows for _, rows in landed if 0 < rows < clean.rows]
    assert len(during) >= kills // 2, f"the kills missed the backfill: {landed}"
    assert len(set(during)) >= kills // 4, f"the kills bunched up: {landed}"


def test_sigkill_during_an_imap_backfill_loses_and_doubles_nothing(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    """20,000 messages in INBOX and Sent of the private Dovecot, 20 kills."""
    user = dovecot.add_user()
    mail = list(mailbox(20_000, seed=SEED, now=datetime.now(UTC)))
    for folder in ("INBOX", "Sent"):
        dovecot.write_maildir(user, ((m.data, m.stamp) for m in mail if m.folder == folder), folder)
    secret = secret_file(tmp_path, user.password)
    accounts = (
        f'[[accounts]]\nname = "mail"\nkind = "imap"\nhost = "{dovecot.host}"\n'
        f'port = {dovecot.port}\nsecurity = "none"\nusername = "{user.username}"\n'
        f'password_file = "{secret}"\naddresses = ["{OWNER}"]\n'
    )
    run_crashes(tmp_path, accounts, SEED, kills=20)


def test_sigkill_during_a_gmail_backfill_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """The Gmail API emulator (this process, over HTTP) and the real google-api-python-client
    in the daemon: 3,000 messages, 5 kills."""
    with GoogleEmulator() as emulator:
        box = emulator.user(OWNER).mailbox
        for m in mailbox(3_000, seed=SEED + 1, now=datetime.now(UTC)):
            box.deliver(m.data, _labels(m), internal_date=datetime.fromtimestamp(m.stamp, UTC))
        credentials = credentials_file(emulator, tmp_path, user=OWNER)
        Path(credentials).chmod(0o600)
        accounts = (
            f'[[accounts]]\nname = "mail"\nkind = "gmail"\nendpoint = "{emulator.base}"\n'
            f'credentials_file = "{credentials}"\nrate_limit = 10000000.0\n'
            f'addresses = ["{OWNER}"]\n'
        )
        run_crashes(tmp_path, accounts, SEED + 1, kills=5)


def _labels(message: Generated) -> tuple[str, ...]:
    return ("SENT",) if message.folder == "Sent" else ("INBOX", "UNREAD")
