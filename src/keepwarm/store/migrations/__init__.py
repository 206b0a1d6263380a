"""Alembic migrations of the store; `keepwarm.store.engine.migrate` runs them to head."""
