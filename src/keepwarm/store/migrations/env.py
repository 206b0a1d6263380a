"""Alembic environment: runs on the connection the store hands over, never from alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from keepwarm.store.schema import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("keepwarm migrations run through keepwarm.store.engine.migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters tables by copying them; batch mode does that for later revisions.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
# The caller owns the transaction (one for all revisions); this joins it.
with context.begin_transaction():
    context.run_migrations()
