"""Opening a store: migrations, SQLite settings, the default location, and clear failures."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from keepwarm.errors import StoreError
from keepwarm.model import Direction, Kind, Role, Touchpoint
from keepwarm.store import Store
from keepwarm.store.schema import Base

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def email(key: str) -> Touchpoint:
    return Touchpoint(key, "ann@example.org", NOW, Kind.EMAIL, Direction.IN, Role.FROM, 2, "h", "x")


def test_migrated_schema_matches_the_models(store_url: str) -> None:
    Store.open(store_url).close()
    Store.open(store_url).close()  # a second open finds nothing to do
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            assert context.get_current_revision() == "0003"
    finally:
        engine.dispose()


def test_migrations_ship_inside_the_package() -> None:
    migrations = resources.files("keepwarm.store.migrations")
    for name in (
        "env.py",
        "script.py.mako",
        "versions/__init__.py",
        "versions/0001_initial.py",
        "versions/0002_outbox.py",
        "versions/0003_leases_status.py",
    ):
        assert migrations.joinpath(name).is_file(), name


def test_sqlite_creates_its_directory_and_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "keepwarm.db"
    with Store.open(f"sqlite:///{path}") as store:
        store.ingest("h", [email("mid:1@x")], [], [], None, now=NOW)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_writer_waits_for_the_lock_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "keepwarm.db"
    store = Store.open(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    release = threading.Timer(1.0, lambda: other.execute("COMMIT"))
    release.start()
    try:
        started = time.monotonic()
        store.ingest("h", [email("mid:1@x")], [], [], "c", now=NOW)
        assert time.monotonic() - started >= 0.9
        assert store.cursor("h") == "c"
    finally:
        release.join()
        other.close()
        store.close()


def test_readers_and_a_writer_share_the_store(store: Store) -> None:
    store.ingest("h", [email(f"mid:{i}@x") for i in range(5)], [], [], None, now=NOW)
    rows = store.iter_touchpoints(batch_size=1)
    next(rows)
    # The daemon keeps syncing while a replay is half way through.
    store.ingest("h", [email("mid:new@x")], [], [], "c2", now=NOW)
    assert 1 + sum(1 for _ in rows) == 5  # the replay saw one consistent snapshot
    assert store.count_touchpoints() == 6


def test_default_url_is_in_the_xdg_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    url = Store.default_url()
    assert url == f"sqlite:///{tmp_path / 'state' / 'keepwarm' / 'keepwarm.db'}"
    Store.open(url).close()
    assert (tmp_path / "state" / "keepwarm" / "keepwarm.db").is_file()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://kw:s3cret-pw@127.0.0.1:1/keepwarm", "127.0.0.1:1"),
        ("nosuchdb://kw:s3cret-pw@localhost/keepwarm", "nosuchdb://kw:***@localhost/keepwarm"),
        ("not a url, s3cret-pw", "not a database URL"),
    ],
)
def test_an_unusable_url_raises_store_error_without_the_password(url: str, expected: str) -> None:
    with pytest.raises(StoreError) as caught:
        Store.open(url)
    message = str(caught.value)
    assert message.startswith("cannot open the store")
    assert expected in message
    assert "s3cret-pw" not in message


@pytest.mark.postgres
def test_a_missing_postgres_database_is_a_store_error(pg_admin_url: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(pg_admin_url).set(password="s3cret-pw", database="keepwarm_no_such_db")
    with pytest.raises(StoreError, match="keepwarm_no_such_db") as caught:
        Store.open(url.render_as_string(hide_password=False))
    assert "s3cret-pw" not in str(caught.value)
    assert "***" in str(caught.value)


def test_sqlite_path_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open the store"):
        Store.open(f"sqlite:///{blocker / 'keepwarm.db'}")


def test_a_database_from_a_newer_keepwarm_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keepwarm.db'}"
    Store.open(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match="9999"):
        Store.open(url)


def test_the_fast_head_check_names_alembics_head() -> None:
    """`engine.HEAD` lets a store open without importing Alembic: it must be the real head."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from keepwarm.store import engine

    config = Config()
    config.set_main_option("script_location", str(engine.MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == engine.HEAD
