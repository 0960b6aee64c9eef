"""References from a counter row locked in the transaction (no race on either engine); meeting
minutes carry a version like every other edited record.

Revision ID: 0020_counters
Revises: 0019_password_links
Create Date: 2026-12-01

Reviewed by hand. The counters are seeded from the highest reference already stored, retired
references included, so no number is given out twice after the upgrade.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0020_counters'
down_revision = '0019_password_links'
branch_labels = None
depends_on = None

# (scope, table, prefix length, per area): "NFO-2026-", "DC-2026-", "LDIS-2026-".
_SEEDS = (
    ('cases', 'cases', 9, True),
    ('cases', 'retired_references', 9, True),
    ('drug_reports', 'drug_reports', 8, False),
    ('alerts', 'alerts', 10, False),
)


def _seed(conn):
    found = {}
    for scope, table, width, per_area in _SEEDS:
        area = "area_id, " if per_area else ""
        rows = conn.execute(sa.text(
            f"SELECT {area}substr(reference, 1, {width}), "
            f"max(CAST(substr(reference, {width + 1}) AS INTEGER)) FROM {table} "
            f"GROUP BY {area}substr(reference, 1, {width})"  # noqa: S608  constants only
        ))
        for row in rows:
            area_id, prefix, last = tuple(row) if per_area else (None, *tuple(row))
            key = f"{area_id}:{prefix}" if per_area else prefix
            found[(scope, key)] = max(found.get((scope, key), 0), int(last or 0))
    if found:
        conn.execute(
            sa.text("INSERT INTO counters (scope, key, value) VALUES (:scope, :key, :value)"),
            [{"scope": s, "key": k, "value": v} for (s, k), v in sorted(found.items())],
        )


def upgrade():
    op.create_table('counters',
    sa.Column('scope', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'key', name=op.f('pk_counters'))
    )
    _seed(op.get_bind())
    with op.batch_alter_table('meeting_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False,
                                      server_default=sa.text('1')))
    with op.batch_alter_table('meeting_items', schema=None) as batch_op:
        batch_op.alter_column('version', existing_type=sa.Integer(), server_default=None)


def downgrade():
    with op.batch_alter_table('meeting_items', schema=None) as batch_op:
        batch_op.drop_column('version')

    op.drop_table('counters')
