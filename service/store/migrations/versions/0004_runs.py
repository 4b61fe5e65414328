"""Tracking runs: runs, their tags and flattened params, metric points and param points.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("name", sa.String(250), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("source_commit", sa.String(100), nullable=True),
        sa.Column("dataset", sa.Text, nullable=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_runs_project_created", "runs", ["project", "created_at", "id"])
    op.create_index("ix_runs_project_model_created", "runs", ["project", "model_name", "created_at"])
    op.create_table(
        "run_labels",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "kind", "key", name="pk_run_labels"),
    )
    op.create_index("ix_run_labels_kind_key_value", "run_labels", ["kind", "key", "value"])
    op.create_table(
        "run_points",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("worker", sa.String(100), nullable=False),
        sa.Column("first_step", sa.BigInteger, nullable=False),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "name", "worker", "first_step", name="pk_run_points"),
    )
    op.create_table(
        "run_params",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("value", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "name", "step", name="pk_run_params"),
    )


def downgrade() -> None:
    op.drop_table("run_params")
    op.drop_table("run_points")
    op.drop_index("ix_run_labels_kind_key_value", table_name="run_labels")
    op.drop_table("run_labels")
    op.drop_index("ix_runs_project_model_created", table_name="runs")
    op.drop_index("ix_runs_project_created", table_name="runs")
    op.drop_table("runs")
