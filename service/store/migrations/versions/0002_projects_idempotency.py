"""Projects on batches and jobs, idempotency keys, the page-token key; drop jobs.cancel_requested.

Rows stored before are project ``default`` (the project of a key that names none).
``cancel_requested`` was written but never read: a cancel sets the status and clears the lease.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PROJECT = sa.String(100)


def upgrade() -> None:
    # A plain string default: SQLite adds such a column in place, without copying the table.
    op.add_column("batches", sa.Column("project", PROJECT, nullable=False, server_default="default"))
    op.drop_index("ix_batches_model_created", table_name="batches")
    op.drop_index("ix_batches_created", table_name="batches")
    op.create_index(
        "ix_batches_project_model_created",
        "batches",
        ["project", "model_name", "model_version", "created_at"],
    )
    op.create_index("ix_batches_project_created", "batches", ["project", "created_at", "id"])

    op.drop_index("ix_jobs_model_created", table_name="jobs")
    op.drop_index("ix_jobs_created", table_name="jobs")
    with op.batch_alter_table("jobs") as jobs:  # SQLite: a copy of the table without the column
        jobs.add_column(sa.Column("project", PROJECT, nullable=False, server_default="default"))
        jobs.drop_column("cancel_requested")
    op.create_index("ix_jobs_project_status_created", "jobs", ["project", "status", "created_at"])
    op.create_index("ix_jobs_project_model_created", "jobs", ["project", "model_name", "created_at"])
    op.create_index("ix_jobs_project_created", "jobs", ["project", "created_at", "id"])

    op.create_table(
        "idempotency_keys",
        sa.Column("project", PROJECT, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("locked_until", sa.DateTime, nullable=False),
        sa.Column("response_status", sa.Integer, nullable=True),
        sa.Column("response_body", sa.JSON, nullable=True),
        sa.Column("response_location", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("project", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_expires", "idempotency_keys", ["expires_at"])

    state = op.create_table(
        "service_state",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    # Signs page tokens: the same key for every API process of this database.
    op.bulk_insert(state, [{"name": "page_token_key", "value": secrets.token_hex(32)}])


def downgrade() -> None:
    op.drop_table("service_state")
    op.drop_index("ix_idempotency_keys_expires", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_jobs_project_created", table_name="jobs")
    op.drop_index("ix_jobs_project_model_created", table_name="jobs")
    op.drop_index("ix_jobs_project_status_created", table_name="jobs")
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()))
        jobs.drop_column("project")
    op.create_index("ix_jobs_model_created", "jobs", ["model_name", "created_at"])
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"])
    op.drop_index("ix_batches_project_created", table_name="batches")
    op.drop_index("ix_batches_project_model_created", table_name="batches")
    with op.batch_alter_table("batches") as batches:
        batches.drop_column("project")
    op.create_index("ix_batches_model_created", "batches", ["model_name", "model_version", "created_at"])
    op.create_index("ix_batches_created", "batches", ["created_at", "id"])
