"""Team mode with real processes (issue 8): `keepwarm run` workers sharing accounts through
leases in one PostgreSQL database of the test's own.

The main test: three workers, 30 accounts, 24 on Maildir (cheap) and 6 on IMAP against the
private Dovecot (every fifth name, so each share holds some): IMAP polls cross a network and
read a backlog in several batches, long enough for a worker to be stopped inside one. Every
account polls every 10 s, leases last 15 s, no jitter; the digest goes to the SMTP test server.

1. Every account is synced; the workers settle at exactly 10 accounts each (a share is capped at
   ceil(30 / 3) = 10, so three workers holding all 30 leave no other split) and keep them; one
   digest arrives.
2. SIGKILL one worker: each of its accounts is synced by a survivor under a newer token within
   MOVE_BOUND: the lease, plus one claim period (a quarter lease: how often a worker asks the
   store), plus 3 s for a loop tick and the polls.
3. SIGSTOP a survivor once its poll of an IMAP account stored the first batch of a backlog;
   add mail to that account; the other survivor takes and syncs everything within MOVE_BOUND;
   SIGCONT: the stopped poll's next write is refused and the worker gets its share back.
4. SIGTERM: exit 0, every lease handed back, no worker left present.

Then, from the logs: per account, polls of two workers overlap only when the earlier one was
refused its write under an older token, and tokens never go back; only one "digest sent", one
message, one DATA command, one outbox attempt. And the log equals one `keepwarm sync` of the
same sources into a fresh store: the same rows, each (natural key, counterpart) once, the same
skipped and filtered counts (filters add up, so a stale batch written anyway would show).

The second test (an expected failure until daemon/loop.py is fixed): a worker holding nothing
must not send the week's digest before the team's accounts were synced.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.daemon_proc import Daemon, Event

from keepwarm.store import Store

if TYPE_CHECKING:
    from tests.servers.dovecot import Dovecot, ImapUser
    from tests.servers.smtp import SmtpServer

pytest_plugins = ("tests.servers.dovecot", "tests.servers.smtp")
pytestmark = pytest.mark.postgres

OWNER = "me@example.org"
NAMES = [f"acct-{i:02d}" for i in range(30)]
IMAP = {name for i, name in enumerate(NAMES) if i % 5 == 0}
WORKERS = ("w-a", "w-b", "w-c")
LEASE = 15
CLAIM_PERIOD = LEASE / 4  # LeaseKeeper.refresh_interval
MOVE_BOUND = LEASE + CLAIM_PERIOD + 3.0
BACKLOG = 3000  # sent messages that make one IMAP poll last long enough to be paused in
# How a poll ends in the log (the first two bound to the account, a job's failure to its key).
SYNCED, FAILED = "account synced", "account failed"
LOST = "lease lost; the account's new worker carries on"
# A worker stopped inside a batch's transaction has its session ended by PostgreSQL once its
# lease ran out (store/leases.py): resumed, that poll's job fails with this instead of LOST.
ENDED = "idle-in-transaction"


@dataclass(frozen=True)
class Poll:
    worker: str
    account: str
    token: int
    start: datetime
    end: datetime
    outcome: str  # SYNCED, FAILED, LOST, "job failed: <error>", or "cut" (the process died)

    @property
    def refused(self) -> bool:
        """Ended without writing anything once its lease had gone."""
        return self.outcome == LOST or (
            self.outcome.startswith("job failed") and ENDED in self.outcome
        )


def mail(key: str, sender: str, to: str, date: datetime | None, extra: str = "") -> bytes:
    dated = f"Date: {format_datetime(date)}\r\n" if date else ""
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: about {key}\r\n{dated}"
        f"Message-ID: <{key}@team.example>\r\n{extra}\r\nHello.\r\n"
    ).encode()


def account_mail(name: str, now: datetime) -> dict[str, list[bytes]]:
    """Three people writing and answered, a list post and the owner's vacation reply (both
    filtered), a message without a Date (skipped)."""
    people = [f"p{k}.{name}@example.com" for k in range(3)]
    day = timedelta(days=1)
    inbox = [mail(f"{name}.in{k}", p, OWNER, now - (10 + k) * day) for k, p in enumerate(people)]
    inbox.append(mail(f"{name}.list", "news@lists.example", OWNER, now - 3 * day,
                      "List-Id: <news.lists.example>\r\n"))  # fmt: skip
    inbox.append(mail(f"{name}.nodate", people[0], OWNER, None))
    sent = [mail(f"{name}.out{k}", OWNER, p, now - (5 + k) * day) for k, p in enumerate(people)]
    sent.append(mail(f"{name}.away", OWNER, people[1], now - 2 * day,
                     "Auto-Submitted: auto-replied\r\n"))  # fmt: skip
    return {"INBOX": inbox, "Sent": sent}


def backlog(name: str, now: datetime) -> list[bytes]:
    """Sent mail a poll reads in several batches; every tenth is an auto-reply (filtered). The
    first has no Date: its "message skipped" line says the first batch was stored."""
    return [mail(f"{name}.bulk-nodate", OWNER, "b@bulk.example", None)] + [
        mail(f"{name}.bulk{k}", OWNER, f"b{k % 97}@bulk.example", now - timedelta(minutes=k),
             "Auto-Submitted: auto-replied\r\n" if k % 10 == 0 else "")
        for k in range(BACKLOG)
    ]  # fmt: skip


def sources(tmp: Path, dovecot: Dovecot, now: datetime) -> tuple[str, dict[str, ImapUser]]:
    """The 30 accounts' mail, written; their `[[accounts]]` TOML and the IMAP users."""
    parts, users = [], {}
    for name in NAMES:
        folders = account_mail(name, now)
        head = f'[[accounts]]\nname = "{name}"\ninterval_seconds = 10\n'
        if name in IMAP:
            user = users[name] = dovecot.add_user()
            for folder, messages in folders.items():
                dovecot.append(user, messages, folder)
            secret = tmp / "secrets" / name
            secret.parent.mkdir(exist_ok=True)
            secret.write_text(user.password + "\n")
            secret.chmod(0o600)
            parts.append(
                f'{head}kind = "imap"\nhost = "{dovecot.host}"\nport = {dovecot.port}\n'
                f'security = "none"\nusername = "{user.username}"\npassword_file = "{secret}"\n'
            )
            continue
        root = tmp / "maildirs" / name
        for folder, messages in folders.items():
            path = root if folder == "INBOX" else root / f".{folder}"
            for sub in ("cur", "new", "tmp"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            for k, data in enumerate(messages):
                (path / "cur" / f"{int(now.timestamp())}.M{k}P1.team:2,S").write_bytes(data)
        parts.append(f'{head}kind = "maildir"\npath = "{root}"\n')
    return "".join(parts), users


def write_config(folder: Path, url: str, accounts: str, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "keepwarm.toml"
    path.write_text(f'[owner]\naddresses = ["{OWNER}"]\n[store]\nurl = "{url}"\n{extra}{accounts}')
    return path


@pytest.fixture
def team_url(pg_admin_url: str) -> Iterator[str]:
    """A migrated database of this test's own, dropped at the end: three processes share it."""
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    name = f"keepwarm_team_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0"))
    except Exception as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL is needed for team mode and is not reachable: {exc}",
                    pytrace=False)  # fmt: skip
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        Store.open(url).close()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def when(event: Event) -> datetime:
    return datetime.fromisoformat(event["timestamp"])


def polls(worker: str, events: list[Event], died: datetime | None = None) -> list[Poll]:
    """One worker's polls, from "poll started" to the event that ends each."""
    running: dict[str, Event] = {}
    found = []
    for event in events:
        name, account = str(event.get("event")), str(event.get("account"))
        if name == "job failed" and str(event.get("job")).startswith("poll:"):
            name, account = f"job failed: {event.get('error')}", str(event["job"])[5:]
        if name == "poll started":
            assert account not in running, f"{worker} polls {account} twice at once"
            running[account] = event
        elif account in running and (name in (SYNCED, FAILED, LOST) or name.startswith("job")):
            start = running.pop(account)
            found.append(Poll(worker, account, start["lease_token"], when(start), when(event),
                              name))  # fmt: skip
    for account, start in running.items():
        end = died or datetime.now(UTC)
        found.append(Poll(worker, account, start["lease_token"], when(start), end, "cut"))
    return found


def fenced_overlaps(every: list[Poll]) -> list[tuple[Poll, Poll]]:
    """Check one account's polls across workers; return the (fenced, newer) overlapping pairs.

    Two workers' polls of one account overlap only when the earlier one ran on an older token
    and was refused its write (`Poll.refused`); tokens never go back, and grow at a hand-over.
    """
    pairs = []
    by_account: dict[str, list[Poll]] = {}
    for poll in every:
        by_account.setdefault(poll.account, []).append(poll)
    for account, found in by_account.items():
        found.sort(key=lambda p: p.start)
        for before, after in pairwise(found):
            grows = after.token > before.token or (
                after.token == before.token and after.worker == before.worker
            )
            assert grows, f"{account}: token went from {before} to {after}"
        for i, early in enumerate(found):
            for late in found[i + 1 :]:
                if late.start >= early.end:
                    continue
                assert early.worker != late.worker, f"{account}: {early} overlaps {late}"
                twice = f"{account}: two workers polled it at once: {early} and {late}"
                assert early.refused, twice
                assert early.token < late.token, twice
                pairs.append((early, late))
    return pairs


def shares(store: Store) -> dict[str, dict[str, int]]:
    """Unexpired leases in the store: worker -> account -> token."""
    now = datetime.now(UTC)
    held: dict[str, dict[str, int]] = {}
    for lease in store.leases.holders():
        if lease.expires_at > now:
            held.setdefault(lease.owner, {})[lease.account] = lease.token
    return held


def wait(what: str, condition: Callable[[], bool], timeout: float, *alive: Daemon) -> float:
    """Seconds until `condition` held; fails naming `what` (with the logs) after `timeout`."""
    start = time.monotonic()
    while not condition():
        dead = [d for d in alive if d.process.poll() is not None]
        if dead or time.monotonic() - start > timeout:
            logs = "\n".join(d.log()[-3000:] for d in (dead or alive))
            raise AssertionError(f"{what}: not within {timeout} s\n{logs}")
        time.sleep(0.02)
    return time.monotonic() - start


def synced_by(daemons: dict[str, Daemon], accounts: set[str], after: datetime,
              above: dict[str, int]) -> bool:  # fmt: skip
    """Each of `accounts` had a whole poll started after `after`, on a token above `above`'s."""
    done = {
        p.account
        for w, d in daemons.items()
        for p in polls(w, d.events)
        if p.outcome == SYNCED and p.start > after and p.token > above.get(p.account, 0)
    }
    return accounts <= done


def just_polled(
    daemons: dict[str, Daemon], held: dict[str, dict[str, int]]
) -> list[tuple[str, str]]:
    """(worker, IMAP account it holds) whose last poll ended in the last half second."""
    recent = datetime.now(UTC) - timedelta(seconds=0.5)
    return [(w, x.account) for w, d in daemons.items() for x in polls(w, d.events)
            if x.account in IMAP and x.account in held[w] and x.outcome == SYNCED
            and x.end > recent]  # fmt: skip


def counts(store: Store) -> dict[str, tuple[int, dict[str, int], dict[str, int]]]:
    """Per account: log rows it added first, skipped and filtered messages by reason."""
    return {s.name: (s.touchpoints, s.skipped_reasons, s.filtered) for s in store.account_states()}


def clean_sync(tmp: Path, accounts: str) -> Store:
    """A single `keepwarm sync` of the same sources into a fresh SQLite store."""
    url = f"sqlite:///{tmp / 'clean' / 'keepwarm.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "keepwarm", "--config",
         str(write_config(tmp / "clean", url, accounts)), "sync"],
        capture_output=True, text=True, timeout=120, check=False, env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return Store.open(url)


def test_three_workers_share_accounts_hand_them_over_and_fence_a_paused_one(
    tmp_path: Path, dovecot: Dovecot, smtp_plain: SmtpServer, team_url: str
) -> None:
    began = time.monotonic()
    now = datetime.now(UTC)
    accounts, users = sources(tmp_path, dovecot, now)
    written = time.monotonic()
    team = f"[daemon]\nlease_seconds = {LEASE}\njitter = 0\n"
    digest = f'[digest]\nto = "{OWNER}"\n' + smtp_plain.toml()
    configs = {w: write_config(tmp_path / w, team_url, accounts,
                               f'{team}worker_id = "{w}"\n{digest}') for w in WORKERS}  # fmt: skip
    # A Maildir file younger than the connector's settle time (2 s) is read twice, which
    # counts its filter twice: start once every file is older.
    time.sleep(max(0.0, 2.1 - (time.monotonic() - written)))
    figures: dict[str, float] = {}
    daemons = {w: Daemon(configs[w]) for w in WORKERS}
    a, b, c = (daemons[w] for w in WORKERS)
    store = Store.open(team_url)

    def split(*sizes: int) -> bool:
        return sorted(map(len, shares(store).values())) == list(sizes)

    try:
        # 1. Every account synced, exactly a third each (see the module docstring), one digest.
        figures["all synced"] = wait("every account synced", lambda: synced_by(
            daemons, set(NAMES), now - timedelta(days=1), {}), 40, a, b, c)  # fmt: skip
        figures["settled 10/10/10"] = wait("10 each", lambda: split(10, 10, 10), 30, a, b, c)
        settled = shares(store)
        assert set(settled) == set(WORKERS)
        wait("the digest", lambda: len(smtp_plain.received) >= 1, 30, a, b, c)
        time.sleep(CLAIM_PERIOD + 1)  # every worker asked the store again meanwhile
        assert shares(store) == settled, "a settled team handed accounts around"
        for w, d in daemons.items():
            said = d.matching("accounts held", worker_id=w)[-1:]
            assert [sorted(e["accounts"]) for e in said] == [sorted(settled[w])]

        # 2. SIGKILL one worker: the other two take its accounts under newer tokens.
        gone = settled["w-c"]
        killed, mark = datetime.now(UTC), time.monotonic()
        c.kill()
        wait("w-c's accounts", lambda: synced_by({"w-a": a, "w-b": b}, set(gone), killed, gone),
             MOVE_BOUND + 10, a, b)  # fmt: skip
        figures["SIGKILL -> moved and synced"] = time.monotonic() - mark
        wait("15 each", lambda: split(15, 15), 2 * CLAIM_PERIOD + 2, a, b)

        # 3. SIGSTOP a worker in the middle of a long IMAP poll; its accounts move.
        held = shares(store)
        # The target: an IMAP account whose poll just ended, so that the next one on schedule
        # is 9 s away. Its backlog goes to Sent, which IDLE does not watch, then one message to
        # INBOX, which it does: the poll push starts then reads all of the backlog.
        picked: list[tuple[str, str]] = []

        def pick() -> bool:
            picked[:] = just_polled({w: daemons[w] for w in ("w-a", "w-b")}, held)
            return bool(picked)

        wait("an IMAP poll that just ended", pick, 15, a, b)
        paused, target = picked[0]
        other = "w-b" if paused == "w-a" else "w-a"
        p, o = daemons[paused], daemons[other]
        dovecot.append(users[target], backlog(target, now), "Sent")
        appended = datetime.now(UTC)
        dovecot.append(users[target], [mail(f"{target}.ping", "ping@example.com", OWNER, now)])
        # Stopped once the poll stored its first batch of the backlog: the next batch is in
        # flight, and a write of it would add its auto-replies to the filtered count again.
        wait(f"{paused} storing {target}'s backlog", lambda: any(
            when(e) > appended for e in p.matching("message skipped", account=target)),
            15, a, b)  # fmt: skip
        p.process.send_signal(signal.SIGSTOP)
        stopped, mark = datetime.now(UTC), time.monotonic()
        time.sleep(0.3)  # what it wrote before the stop reaches our reader
        flight = [x.outcome for x in polls(paused, p.events) if x.account == target][-1:]
        assert flight == ["cut"], f"the poll of {target} ended before SIGSTOP; raise BACKLOG"
        news = [mail(f"{target}.late", "late.sender@example.com", OWNER, now),
                mail(f"{target}.late-list", "news@lists.example", OWNER, now,
                     "List-Id: <news.lists.example>\r\n")]  # fmt: skip
        dovecot.append(users[target], news, "INBOX")
        added = datetime.now(UTC)
        lost = held[paused]
        wait(f"{paused}'s accounts", lambda: synced_by({other: o}, set(lost), stopped, lost),
             MOVE_BOUND + 10, o)  # fmt: skip
        figures["SIGSTOP -> moved and synced"] = time.monotonic() - mark
        wait(f"{target} with the new mail",
             lambda: synced_by({other: o}, {target}, added, lost), 15, o)  # fmt: skip
        late = [t.natural_key for t in store.iter_touchpoints(["late.sender@example.com"])]
        assert [k.split("|")[0] for k in late] == [f"mid:{target}.late@team.example"]

        # SIGCONT: the stopped poll's next write is refused; the worker gets a share again.
        p.process.send_signal(signal.SIGCONT)
        wait(f"{paused} refused its stale write", lambda: any(
            x.refused for x in polls(paused, p.events) if x.account == target),
            10, a, b)  # fmt: skip
        wait(f"{paused} noticed its leases went", lambda: bool(p.matching("leases lost")), 10, p)
        figures["SIGCONT -> share back"] = wait("15 each again", lambda: split(15, 15),
                                                4 * CLAIM_PERIOD + 5, a, b)  # fmt: skip

        # 4. SIGTERM: a clean stop hands every lease back.
        assert (a.stop(), b.stop()) == (0, 0), a.log()[-2000:] + b.log()[-2000:]
        assert shares(store) == {}
        assert store.leases.workers(datetime.now(UTC)) == []

        # The logs, all along: no failure but refused stale writes; overlaps only with those.
        every = [x for w, d in daemons.items() for x in polls(w, d.events, killed if d is c
                                                                else None)]  # fmt: skip
        assert [x for x in every if x.outcome.startswith(("job", FAILED)) and not x.refused] == []
        assert not any("Traceback" in d.log() for d in daemons.values())
        # The stopped worker's polls in flight, the backlog's among them, and no other.
        overlaps = {(x.worker, x.account, y.worker) for x, y in fenced_overlaps(every)}
        assert (paused, target, other) in overlaps
        assert {(x, y) for x, _, y in overlaps} == {(paused, other)}, overlaps
        assert sum(len(d.matching("digest sent")) for d in daemons.values()) == 1
        assert [m.rcpt_tos for m in smtp_plain.received] == [(OWNER,)]
        assert smtp_plain.recorder.data_commands == 1  # no other sender got as far as DATA
        (entry,) = store.outbox.recent()
        assert (entry.status, entry.attempts) == ("sent", 1)

        # Nothing doubled, nothing missing: the same log and counts as one clean sync.
        clean = clean_sync(tmp_path, accounts)
        try:
            rows = [astuple(t) for t in store.iter_touchpoints()]
            assert Counter((r[0], r[1]) for r in rows).most_common(1)[0][1] == 1
            assert rows == [astuple(t) for t in clean.iter_touchpoints()]
            assert counts(store) == counts(clean)
            assert sum(counts(clean)[target][2].values()) > BACKLOG // 10  # the check has teeth
        finally:
            clean.close()
    finally:
        for w, d in daemons.items():
            d.kill()  # SIGKILL ends a stopped process too
            (tmp_path / f"{w}.log").write_text(d.log())  # kept by pytest for a failed run
        store.close()
    figures["test"] = time.monotonic() - began
    print("FIGURES", {k: round(v, 1) for k, v in figures.items()})
    assert figures["SIGKILL -> moved and synced"] <= MOVE_BOUND
    assert figures["SIGSTOP -> moved and synced"] <= MOVE_BOUND


def test_a_worker_holding_nothing_waits_for_the_team_before_sending_the_digest(
    tmp_path: Path, smtp_plain: SmtpServer, team_url: str
) -> None:
    """Two workers, one account, both sending the digest: w-x holds the account and its first
    poll hangs (a FIFO in the Maildir blocks the read until the test writes a message into
    it); w-y holds nothing. The week's digest may go, from either, only once that first poll
    stored the account's mail."""
    root = tmp_path / "maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    fifo = root / "cur" / "1.M1P1.team:2,S"
    os.mkfifo(fifo)
    accounts = f'[[accounts]]\nname = "home"\nkind = "maildir"\npath = "{root}"\n'
    team = f"[daemon]\nlease_seconds = {LEASE}\njitter = 0\n"
    digest = f'[digest]\nto = "{OWNER}"\n' + smtp_plain.toml()
    x = Daemon(
        write_config(tmp_path / "x", team_url, accounts, f'{team}worker_id = "w-x"\n{digest}')
    )
    y: Daemon | None = None
    try:
        x.wait_event("poll started", account="home")  # and blocked opening the FIFO
        y = Daemon(write_config(tmp_path / "y", team_url, accounts,
                                f'{team}worker_id = "w-y"\n{digest}'))  # fmt: skip
        y.wait_event("worker joined the team")
        time.sleep(3)  # rounds enough for w-y to decide on the digest (it may every round)
        with fifo.open("wb") as pipe:  # the hung read returns: the first poll can finish
            pipe.write(mail("fifo", "ana@example.net", OWNER, datetime.now(UTC) - timedelta(2)))
        synced = when(x.wait_event(SYNCED, account="home"))
        team_daemons = (x, y)
        x.wait_for(lambda: any(d.matching("digest sent") for d in team_daemons), 40, "a digest")
        (sent,) = [when(e) for d in team_daemons for e in d.matching("digest sent")]
        assert sent > synced, f"digest sent at {sent}, before the account's first sync at {synced}"
        assert len(smtp_plain.received) == 1
    finally:
        for d in (x, y):
            if d is not None:
                d.kill()
