"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

import archiver.db.types

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=64), nullable=False),
    sa.Column('created_at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.Column('connector_state', archiver.db.types.ExactText(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('name', name=op.f('uq_accounts_name'))
    )
    op.create_table('archive_meta',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', archiver.db.types.ExactText(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_archive_meta'))
    )
    op.create_table('audit_log',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('at', sa.String(length=40), nullable=False),
    sa.Column('actor', archiver.db.types.ExactText(), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject', archiver.db.types.ExactText(), nullable=True),
    sa.Column('details', archiver.db.types.ExactText(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_log'))
    )
    op.create_table('blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('stored_at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.Column('verified_at', archiver.db.types.UTCDateTime(), nullable=True),
    sa.Column('destroyed_at', archiver.db.types.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_blobs'))
    )
    op.create_table('harvest_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('started_at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.Column('finished_at', archiver.db.types.UTCDateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('backfill', sa.Boolean(), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('items_seen', sa.Integer(), nullable=False),
    sa.Column('new_records', sa.Integer(), nullable=False),
    sa.Column('new_versions', sa.Integer(), nullable=False),
    sa.Column('edited', sa.Integer(), nullable=False),
    sa.Column('hidden', sa.Integer(), nullable=False),
    sa.Column('unhidden', sa.Integer(), nullable=False),
    sa.Column('removed', sa.Integer(), nullable=False),
    sa.Column('restored', sa.Integer(), nullable=False),
    sa.Column('error', archiver.db.types.ExactText(), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_harvest_runs_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_harvest_runs'))
    )
    with op.batch_alter_table('harvest_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_harvest_runs_account_id'), ['account_id'], unique=False)

    op.create_table('records',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=64), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('parent_id', sa.String(length=32), nullable=True),
    sa.Column('parent_native_id', sa.String(length=255), nullable=True),
    sa.Column('thread_native_id', sa.String(length=255), nullable=True),
    sa.Column('author', archiver.db.types.ExactText(), nullable=True),
    sa.Column('author_id', archiver.db.types.ExactText(), nullable=True),
    sa.Column('created_at', archiver.db.types.UTCDateTime(), nullable=True),
    sa.Column('permalink', archiver.db.types.ExactText(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('removed_at', archiver.db.types.UTCDateTime(), nullable=True),
    sa.Column('first_captured_at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.Column('latest_seq', sa.Integer(), nullable=False),
    sa.Column('latest_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('series', sa.String(length=100), nullable=True),
    sa.Column('disposition_date', archiver.db.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_records_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_records')),
    sa.UniqueConstraint('account_id', 'native_id', name='uq_records_account_native')
    )
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.create_index('ix_records_account_kind_created', ['account_id', 'kind', 'created_at'], unique=False)
        batch_op.create_index('ix_records_account_thread', ['account_id', 'thread_native_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_records_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_records_status'), ['status'], unique=False)

    op.create_table('captures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('harvest_run_id', sa.Integer(), nullable=True),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('url', archiver.db.types.ExactText(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('headers', archiver.db.types.ExactText(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('fetched_at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.Column('secrets_redacted', sa.Boolean(), nullable=False),
    sa.Column('scope', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_captures_account_id_accounts')),
    sa.ForeignKeyConstraint(['harvest_run_id'], ['harvest_runs.id'], name=op.f('fk_captures_harvest_run_id_harvest_runs')),
    sa.ForeignKeyConstraint(['sha256'], ['blobs.sha256'], name=op.f('fk_captures_sha256_blobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_captures'))
    )
    with op.batch_alter_table('captures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_captures_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_captures_harvest_run_id'), ['harvest_run_id'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('record_id', sa.String(length=32), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.Column('harvest_run_id', sa.Integer(), nullable=True),
    sa.Column('capture_id', sa.Integer(), nullable=True),
    sa.Column('version_seq', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['capture_id'], ['captures.id'], name=op.f('fk_events_capture_id_captures')),
    sa.ForeignKeyConstraint(['harvest_run_id'], ['harvest_runs.id'], name=op.f('fk_events_harvest_run_id_harvest_runs')),
    sa.ForeignKeyConstraint(['record_id'], ['records.id'], name=op.f('fk_events_record_id_records')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_record_id'), ['record_id'], unique=False)

    op.create_table('versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('record_id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('text', archiver.db.types.ExactText(), nullable=True),
    sa.Column('content', archiver.db.types.ExactText(), nullable=False),
    sa.Column('extra', archiver.db.types.ExactText(), nullable=False),
    sa.Column('edited_at', archiver.db.types.UTCDateTime(), nullable=True),
    sa.Column('captured_at', archiver.db.types.UTCDateTime(), nullable=False),
    sa.Column('capture_id', sa.Integer(), nullable=True),
    sa.Column('harvest_run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['capture_id'], ['captures.id'], name=op.f('fk_versions_capture_id_captures')),
    sa.ForeignKeyConstraint(['harvest_run_id'], ['harvest_runs.id'], name=op.f('fk_versions_harvest_run_id_harvest_runs')),
    sa.ForeignKeyConstraint(['record_id'], ['records.id'], name=op.f('fk_versions_record_id_records')),
    sa.ForeignKeyConstraint(['sha256'], ['blobs.sha256'], name=op.f('fk_versions_sha256_blobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_versions')),
    sa.UniqueConstraint('record_id', 'seq', name='uq_versions_record_seq')
    )


def downgrade() -> None:
    op.drop_table('versions')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_record_id'))

    op.drop_table('events')
    with op.batch_alter_table('captures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_captures_harvest_run_id'))
        batch_op.drop_index(batch_op.f('ix_captures_account_id'))

    op.drop_table('captures')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_records_status'))
        batch_op.drop_index(batch_op.f('ix_records_parent_id'))
        batch_op.drop_index('ix_records_account_thread')
        batch_op.drop_index('ix_records_account_kind_created')

    op.drop_table('records')
    with op.batch_alter_table('harvest_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_harvest_runs_account_id'))

    op.drop_table('harvest_runs')
    op.drop_table('blobs')
    op.drop_table('audit_log')
    op.drop_table('archive_meta')
    op.drop_table('accounts')
