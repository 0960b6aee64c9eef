"""Scheduled jobs: a lease per job so several workers run each once.

Revision ID: 0021_jobs
Revises: 0020_counters
Create Date: 2026-12-01

Reviewed by hand.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0021_jobs'
down_revision = '0020_counters'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'job_leases',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('done_period', sa.String(length=40), nullable=True),
        sa.Column('claimed_period', sa.String(length=40), nullable=True),
        sa.Column('holder', sa.String(length=100), nullable=True),
        sa.Column('held_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_job_leases')),
    )


def downgrade():
    op.drop_table('job_leases')
