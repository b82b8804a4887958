"""Open-records requests: requests, their records, redactions and exports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

import archiver.db.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('requests',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('law', sa.String(length=16), nullable=False),
    sa.Column('requester', archiver.db.types.ExactText(), nullable=False),
    sa.Column('description', archiver.db.types.ExactText(), nullable=False),
    sa.Column('received', sa.Date(), nullable=False),
    sa.Column('due', sa.Date(), nullable=False),
    sa.Column('extended_due', sa.Date(), nullable=True),
    sa.Column('extension_days', sa.Integer(), nullable=True),
    sa.Column('extension_reason', archiver.db.types.ExactText(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.Column('created_by', archiver.db.types.ExactText(), nullable=False),
    sa.Column('closed_at', archiver.db.types.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_requests'))
    )
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_requests_status'), ['status'], unique=False)

    op.create_table('request_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('record_id', sa.String(length=32), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('exemption', sa.String(length=64), nullable=True),
    sa.Column('added_at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['record_id'], ['records.id'], name=op.f('fk_request_records_record_id_records')),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_request_records_request_id_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_request_records')),
    sa.UniqueConstraint('request_id', 'record_id', name='uq_request_records_request_record')
    )
    with op.batch_alter_table('request_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_request_records_record_id'), ['record_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_request_records_request_id'), ['request_id'], unique=False)

    op.create_table('request_redactions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('record_id', sa.String(length=32), nullable=False),
    sa.Column('text', archiver.db.types.ExactText(), nullable=False),
    sa.Column('exemption', sa.String(length=64), nullable=False),
    sa.Column('created_at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['record_id'], ['records.id'], name=op.f('fk_request_redactions_record_id_records')),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_request_redactions_request_id_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_request_redactions'))
    )
    with op.batch_alter_table('request_redactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_request_redactions_request_id'), ['request_id'], unique=False)

    op.create_table('request_exports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('path', archiver.db.types.ExactText(), nullable=False),
    sa.Column('bates_first', sa.String(length=40), nullable=True),
    sa.Column('bates_last', sa.String(length=40), nullable=True),
    sa.Column('bates_last_number', sa.Integer(), nullable=True),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('released', sa.Integer(), nullable=False),
    sa.Column('redacted', sa.Integer(), nullable=False),
    sa.Column('withheld', sa.Integer(), nullable=False),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.Column('created_by', archiver.db.types.ExactText(), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_request_exports_request_id_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_request_exports')),
    sa.UniqueConstraint('request_id', 'seq', name='uq_request_exports_request_seq')
    )
    with op.batch_alter_table('request_exports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_request_exports_request_id'), ['request_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('request_exports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_exports_request_id'))

    op.drop_table('request_exports')
    with op.batch_alter_table('request_redactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_redactions_request_id'))

    op.drop_table('request_redactions')
    with op.batch_alter_table('request_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_records_request_id'))
        batch_op.drop_index(batch_op.f('ix_request_records_record_id'))

    op.drop_table('request_records')
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_requests_status'))

    op.drop_table('requests')
