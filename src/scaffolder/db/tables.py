"""Table definitions (SQLAlchemy Core), shared by the stores and the Alembic migrations.

The scaffolder tables mirror Backstage's (``tasks``, ``task_events`` with one global event
sequence) so that the same queries work on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

#: Event ids are one global sequence across all tasks (Backstage's bigIncrements).
EventId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("spec", sa.Text(), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("last_heartbeat_at", sa.DateTime(), nullable=True),
    sa.Column("secrets", sa.Text(), nullable=True),
    sa.Column("created_by", sa.Text(), nullable=True),
    sa.Column("state", sa.Text(), nullable=True),
    sa.Index("tasks_status_idx", "status"),
    sa.Index("tasks_created_at_idx", "created_at"),
)

task_events = sa.Table(
    "task_events",
    metadata,
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
    sa.Index("task_events_task_id_idx", "task_id"),
    sqlite_autoincrement=True,
)

catalog_entities = sa.Table(
    "catalog_entities",
    metadata,
    # Lower-cased `kind:namespace/name`, the catalog's identity for an entity.
    sa.Column("entity_ref", sa.String(512), primary_key=True),
    sa.Column("uid", sa.String(36), nullable=False, unique=True),
    sa.Column("kind", sa.String(63), nullable=False),
    sa.Column("namespace", sa.String(63), nullable=False),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("etag", sa.String(64), nullable=False),
    # `type:target` of the location the entity was read from.
    sa.Column("location_key", sa.Text(), nullable=False),
    sa.Column("entity", sa.Text(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Index("catalog_entities_kind_idx", "kind"),
    sa.Index("catalog_entities_location_idx", "location_key"),
)
