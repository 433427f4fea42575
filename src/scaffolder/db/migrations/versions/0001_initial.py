"""Initial schema: tasks, task_events, catalog_entities.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

EventId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=True),
    )
    op.create_index("tasks_status_idx", "tasks", ["status"])
    op.create_index("tasks_created_at_idx", "tasks", ["created_at"])
    op.create_table(
        "task_events",
        sa.Column("id", EventId, primary_key=True, autoincrement=True),
        sa.Column(
            "task_id",
            sa.String(36),
            sa.ForeignKey("tasks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("task_events_task_id_idx", "task_events", ["task_id"])
    op.create_table(
        "catalog_entities",
        sa.Column("entity_ref", sa.String(512), primary_key=True),
        sa.Column("uid", sa.String(36), nullable=False, unique=True),
        sa.Column("kind", sa.String(63), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("location_key", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("catalog_entities_kind_idx", "catalog_entities", ["kind"])
    op.create_index("catalog_entities_location_idx", "catalog_entities", ["location_key"])


def downgrade() -> None:
    op.drop_table("catalog_entities")
    op.drop_table("task_events")
    op.drop_table("tasks")
