"""Trends: record keys and cell-key sums for consistent perturbation (ONS cell key method).

Revision ID: 0015_cell_keys
Revises: 0014_address_index
Create Date: 2026-12-01

Reviewed by hand. Existing cases get a random record key (the database's generator: keys
need only be unpredictable to a lead, who never sees them). Existing trend rows get a key sum
of 0 until ``dr-panel trends rebuild`` recounts them with their cases' keys (``dr-panel trends
verify`` reports them until then); new and changed cases are counted with their keys at once.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015_cell_keys'
down_revision = '0014_address_index'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('record_key', sa.SmallInteger(), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('UPDATE cases SET record_key = floor(random() * 256)::int')
    else:
        op.execute('UPDATE cases SET record_key = abs(random()) % 256')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.alter_column('record_key', existing_type=sa.SmallInteger(), nullable=False)

    with op.batch_alter_table('trend_counts', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('key_sum', sa.BigInteger(), nullable=False, server_default=sa.text('0'))
        )
    with op.batch_alter_table('trend_counts', schema=None) as batch_op:
        batch_op.alter_column('key_sum', existing_type=sa.BigInteger(), server_default=None)


def downgrade():
    with op.batch_alter_table('trend_counts', schema=None) as batch_op:
        batch_op.drop_column('key_sum')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('record_key')
