"""``tasks.workspace``: the workspace a re-run that skips completed steps restores.

Upstream's table has the column (``binary``, written by its ``database`` workspace provider);
ours holds the gzipped tar a run that ended without completing leaves (CONTRACT §11.6).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("workspace", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("workspace")
