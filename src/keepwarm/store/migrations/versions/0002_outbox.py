"""The digest outbox: one row per (recipient, period), so a digest goes out once per period.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copies of the schema's types: a revision must not change when schema.py does later.
KEY = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
MICROS = sa.BigInteger()  # aware UTC datetimes as epoch microseconds


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("recipient", KEY, nullable=False),
        sa.Column("period", KEY, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", MICROS, nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_attempt", MICROS, nullable=True),
        sa.Column("next_attempt", MICROS, nullable=True),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_until", MICROS, nullable=True),
        sa.Column("sent_at", MICROS, nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("recipient", "period", name="pk_outbox"),
    )


def downgrade() -> None:
    op.drop_table("outbox")
