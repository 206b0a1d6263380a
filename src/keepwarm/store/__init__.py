"""The store: the only module that talks to the database (SQLAlchemy, Alembic)."""

from keepwarm.store.accounts import AccountState
from keepwarm.store.store import Store

__all__ = ["AccountState", "Store"]
