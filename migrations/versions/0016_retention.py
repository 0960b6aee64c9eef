"""Retention: disposal of identifiers and free text after the retention schedule.

Revision ID: 0016_retention
Revises: 0015_cell_keys
Create Date: 2026-12-01

Reviewed by hand. Columns only (added in place, no table rebuild on SQLite): when a person was
disposed of and under which rule, and when a drug-concern report's contact address and free
text were erased. Every existing row starts as not disposed.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016_retention'
down_revision = '0015_cell_keys'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disposed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('disposal_rule', sa.String(length=20), nullable=True))
    with op.batch_alter_table('drug_reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_erased_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('text_erased_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('drug_reports', schema=None) as batch_op:
        batch_op.drop_column('text_erased_at')
        batch_op.drop_column('contact_erased_at')
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_column('disposal_rule')
        batch_op.drop_column('disposed_at')
