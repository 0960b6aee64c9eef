"""API tokens: an expiry and why they were revoked.

Revision ID: 0018_token_expiry
Revises: 0017_held_reports
Create Date: 2026-12-01

Reviewed by hand. Existing tokens expire 90 days after they were created (the default of
``API_TOKEN_DAYS``): one already older than that is expired at once, and its owner makes a new
one. Rows are updated one by one in Python so that SQLite and PostgreSQL compute the same time.
"""
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0018_token_expiry'
down_revision = '0017_held_reports'
branch_labels = None
depends_on = None

DEFAULT_DAYS = 90


def upgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('revoked_reason', sa.String(length=40), nullable=True))

    tokens = sa.table(
        'api_tokens',
        sa.column('id', sa.Integer()),
        sa.column('created_at', sa.DateTime(timezone=True)),
        sa.column('expires_at', sa.DateTime(timezone=True)),
    )
    bind = op.get_bind()
    for row in bind.execute(sa.select(tokens.c.id, tokens.c.created_at)).all():
        bind.execute(
            tokens.update()
            .where(tokens.c.id == row.id)
            .values(expires_at=row.created_at + timedelta(days=DEFAULT_DAYS))
        )

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.alter_column(
            'expires_at', existing_type=sa.DateTime(timezone=True), nullable=False
        )


def downgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('revoked_reason')
        batch_op.drop_column('expires_at')
