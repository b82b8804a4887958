"""Retention assignments, legal holds, dispositions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

import archiver.db.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('record_retention',
    sa.Column('record_id', sa.String(length=32), nullable=False),
    sa.Column('series', sa.String(length=100), nullable=True),
    sa.Column('case_closed_at', archiver.db.types.UTCDateTime(), nullable=True),
    sa.Column('updated_at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.Column('updated_by', archiver.db.types.ExactText(), nullable=False),
    sa.Column('reason', archiver.db.types.ExactText(), nullable=True),
    sa.ForeignKeyConstraint(['record_id'], ['records.id'], name=op.f('fk_record_retention_record_id_records')),
    sa.PrimaryKeyConstraint('record_id', name=op.f('pk_record_retention'))
    )
    op.create_table('holds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('matter', archiver.db.types.ExactText(), nullable=False),
    sa.Column('query', archiver.db.types.ExactText(), nullable=True),
    sa.Column('created_at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.Column('created_by', archiver.db.types.ExactText(), nullable=False),
    sa.Column('released_at', archiver.db.types.UTCDateTime(), nullable=True),
    sa.Column('released_by', archiver.db.types.ExactText(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holds')),
    sa.UniqueConstraint('name', name=op.f('uq_holds_name'))
    )
    op.create_table('hold_records',
    sa.Column('hold_id', sa.Integer(), nullable=False),
    sa.Column('record_id', sa.String(length=32), nullable=False),
    sa.Column('added_at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['hold_id'], ['holds.id'], name=op.f('fk_hold_records_hold_id_holds')),
    sa.ForeignKeyConstraint(['record_id'], ['records.id'], name=op.f('fk_hold_records_record_id_records')),
    sa.PrimaryKeyConstraint('hold_id', 'record_id', name=op.f('pk_hold_records'))
    )
    with op.batch_alter_table('hold_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hold_records_record_id'), ['record_id'], unique=False)

    op.create_table('dispositions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.Column('actor', archiver.db.types.ExactText(), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('certificate_sha256', sa.String(length=64), nullable=False),
    sa.Column('certificate_json_sha256', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispositions'))
    )


def downgrade() -> None:
    op.drop_table('dispositions')
    with op.batch_alter_table('hold_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hold_records_record_id'))

    op.drop_table('hold_records')
    op.drop_table('holds')
    op.drop_table('record_retention')
