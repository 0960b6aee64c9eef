"""Drug-concern reports: matches against stored people held for the coordinator; a public
reporter's address kept only encrypted in the outbox.

Revision ID: 0017_held_reports
Revises: 0016_retention
Create Date: 2026-12-01

Reviewed by hand. Existing outbox rows keep their address in ``to_address`` (now nullable); rows
queued from here on for a public reporter keep it only in ``to_address_enc``. Downgrading cannot
put an encrypted address back in clear: unsent rows for public reporters are marked sent, so
nothing is sent to a made-up recipient, and their sealed address is dropped with the column.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0017_held_reports'
down_revision = '0016_retention'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('drug_reports', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('is_held', sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column('held_enc', sa.Text(), nullable=True))
    with op.batch_alter_table('drug_reports', schema=None) as batch_op:
        batch_op.alter_column('is_held', server_default=None)

    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('to_address_enc', sa.Text(), nullable=True))
        batch_op.alter_column('to_address', existing_type=sa.String(length=254), nullable=True)


def downgrade():
    outbox = sa.table(
        'outbox_messages',
        sa.column('to_address', sa.String(254)),
        sa.column('sent_at', sa.DateTime()),
        sa.column('last_error', sa.String(200)),
    )
    op.execute(
        outbox.update()
        .where(outbox.c.to_address.is_(None), outbox.c.sent_at.is_(None))
        .values(sent_at=sa.func.current_timestamp(), last_error='dropped by downgrade 0017')
    )
    op.execute(
        outbox.update().where(outbox.c.to_address.is_(None)).values(to_address='withheld.invalid')
    )
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.alter_column('to_address', existing_type=sa.String(length=254), nullable=False)
        batch_op.drop_column('to_address_enc')

    with op.batch_alter_table('drug_reports', schema=None) as batch_op:
        batch_op.drop_column('held_enc')
        batch_op.drop_column('is_held')
