"""Audit log: PostgreSQL refuses TRUNCATE on it too (row triggers never see a TRUNCATE).

The anchors of the chain head live outside the database (``AUDIT_ANCHOR_FILE``), so there is no
table here: the file is the authority. SQLite has no TRUNCATE statement (``DELETE`` without
``WHERE`` already meets the row trigger).

Revision ID: 0022_audit_anchors
Revises: 0021_jobs
Create Date: 2026-12-01

Reviewed by hand.
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


# revision identifiers, used by Alembic.
revision = '0022_audit_anchors'
down_revision = '0021_jobs'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_entries_no_truncate ON audit_entries")
