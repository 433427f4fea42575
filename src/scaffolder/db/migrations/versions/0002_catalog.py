"""The embedded catalog: entities with stitching state, relations, search, locations, refresh.

The 0001 ``catalog_entities`` table only cached what the configured files held; everything in
it is read again from the locations at start, so it is replaced rather than altered.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CatalogId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.drop_table("catalog_entities")
    op.create_table(
        "catalog_entities",
        sa.Column("id", CatalogId, primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(36), nullable=False, unique=True),
        sa.Column("entity_ref", sa.Text(), nullable=False, unique=True),
        sa.Column("source_key", sa.Text(), nullable=False),
        sa.Column("location_key", sa.Text(), nullable=True),
        sa.Column("parent_ref", sa.Text(), nullable=True),
        sa.Column("processed", sa.Text(), nullable=True),
        sa.Column("final_entity", sa.Text(), nullable=True),
        sa.Column("hash", sa.String(40), nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("orphan", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("errors", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("catalog_entities_source_idx", "catalog_entities", ["source_key"])
    op.create_index("catalog_entities_parent_idx", "catalog_entities", ["parent_ref"])
    op.create_table(
        "catalog_relations",
        sa.Column(
            "originating_id",
            CatalogId,
            sa.ForeignKey("catalog_entities.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("source_ref", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("target_ref", sa.Text(), nullable=False),
    )
    op.create_index(
        "catalog_relations_source_idx", "catalog_relations", ["source_ref", "type", "target_ref"]
    )
    op.create_index("catalog_relations_originating_idx", "catalog_relations", ["originating_id"])
    op.create_index("catalog_relations_target_idx", "catalog_relations", ["target_ref"])
    op.create_table(
        "catalog_search",
        sa.Column(
            "entity_id",
            CatalogId,
            sa.ForeignKey("catalog_entities.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("original_value", sa.Text(), nullable=True),
    )
    op.create_index("catalog_search_key_value_idx", "catalog_search", ["key", "value", "entity_id"])
    op.create_index("catalog_search_entity_idx", "catalog_search", ["entity_id"])
    op.create_index("catalog_search_facet_idx", "catalog_search", ["key", "original_value"])
    op.create_table(
        "catalog_locations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("entity_ref", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("type", "target", name="catalog_locations_type_target_uq"),
    )
    op.create_table(
        "catalog_refresh_state",
        sa.Column("source_key", sa.Text(), primary_key=True),
        sa.Column("next_refresh_at", sa.DateTime(), nullable=False),
        sa.Column("last_refresh_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("catalog_refresh_state")
    op.drop_table("catalog_locations")
    op.drop_table("catalog_search")
    op.drop_table("catalog_relations")
    op.drop_table("catalog_entities")
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
