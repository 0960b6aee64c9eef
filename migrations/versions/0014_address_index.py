"""Persons: a blind index of address tokens, so the identifier detector finds a written address without decrypting.

Revision ID: 0014_address_index
Revises: 0013_retired_references
Create Date: 2026-12-01

Reviewed by hand. person_tokens holds keyed-HMAC tokens of each person's name parts (given name
with surname, surname alone) and address (house number with street): the identifier detector
(dr_panel.privacy) looks people up by them. It starts empty on an existing database: the keys
are outside it, so `dr-panel alerts reindex-names` fills it (batches, resumable).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014_address_index'
down_revision = '0013_retired_references'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('person_tokens',
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('bi', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_person_tokens_person_id_persons'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('person_id', 'kind', 'bi', name=op.f('pk_person_tokens'))
    )
    with op.batch_alter_table('person_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_person_tokens_kind_bi', ['kind', 'bi'], unique=False)


def downgrade():
    with op.batch_alter_table('person_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_person_tokens_kind_bi')
    op.drop_table('person_tokens')
