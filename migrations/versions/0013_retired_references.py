"""Cases: references given up when a case moves to another area or case type stay taken.

Revision ID: 0013_retired_references
Revises: 0012_signal_settings
Create Date: 2026-11-23

Reviewed by hand. Starts empty: before this, a move failed rather than renumbering.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013_retired_references'
down_revision = '0012_signal_settings'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('retired_references',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('area_id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=20), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['area_id'], ['areas.id'], name=op.f('fk_retired_references_area_id_areas')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_retired_references_case_id_cases'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retired_references')),
    sa.UniqueConstraint('area_id', 'reference', name=op.f('uq_retired_references_area_id_reference'))
    )
    with op.batch_alter_table('retired_references', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retired_references_case_id'), ['case_id'], unique=False)


def downgrade():
    with op.batch_alter_table('retired_references', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retired_references_case_id'))
    op.drop_table('retired_references')
