"""Accounts: single-use links to set one's own password, and sign-in state kept server-side.

Revision ID: 0019_password_links
Revises: 0018_token_expiry
Create Date: 2026-12-01

Reviewed by hand.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019_password_links'
down_revision = '0018_token_expiry'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('password_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_password_links_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_links')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_password_links_token_hash'))
    )
    with op.batch_alter_table('password_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_password_links_user_id'), ['user_id'], unique=False)

    op.create_table('pending_sign_ins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('next_url', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_pending_sign_ins_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_sign_ins')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_pending_sign_ins_token_hash'))
    )
    with op.batch_alter_table('pending_sign_ins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_sign_ins_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_pending_sign_ins_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('pending_sign_ins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_sign_ins_user_id'))
        batch_op.drop_index(batch_op.f('ix_pending_sign_ins_expires_at'))

    op.drop_table('pending_sign_ins')
    with op.batch_alter_table('password_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_links_user_id'))

    op.drop_table('password_links')
