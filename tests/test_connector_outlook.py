"""The Outlook mail connector against the local identity platform and Graph emulators: the
contract suite, then what a user of a Microsoft 365 / Outlook.com mailbox relies on."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
import structlog
from structlog.testing import capture_logs
from tests.connector_contract import ConnectorContract, final_cursor, keys, messages, skips
from tests.emulators.microsoft import (
    USER,
    Emulators,
    OpensslMissing,
    emulators,
    outlook_account,
    sign_in,
)

from keepwarm.config.schema import AccountConfig, Config
from keepwarm.connectors.base import ConnectorContext, SourceProblem, create
from keepwarm.connectors.microsoft.mail import OutlookMailConnector
from keepwarm.daemon.ingest import sync_account
from keepwarm.errors import CursorExpired, TransientError
from keepwarm.model import Batch, Person
from keepwarm.store import Store

NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def _plain_logging() -> None:
    # CLI tests configure structlog to print to a captured stderr that is closed afterwards;
    # a warning logged by a later test would then fail on the closed file.
    structlog.reset_defaults()


@pytest.fixture
def em() -> Emulators:
    try:
        found = emulators()
    except OpensslMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    found.reset()
    return found


@pytest.fixture
def context(tmp_path: Path) -> ConnectorContext:
    return ConnectorContext(state_dir=tmp_path / "state", now=lambda: NOW + timedelta(minutes=5))


@pytest.fixture
def account(em: Emulators, context: ConnectorContext) -> AccountConfig:
    found = outlook_account(em)
    sign_in(found, context.state_dir)
    return found


class GraphMail:
    """The contract's source: messages delivered into the emulated inbox."""

    def __init__(self, em: Emulators, account: AccountConfig) -> None:
        self.em = em
        self.account = account

    def add(self, keys: list[str]) -> None:
        for i, key in enumerate(keys):
            received = NOW - timedelta(hours=2, seconds=i)
            self.em.graph.add_message(
                USER, message_id=key, sender="alice@example.org", to=(USER,), received=received
            )

    def add_bad(self, key: str) -> None:
        # Exchange writes its minimum date on items it could not date: unusable.
        self.em.graph.add_message(
            USER,
            message_id=key,
            sender="alice@example.org",
            to=(USER,),
            sent="0001-01-01T00:00:00Z",
        )


class TestOutlookMailContract(ConnectorContract):
    many: ClassVar[int] = 2_500

    @pytest.fixture
    def source(self, em: Emulators, account: AccountConfig) -> GraphMail:
        return GraphMail(em, account)


def poll(
    account: AccountConfig, context: ConnectorContext, cursor: str | None = None
) -> tuple[list[Batch], OutlookMailConnector]:
    connector = create(account, context)
    assert isinstance(connector, OutlookMailConnector)
    try:
        return list(connector.poll(cursor)), connector
    finally:
        connector.close()


# --- what is read, and how ----------------------------------------------------------------


def test_metadata_only_with_immutable_ids_and_the_largest_pages(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    sent = NOW - timedelta(days=3)
    em.graph.add_message(
        USER,
        message_id="in-1@example.org",
        sender="alice@example.org",
        to=(USER,),
        cc=("carol@example.org",),
        sent=sent,
        received=sent + timedelta(minutes=1),
    )
    em.graph.add_message(
        USER,
        "sentitems",
        message_id="out-1@example.net",
        sender=USER,
        to=("bob@example.org",),
        bcc=("dave@example.org",),
    )
    batches, connector = poll(account, context)
    found = messages(batches)
    inbound, outbound = found["in-1@example.org"], found["out-1@example.net"]
    assert inbound.sender == (Person("alice@example.org"),)
    assert inbound.cc == (Person("carol@example.org"),)
    assert inbound.date == sent.replace(microsecond=0)  # the Date header: sentDateTime
    assert (inbound.sent, inbound.folder) == (None, "inbox")
    assert inbound.source_id.startswith("AAkAL")  # the immutable id
    assert (outbound.sent, outbound.bcc) == (True, (Person("dave@example.org"),))
    assert USER in {i for b in batches for i in b.identities}
    # Only metadata: a $select without body, and never a body in any answer.
    deltas = em.graph.paths("/messages/delta")
    assert all("body" not in r.query["$select"].split(",") for r in deltas)
    assert em.graph.bodies_sent == 0
    for request in em.graph.requests:
        assert 'IdType="ImmutableId"' in request.prefer
    assert all("odata.maxpagesize=1000" in r.prefer for r in deltas)
    assert connector.last_poll.header_fetches == 0


def test_backfill_reads_only_the_window(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    em.graph.add_message(
        USER,
        message_id="old@x",
        sender="alice@example.org",
        to=(USER,),
        received=NOW - timedelta(days=400),
    )
    em.graph.add_message(
        USER,
        message_id="new@x",
        sender="alice@example.org",
        to=(USER,),
        received=NOW - timedelta(days=10),
    )
    batches, _ = poll(replace(account, backfill_days=365), context)
    assert keys(batches) == ["new@x"]
    [delta] = em.graph.paths("inbox/messages/delta")
    assert delta.query["$filter"].startswith("receivedDateTime ge ")


def test_a_window_over_graphs_filter_cap_is_read_whole(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    # Graph returns at most 5,000 messages from a delta with $filter: the connector counts the
    # window first and reads a bigger one without the filter, dropping the older mail itself.
    for i in range(5_001):
        em.graph.add_message(
            USER,
            message_id=f"m{i}@x",
            sender="alice@example.org",
            to=(USER,),
            received=NOW - timedelta(minutes=i + 1),
        )
    em.graph.add_message(
        USER,
        message_id="ancient@x",
        sender="alice@example.org",
        to=(USER,),
        received=NOW - timedelta(days=2_000),
    )
    batches, _ = poll(account, context)
    found = keys(batches)
    assert len(found) == 5_001
    assert "ancient@x" not in found
    assert all("$filter" not in r.query for r in em.graph.paths("inbox/messages/delta"))


def test_a_moved_message_keeps_its_id_and_removals_change_nothing(
    em: Emulators, context: ConnectorContext
) -> None:
    account = outlook_account(em, folders=("archive",))
    sign_in(account, context.state_dir)
    kept = em.graph.add_message(USER, message_id="keep@x", sender="alice@example.org", to=(USER,))
    gone = em.graph.add_message(USER, message_id="gone@x", sender="bob@example.org", to=(USER,))
    first, _ = poll(account, context)
    before = {m.message_id: m.source_id for m in messages(first).values()}
    em.graph.move(USER, kept.id, "archive")
    em.graph.remove(USER, gone.id)
    second, _ = poll(account, context, final_cursor(first))
    [moved] = [item for b in second for item in b.items]
    # The inbox reports both as @removed, which records nothing; the archive reports the
    # moved message with the same (immutable) id.
    assert (moved.message_id, moved.folder, moved.source_id) == (
        "keep@x",
        "archive",
        before["keep@x"],
    )
    assert skips(second) == []
    removed = em.graph.paths("inbox/messages/delta")[-1]
    assert "$deltatoken" in removed.query


def test_configured_folders_by_display_name(em: Emulators, context: ConnectorContext) -> None:
    projects = em.graph.folder(USER, "Projects")
    em.graph.folder(USER, "Acme", parent=projects.id)
    em.graph.add_message(USER, "Acme", message_id="acme@x", sender="ann@acme.example", to=(USER,))
    account = outlook_account(em, folders=("Projects/Acme",))
    sign_in(account, context.state_dir)
    batches, _ = poll(account, context)
    assert messages(batches)["acme@x"].folder == "Projects/Acme"
    missing = replace(account, folders=("Nowhere",))
    with pytest.raises(SourceProblem, match="no mail folder 'Nowhere'"):
        poll(missing, context)


def test_an_idle_poll_costs_one_request_per_folder(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    em.graph.add_message(USER, message_id="a@x", sender="alice@example.org", to=(USER,))
    cursor = final_cursor(poll(account, context)[0])
    em.graph.requests.clear()
    em.identity.requests.clear()
    em.graph.random_tokens = True  # a new deltaLink for nothing must not move the cursor
    batches, _ = poll(account, context, cursor)
    assert keys(batches) == []
    assert final_cursor(batches, cursor) == cursor
    # One request per folder: each folder's deltaLink, answered with nothing.
    assert [
        (r.path.endswith("/messages/delta"), "$deltatoken" in r.query) for r in em.graph.requests
    ] == [(True, True), (True, True)]
    assert em.identity.token_requests("refresh_token") == []  # the cached token served


# --- automated-mail headers ---------------------------------------------------------------


def test_headers_are_fetched_only_where_the_address_fields_cannot_tell(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    g = em.graph
    g.add_message(USER, message_id="person@x", sender="alice@example.org", to=(USER,))
    listed = g.add_message(
        USER,
        message_id="list@x",
        sender="carol@example.org",
        to=("dev@lists.example.org",),
        headers=(("List-Id", "<dev.lists.example.org>"), ("Received", "x")),
    )
    behalf = g.add_message(
        USER,
        message_id="behalf@x",
        sender="dan@example.org",
        to=(USER,),
        on_behalf="dev-bounces@lists.example.org",
        headers=(("Precedence", "list"),),
    )
    g.add_message(
        USER,
        message_id="invite@x",
        sender="erin@example.org",
        to=(USER,),
        odata_type="#microsoft.graph.eventMessageRequest",
    )
    g.add_message(USER, message_id="noreply@x", sender="no-reply@shop.example", to=("x@y.z",))
    batches, connector = poll(account, context)
    found = messages(batches)
    fetched = sorted(r.path.rsplit("/", 1)[-1] for r in g.paths("/v1.0/me/messages/"))
    assert fetched == sorted([listed.id, behalf.id])
    assert connector.last_poll.header_fetches == 2
    assert dict(found["list@x"].signals) == {"list-id": "<dev.lists.example.org>"}
    assert dict(found["behalf@x"].signals) == {"precedence": "list"}
    assert dict(found["invite@x"].signals) == {
        "content-class": "urn:content-classes:calendarmessage"
    }
    assert found["person@x"].signals == ()
    # Turned off, nothing is looked up.
    em.graph.requests.clear()
    poll(replace(account, fetch_headers=False), context)
    assert em.graph.paths("/v1.0/me/messages/") == []


def test_header_lookups_run_in_parallel_but_at_most_four_at_a_time(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    for i in range(12):
        em.graph.add_message(
            USER, message_id=f"l{i}@x", sender=f"p{i}@example.org", to=("all@lists.example.org",)
        )
    em.graph.delay = 0.15
    started = time.monotonic()
    _, connector = poll(account, context)
    assert connector.last_poll.header_fetches == 12
    assert em.graph.max_in_flight == 4
    # 12 lookups of 0.15 s, four at a time: about 0.45 s of lookups rather than 1.8 s.
    assert time.monotonic() - started < 1.6


# --- throttling, errors, expired delta state ----------------------------------------------


def test_throttling_waits_for_retry_after(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    em.graph.add_message(USER, message_id="a@x", sender="alice@example.org", to=(USER,))
    em.graph.throttle(1, status=429, retry_after="1", path="/messages/delta")
    em.graph.throttle(1, status=503, retry_after=None, path="sentitems")  # backoff with jitter
    batches, _ = poll(account, context)
    assert keys(batches) == ["a@x"]
    inbox = em.graph.paths("inbox/messages/delta")
    assert len(inbox) == 2
    assert inbox[1].at - inbox[0].at >= 1.0


def test_throttling_beyond_a_minute_hands_the_wait_to_the_daemon(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    em.graph.throttle(1, status=429, retry_after="600")
    started = time.monotonic()
    with pytest.raises(TransientError) as raised:
        poll(account, context)
    assert raised.value.retry_after == 600
    assert time.monotonic() - started < 5


def test_a_server_that_keeps_failing_is_a_transient_error(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    em.graph.throttle(5, status=503, retry_after="0")
    with pytest.raises(TransientError, match="503"):
        poll(account, context)
    assert len(em.graph.requests) == 5


@pytest.mark.parametrize(
    ("status", "code"),
    [(410, "SyncStateNotFound"), (400, "syncStateNotFound"), (410, "resyncRequired")],
)
def test_an_expired_delta_rereads_that_folder_only_without_duplicates(
    em: Emulators, context: ConnectorContext, tmp_path: Path, status: int, code: str
) -> None:
    account = outlook_account(em, addresses=(USER,))
    sign_in(account, context.state_dir)
    em.graph.add_message(USER, message_id="a@x", sender="alice@example.org", to=(USER,))
    em.graph.add_message(USER, "sentitems", message_id="b@x", sender=USER, to=("bob@example.org",))
    config = Config(accounts=(account,))
    with Store.open(f"sqlite:///{tmp_path / 'keepwarm.db'}") as store:
        first = sync_account(store, config, account, context, now=lambda: NOW)
        assert first.ok
        assert first.new == 2
        inbox = em.graph.folder(USER, "inbox").id
        em.graph.expire_delta(status, code, container=inbox)
        em.graph.requests.clear()
        second = sync_account(store, config, account, context, now=lambda: NOW)
        assert second.ok, second.error
        assert (second.items, second.new) == (1, 0)  # the inbox read again, nothing doubled
        sent = [r for r in em.graph.paths("sentitems/messages") if "$deltatoken" not in r.query]
        assert sent == []  # the sent folder went on from its deltaLink
        third = sync_account(store, config, account, context, now=lambda: NOW)
        assert (third.ok, third.items) == (True, 0)


def test_a_cursor_from_another_endpoint_asks_for_a_resync(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    cursor = final_cursor(poll(account, context)[0])
    assert cursor is not None
    moved = replace(account, graph_endpoint=em.graph_root.replace("127.0.0.1", "localhost"))
    with pytest.raises(CursorExpired):
        poll(moved, context, cursor)


def test_the_certificate_is_checked_against_ca_file_even_with_requests_ca_bundle(
    em: Emulators,
    account: AccountConfig,
    context: ConnectorContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # REQUESTS_CA_BUNDLE names the system bundle, which does not trust the emulators: ca_file
    # must win over it, and without ca_file the emulators' certificate must be refused.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    em.graph.add_message(USER, message_id="a@x", sender="alice@example.org", to=(USER,))
    assert keys(poll(account, context)[0]) == ["a@x"]
    with pytest.raises(SourceProblem, match="certificate"):
        poll(replace(account, ca_file=None), context)


def test_app_only_access_reads_the_configured_mailbox(
    em: Emulators, context: ConnectorContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = "sales@example.net"
    em.graph.mailbox(shared)
    em.identity.client_secrets["app-id"] = "s3cret-value"
    monkeypatch.setenv("KW_SECRET", "s3cret-value")
    account = outlook_account(em, client_id="app-id", client_secret_env="KW_SECRET", mailbox=shared)
    em.graph.add_message(shared, message_id="order@x", sender="buyer@example.org", to=(shared,))
    batches, _ = poll(account, context)
    assert keys(batches) == ["order@x"]
    assert {r.path.split("/")[2:4][0] for r in em.graph.requests} == {"users"}
    assert all(f"/users/{shared}/" in r.path for r in em.graph.requests)
    [grant] = em.identity.token_requests("client_credentials")
    assert grant.form["scope"].endswith("/.default")
    assert shared in {i for b in batches for i in b.identities}


def test_headers_the_app_may_not_read_are_done_without(
    em: Emulators, account: AccountConfig, context: ConnectorContext
) -> None:
    em.graph.headers_need = "Mail.Read"  # as if Mail.ReadBasic did not cover them
    for i in range(3):
        em.graph.add_message(
            USER,
            message_id=f"l{i}@x",
            sender="carol@example.org",
            to=("dev@lists.example.org",),
            headers=(("List-Id", "<dev>"),),
        )
    with capture_logs() as logs:
        batches, _ = poll(account, context)
    assert keys(batches) == ["l0@x", "l1@x", "l2@x"]
    assert all(m.signals == () for m in messages(batches).values())
    denied = [e for e in logs if e["event"].startswith("internet headers denied")]
    assert len(denied) == 1
    assert denied[0]["fix"] == "grant Mail.Read, or set fetch_headers = false"
