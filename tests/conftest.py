"""Shared fixtures: a store on SQLite and on the real PostgreSQL server, for every store test.

PostgreSQL is not optional: when the server at KEEPWARM_TEST_PG cannot be reached, the
PostgreSQL variants fail with a message saying so, rather than skipping.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from keepwarm.store import Store
from keepwarm.store.schema import Base

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Each test starts with structlog's defaults: a CLI test configures logging to the stderr
    pytest captured for it, which is closed once that test ends."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """A URL of the PostgreSQL server with the right to create databases."""
    return os.environ.get("KEEPWARM_TEST_PG", PG_DEFAULT)


@pytest.fixture(scope="session")
def pg_database(pg_admin_url: str) -> Iterator[Engine]:
    """A fresh, migrated database for this test session, dropped at the end."""
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    name = f"keepwarm_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0"))
    except Exception as exc:
        admin.dispose()
        shown = make_url(pg_admin_url).render_as_string(hide_password=True)
        pytest.fail(
            f"PostgreSQL is needed for the store tests and is not reachable at {shown} "
            f"(set KEEPWARM_TEST_PG, or start it: pg_ctlcluster --skip-systemctl-redirect "
            f"$(ls /etc/postgresql) main start): {exc}",
            pytrace=False,
        )
    url = make_url(pg_admin_url).set(database=name)
    Store.open(url.render_as_string(hide_password=False)).close()
    database = create_engine(url)
    try:
        yield database
    finally:
        database.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty(database: Engine) -> None:
    """Truncate every table: far faster than a database per test, and the schema stays."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with database.begin() as conn:
        # A test that left a streaming read open would otherwise make TRUNCATE wait forever.
        conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store: a new SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'keepwarm.db'}"
    database: Engine = request.getfixturevalue("pg_database")
    _empty(database)
    return database.url.render_as_string(hide_password=False)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open, migrated, empty store, closed after the test."""
    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()
