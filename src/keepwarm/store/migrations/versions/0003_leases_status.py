"""Team-mode leases, recorded status changes, the projection's pending contacts; `meta` dropped.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copies of the schema's types: a revision must not change when schema.py does later.
KEY = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
MICROS = sa.BigInteger()  # aware UTC datetimes as epoch microseconds
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("account", KEY, nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", MICROS, nullable=False),
        sa.Column("acquired_at", MICROS, nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_leases"),
    )
    op.create_table(
        "contact_status",
        sa.Column("contact", KEY, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("since", MICROS, nullable=False),
        sa.PrimaryKeyConstraint("contact", name="pk_contact_status"),
    )
    op.create_table(
        "status_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("contact", KEY, nullable=False),
        sa.Column("at", MICROS, nullable=False),
        sa.Column("old", sa.String(length=16), nullable=True),
        sa.Column("new", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_status_events"),
    )
    op.create_table(
        "pending",
        sa.Column("counterpart", KEY, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("counterpart", name="pk_pending"),
    )
    op.create_index("ix_status_events_at", "status_events", ["at"])
    op.create_index("ix_status_events_contact_at", "status_events", ["contact", "at"])
    op.drop_table("meta")


def downgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )
    op.drop_index("ix_status_events_contact_at", table_name="status_events")
    op.drop_index("ix_status_events_at", table_name="status_events")
    op.drop_table("pending")
    op.drop_table("status_events")
    op.drop_table("contact_status")
    op.drop_table("leases")
