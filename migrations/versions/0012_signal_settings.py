"""LDIS: an area's own spike-scan settings, set by its coordinators on a page.

Revision ID: 0012_signal_settings
Revises: 0011_alerts
Create Date: 2026-11-23

Reviewed by hand. Areas without a row keep the defaults and the configuration
(SIGNAL_SETTINGS, SIGNAL_AREA_SETTINGS), as before.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_signal_settings'
down_revision = '0011_alerts'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('signal_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('area_id', sa.Integer(), nullable=False),
    sa.Column('overrides', sa.Text(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['area_id'], ['areas.id'], name=op.f('fk_signal_settings_area_id_areas'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_signal_settings_updated_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signal_settings')),
    sa.UniqueConstraint('area_id', name=op.f('uq_signal_settings_area_id'))
    )


def downgrade():
    op.drop_table('signal_settings')
