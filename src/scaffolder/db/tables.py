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
    # The workspace of a run that ended without completing (a gzipped tar), for a re-run
    # that skips the steps it completed; dropped when the task completes (CONTRACT §11.6).
    sa.Column("workspace", sa.LargeBinary(), nullable=True),
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

#: Internal integer keys for the catalog's own joins (the public id of an entity is its uid).
CatalogId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

catalog_entities = sa.Table(
    "catalog_entities",
    metadata,
    sa.Column("id", CatalogId, primary_key=True, autoincrement=True),
    sa.Column("uid", sa.String(36), nullable=False, unique=True),
    # Lower-cased `kind:namespace/name`, the catalog's identity for an entity.
    sa.Column("entity_ref", sa.Text(), nullable=False, unique=True),
    # The refresh root that emits the entity: the ref of a registered or configured
    # Location entity, or `provider:<key>` for entities put in by code.
    sa.Column("source_key", sa.Text(), nullable=False),
    # `type:target` of the file the entity was read from (conflicts are decided on it).
    sa.Column("location_key", sa.Text(), nullable=True),
    # The Location entity that emitted this one (`/ancestry`); null for roots.
    sa.Column("parent_ref", sa.Text(), nullable=True),
    # The last successfully processed entity (JSON); stitching starts from it.
    sa.Column("processed", sa.Text(), nullable=True),
    # The stitched entity exactly as the API serves it (JSON); null until processed once.
    sa.Column("final_entity", sa.Text(), nullable=True),
    sa.Column("hash", sa.String(40), nullable=True),
    sa.Column("etag", sa.Text(), nullable=True),
    sa.Column("generation", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("orphan", sa.Boolean(), nullable=False, server_default=sa.false()),
    # Serialized errors of the last processing (JSON list), shown in `status.items`.
    sa.Column("errors", sa.Text(), nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Index("catalog_entities_source_idx", "source_key"),
    sa.Index("catalog_entities_parent_idx", "parent_ref"),
    sqlite_autoincrement=True,
)

catalog_relations = sa.Table(
    "catalog_relations",
    metadata,
    # The entity whose processing emitted the relation (both directions are emitted by it).
    sa.Column(
        "originating_id",
        CatalogId,
        sa.ForeignKey("catalog_entities.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("source_ref", sa.Text(), nullable=False),
    sa.Column("type", sa.Text(), nullable=False),
    sa.Column("target_ref", sa.Text(), nullable=False),
    sa.Index("catalog_relations_source_idx", "source_ref", "type", "target_ref"),
    sa.Index("catalog_relations_originating_idx", "originating_id"),
    sa.Index("catalog_relations_target_idx", "target_ref"),
)

catalog_search = sa.Table(
    "catalog_search",
    metadata,
    sa.Column(
        "entity_id",
        CatalogId,
        sa.ForeignKey("catalog_entities.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # Lower-cased dot path (CONTRACT §8.1); keys over 200 characters are not indexed.
    sa.Column("key", sa.Text(), nullable=False),
    # Lower-cased value; null for null values and values over 200 characters.
    sa.Column("value", sa.Text(), nullable=True),
    sa.Column("original_value", sa.Text(), nullable=True),
    sa.Index("catalog_search_key_value_idx", "key", "value", "entity_id"),
    sa.Index("catalog_search_entity_idx", "entity_id"),
    sa.Index("catalog_search_facet_idx", "key", "original_value", "entity_id"),
)

catalog_locations = sa.Table(
    "catalog_locations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("type", sa.Text(), nullable=False),
    sa.Column("target", sa.Text(), nullable=False),
    sa.Column("entity_ref", sa.Text(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.UniqueConstraint("type", "target", name="catalog_locations_type_target_uq"),
)

catalog_refresh_state = sa.Table(
    "catalog_refresh_state",
    metadata,
    sa.Column("source_key", sa.Text(), primary_key=True),
    sa.Column("next_refresh_at", sa.DateTime(), nullable=False),
    sa.Column("last_refresh_at", sa.DateTime(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
)
