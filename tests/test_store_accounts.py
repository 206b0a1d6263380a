"""Account bookkeeping: cursors, errors, attempts, skipped and filtered counts, identities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keepwarm.model import Direction, Kind, Role, Skip, Touchpoint
from keepwarm.store import AccountState, Store

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def email(key: str, account: str) -> Touchpoint:
    return Touchpoint(
        key, "ann@example.org", NOW, Kind.EMAIL, Direction.IN, Role.FROM, 2, account, "imap"
    )


def test_skips_are_counted_by_reason_once_each(store: Store) -> None:
    skips = [Skip("1", "no-date"), Skip("2", "no-date"), Skip("3", "bad-header", "line 4")]
    store.ingest("home", [], [], skips, None, now=NOW)
    # The same unreadable messages seen again on a resync, plus one new reason for message 1.
    store.ingest("home", [], [], [*skips, Skip("1", "too-large")], None, now=NOW)
    store.ingest("work", [], [], [Skip("1", "no-date")], None, now=NOW)
    states = {s.name: s for s in store.account_states()}
    assert states["home"].skipped == 4
    assert states["home"].skipped_reasons == {"bad-header": 1, "no-date": 2, "too-large": 1}
    assert states["work"].skipped_reasons == {"no-date": 1}


def test_filtered_counts_add_up_across_batches(store: Store) -> None:
    store.ingest("home", [], [], [], None, now=NOW, filtered={"mailing-list": 3, "no-reply": 1})
    store.ingest("home", [], [], [], None, now=NOW, filtered={"mailing-list": 2, "bulk": 0})
    [state] = store.account_states()
    assert state.filtered == {"mailing-list": 5, "no-reply": 1}


def test_error_is_recorded_and_cleared_by_the_next_sync(store: Store) -> None:
    store.ingest("work", [email("mid:1@x", "work")], [], [], "c1", now=NOW)
    later = NOW + timedelta(minutes=5)
    store.mark_attempt("work", later)
    store.record_error("work", "auth", "token revoked", "keepwarm auth work", later)
    [failed] = store.account_states()
    assert failed == AccountState(
        name="work",
        cursor="c1",
        last_sync=NOW,
        last_attempt=later,
        error_kind="auth",
        error="token revoked",
        error_fix="keepwarm auth work",
        touchpoints=1,
        skipped=0,
        skipped_reasons={},
        filtered={},
    )
    fixed = later + timedelta(hours=1)
    store.ingest("work", [], [], [], None, now=fixed)
    [ok] = store.account_states()
    assert (ok.error_kind, ok.error, ok.error_fix, ok.last_sync) == (None, None, None, fixed)
    assert ok.cursor == "c1"


def test_an_account_that_never_synced_is_listed(store: Store) -> None:
    store.record_error("imap", "transient", "connection refused", "", NOW)
    store.mark_attempt("gmail", NOW)
    states = store.account_states()
    assert [s.name for s in states] == ["gmail", "imap"]
    assert states[0].last_sync is None
    assert states[0].last_attempt == NOW
    assert states[1].error_kind == "transient"
    assert states[1].cursor is None


def test_reset_cursor_forgets_it_and_keeps_the_rest(store: Store) -> None:
    store.ingest("home", [email("mid:1@x", "home")], [], [], "c9", now=NOW)
    store.reset_cursor("home")
    assert store.cursor("home") is None
    [state] = store.account_states()
    assert (state.touchpoints, state.last_sync) == (1, NOW)


def test_identities_collect_across_accounts(store: Store) -> None:
    assert store.identities() == frozenset()
    store.ingest("home", [], [], [], None, now=NOW, identities=["me@home.org", "alias@home.org"])
    store.ingest("work", [], [], [], None, now=NOW, identities={"me@work.com", "me@home.org"})
    store.ingest("home", [], [], [], None, now=NOW, identities=["me@home.org"])
    assert store.identities() == {"me@home.org", "alias@home.org", "me@work.com"}
