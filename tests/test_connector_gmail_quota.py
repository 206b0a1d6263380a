"""Quota and throttling: the Gmail connector against an emulator that says "slow down" (429,
403 rate-limit reasons, Retry-After), fails (5xx), refuses (other 4xx), or enforces a rate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.connector_contract import final_cursor, keys
from tests.emulators.google import GoogleEmulator
from tests.emulators.google_setup import GmailSource, account
from tests.emulators.google_setup import emulator as emulator  # the fixture

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, SourceProblem
from keepwarm.connectors.google.gmail import GmailConnector
from keepwarm.connectors.google.quota import GMAIL_BURST, GMAIL_RATE, Pacer, TokenBucket
from keepwarm.errors import AuthError, TransientError
from keepwarm.model import Batch

LIST, GET, HISTORY = (
    "gmail.users.messages.list",
    "gmail.users.messages.get",
    "gmail.users.history.list",
)


class Sleeps(list[float]):
    """A sleep that records instead of waiting: backoff is checked, not sat through."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def context(tmp_path: Path) -> ConnectorContext:
    now = datetime.now(UTC) + timedelta(minutes=5)
    return ConnectorContext(state_dir=tmp_path / "state", now=lambda: now)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def poll(
    acct: AccountConfig, context: ConnectorContext, sleeps: Sleeps, cursor: str | None = None
) -> tuple[list[Batch], GmailConnector]:
    # jitter=1.0: the backoff's upper bound, so the delays are exact.
    connector = GmailConnector(
        acct, context, pacer=lambda: Pacer.for_rate(1e7, sleep=sleeps, jitter=lambda: 1.0)
    )
    try:
        return list(connector.poll(cursor)), connector
    finally:
        connector.close()


def test_throttled_calls_in_a_batch_wait_retry_after_and_the_batch_shrinks(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext, sleeps: Sleeps
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add([f"m{i}@x" for i in range(120)])
    emulator.fail(GET, 429, "rateLimitExceeded", count=3, retry_after=7)
    batches, connector = poll(source.account, context, sleeps)
    assert len(keys(batches)) == 120
    assert sleeps == [7.0]  # Retry-After beats the first backoff step (1 s)
    # 50 calls, three refused; then half the size, growing back by 5 per clean batch.
    assert emulator.batch_sizes == [50, 25, 30, 18]
    assert connector.fetchers[None].size == 40
    assert emulator.calls[GET] == 123  # each retried call is charged again


@pytest.mark.parametrize(
    ("status", "reason"), [(403, "userRateLimitExceeded"), (403, "rateLimitExceeded"), (429, "")]
)
def test_rate_limit_answers_are_retried_with_exponential_backoff(
    emulator: GoogleEmulator,
    tmp_path: Path,
    context: ConnectorContext,
    sleeps: Sleeps,
    status: int,
    reason: str,
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add(["a@x"])
    emulator.fail(LIST, status, reason or "rateLimitExceeded", count=3)
    batches, connector = poll(source.account, context, sleeps)
    assert keys(batches) == ["a@x"]
    assert sleeps == [1.0, 2.0, 4.0]
    assert emulator.calls[LIST] == 4
    assert connector.api(None).pacer.throttled == 3


def test_a_throttled_batch_request_is_sent_again_whole(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext, sleeps: Sleeps
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add(["a@x", "b@x"])
    emulator.fail("batch", 429, "rateLimitExceeded", retry_after=3)
    batches, _ = poll(source.account, context, sleeps)
    assert keys(batches) == ["a@x", "b@x"]
    assert sleeps == [3.0]


def test_server_errors_are_retried_then_reported_as_transient(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext, sleeps: Sleeps
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add(["a@x"])
    cursor = final_cursor(poll(source.account, context, sleeps)[0])
    emulator.fail(HISTORY, 500, "backendError", count=2)
    source.add(["b@x"])
    assert keys(poll(source.account, context, sleeps, cursor)[0]) == ["b@x"]
    emulator.fail(HISTORY, 503, "backendError", count=10)
    emulator.reset_counts()
    with pytest.raises(TransientError, match="503"):
        poll(source.account, context, sleeps, cursor)
    assert emulator.calls[HISTORY] == 6  # Pacer.attempts


@pytest.mark.parametrize(
    ("status", "reason", "error"),
    [
        (400, "invalidArgument", SourceProblem),
        (404, "notFound", SourceProblem),
        (403, "forbidden", AuthError),
        (403, "dailyLimitExceeded", AuthError),
        (401, "authError", AuthError),
    ],
)
def test_other_client_errors_are_never_retried(
    emulator: GoogleEmulator,
    tmp_path: Path,
    context: ConnectorContext,
    sleeps: Sleeps,
    status: int,
    reason: str,
    error: type[Exception],
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add(["a@x"])
    emulator.fail(LIST, status, reason, count=3)
    with pytest.raises(error, match=str(status)):
        poll(source.account, context, sleeps)
    # A 401 is google-auth's to handle: it refreshes the token and tries twice more.
    assert emulator.calls[LIST] == (3 if status == 401 else 1)
    assert sleeps == []


def test_a_refused_inner_call_is_the_accounts_problem_not_the_messages(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext, sleeps: Sleeps
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add(["a@x", "b@x"])
    emulator.fail(GET, 403, "insufficientPermissions", message="Insufficient Permission")
    with pytest.raises(AuthError, match="insufficientPermissions") as caught:
        poll(source.account, context, sleeps)
    assert "gmail.metadata" in caught.value.fix


def test_a_long_retry_after_ends_the_poll_for_the_daemon_to_wait(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext, sleeps: Sleeps
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add(["a@x"])
    emulator.fail(LIST, 429, "rateLimitExceeded", retry_after=3600)
    with pytest.raises(TransientError) as caught:
        poll(source.account, context, sleeps)
    assert caught.value.retry_after == 3600
    assert sleeps == []


def test_the_bucket_spends_at_most_burst_plus_rate_times_elapsed() -> None:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    bucket = TokenBucket(GMAIL_RATE, GMAIL_BURST, clock=lambda: clock[0], sleep=sleep)
    spent = 0
    for _ in range(400):  # 400 batches of 50 metadata gets: 100,000 units
        bucket.take(250)
        spent += 250
        assert spent <= GMAIL_BURST + GMAIL_RATE * clock[0] + 1e-6
    assert clock[0] == pytest.approx((100_000 - GMAIL_BURST) / GMAIL_RATE)
    # Any minute holds at most the per-user limit of 15,000 units.
    assert GMAIL_BURST + 60 * GMAIL_RATE <= 15_000


def test_a_backfill_stays_under_a_server_that_enforces_the_rate(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add([f"m{i}@x" for i in range(150)])
    emulator.user_rate = 600  # units in any one second
    slow = account(emulator, tmp_path, rate_limit=300)  # a second's burst + rate: 600
    connector = GmailConnector(slow, context)
    try:
        assert len(keys(list(connector.poll(None)))) == 150
        assert connector.api(None).pacer.throttled == 0
    finally:
        connector.close()
    assert emulator.throttled == 0
    # The same server with a client going flat out: throttled, backs off, still complete.
    emulator.reset_counts()
    fast = account(emulator, tmp_path, rate_limit=1e7)
    connector = GmailConnector(fast, context)
    try:
        assert len(keys(list(connector.poll(None)))) == 150
        assert connector.api(None).pacer.throttled > 0
    finally:
        connector.close()
    assert emulator.throttled > 0


def test_a_garbled_batch_answer_is_tried_again_then_transient(
    emulator: GoogleEmulator, tmp_path: Path, context: ConnectorContext, sleeps: Sleeps
) -> None:
    source = GmailSource(emulator, tmp_path)
    source.add(["a@x"])
    emulator.garbled_batches = 1
    assert keys(poll(source.account, context, sleeps)[0]) == ["a@x"]
    assert sleeps == [1.0]
    emulator.garbled_batches = 10
    with pytest.raises(TransientError, match="unreadable answer"):
        poll(source.account, context, sleeps)
