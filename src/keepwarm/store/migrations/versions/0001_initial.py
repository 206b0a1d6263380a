"""The first schema: event log, planned meetings, accounts, skips, identities, contact data.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the schema's types: a revision must not change when schema.py does later.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KEY = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
MICROS = sa.BigInteger()  # aware UTC datetimes as epoch microseconds


def _touchpoint_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("natural_key", KEY, nullable=False),
        sa.Column("counterpart", KEY, nullable=False),
        sa.Column("occurred_at", MICROS, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("participants", sa.Integer(), nullable=False),
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("thread_key", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("recorded_at", MICROS, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "touchpoints",
        *_touchpoint_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_touchpoints"),
        sa.UniqueConstraint(
            "natural_key", "counterpart", name="uq_touchpoints_natural_key_counterpart"
        ),
    )
    op.create_index(
        "ix_touchpoints_counterpart_occurred_at_natural_key",
        "touchpoints",
        ["counterpart", "occurred_at", "natural_key"],
    )
    op.create_table(
        "planned",
        *_touchpoint_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_planned"),
        sa.UniqueConstraint(
            "natural_key", "counterpart", name="uq_planned_natural_key_counterpart"
        ),
    )
    op.create_index("ix_planned_occurred_at", "planned", ["occurred_at"])
    op.create_table(
        "accounts",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("last_sync", MICROS, nullable=True),
        sa.Column("last_attempt", MICROS, nullable=True),
        sa.Column("error_kind", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_fix", sa.Text(), nullable=True),
        sa.Column("touchpoints", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_accounts"),
    )
    op.create_table(
        "filtered",
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", "reason", name="pk_filtered"),
    )
    op.create_table(
        "skipped",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", MICROS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_skipped"),
        sa.UniqueConstraint(
            "account", "source_id", "reason", name="uq_skipped_account_source_id_reason"
        ),
    )
    op.create_table(
        "identities",
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("account", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("address", "account", name="pk_identities"),
    )
    op.create_table(
        "contact_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("at", MICROS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contact_events"),
    )
    op.create_table(
        "contact_states",
        sa.Column("key", KEY, nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_contact_states"),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )


def downgrade() -> None:
    for table in (
        "meta",
        "contact_states",
        "contact_events",
        "identities",
        "skipped",
        "filtered",
        "accounts",
        "planned",
        "touchpoints",
    ):
        op.drop_table(table)
