"""initial schema: every table of xueliang.store.models with the indexes for 500,000 channels

Revision ID: 0001
Revises:
Create Date: 2026-11-25 10:04:10.629592
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types spelled out here (not imported from models) so this revision never changes when models do.
TS = sa.DateTime(timezone=True)
JSON_T = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    op.create_table('alarms',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('channel_id', sa.String(length=32), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=True),
    sa.Column('method', sa.Integer(), nullable=True),
    sa.Column('type', sa.Integer(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('time', TS, nullable=False),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('acknowledged', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('acknowledged_by', sa.String(length=64), nullable=True),
    sa.Column('acknowledged_at', TS, nullable=True),
    sa.Column('extra', JSON_T, nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alarms'))
    )
    op.create_index('ix_alarms_acknowledged', 'alarms', ['acknowledged'], unique=False)
    op.create_index('ix_alarms_device_time', 'alarms', ['device_id', 'time'], unique=False)
    op.create_index('ix_alarms_time', 'alarms', ['time'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', TS, nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('detail', JSON_T, nullable=True),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index('ix_audit_log_at', 'audit_log', ['at'], unique=False)
    op.create_index('ix_audit_log_user', 'audit_log', ['user'], unique=False)

    op.create_table('devices',
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('manufacturer', sa.String(length=255), nullable=True),
    sa.Column('model', sa.String(length=255), nullable=True),
    sa.Column('firmware', sa.String(length=255), nullable=True),
    sa.Column('device_type', sa.String(length=32), nullable=True),
    sa.Column('transport', sa.String(length=8), nullable=True),
    sa.Column('stream_transport', sa.String(length=16), nullable=True),
    sa.Column('host', sa.String(length=64), nullable=True),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('gb_version', sa.String(length=16), nullable=True),
    sa.Column('charset', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='offline', nullable=False),
    sa.Column('password', sa.String(length=255), nullable=True),
    sa.Column('expires', sa.Integer(), nullable=True),
    sa.Column('heartbeat_interval', sa.Integer(), nullable=True),
    sa.Column('heartbeat_count', sa.Integer(), nullable=True),
    sa.Column('registered_at', TS, nullable=True),
    sa.Column('keepalive_at', TS, nullable=True),
    sa.Column('last_online_at', TS, nullable=True),
    sa.Column('channel_count', sa.Integer(), nullable=True),
    sa.Column('catalog_synced_at', TS, nullable=True),
    sa.Column('class_level', sa.Integer(), nullable=True),
    sa.Column('district', sa.String(length=64), nullable=True),
    sa.Column('owner_unit', sa.String(length=255), nullable=True),
    sa.Column('extra', JSON_T, nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_devices'))
    )
    op.create_index('ix_devices_status', 'devices', ['status'], unique=False)

    op.create_table('positions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('channel_id', sa.String(length=32), nullable=True),
    sa.Column('time', TS, nullable=False),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('speed', sa.Float(), nullable=True),
    sa.Column('direction', sa.Float(), nullable=True),
    sa.Column('altitude', sa.Float(), nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_positions'))
    )
    op.create_index('ix_positions_channel_time', 'positions', ['channel_id', 'time'], unique=False)
    op.create_index('ix_positions_device_time', 'positions', ['device_id', 'time'], unique=False)

    op.create_table('snapshots',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=True),
    sa.Column('channel_id', sa.String(length=32), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('taken_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_snapshots'))
    )
    op.create_index('ix_snapshots_channel_taken', 'snapshots', ['channel_id', 'taken_at'], unique=False)

    op.create_table('status_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('object_id', sa.String(length=32), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=True),
    sa.Column('at', TS, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_status_events'))
    )
    op.create_index('ix_status_events_at', 'status_events', ['at'], unique=False)
    op.create_index('ix_status_events_kind_object_at', 'status_events', ['kind', 'object_id', 'at'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('disabled', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('failed_logins', sa.Integer(), server_default='0', nullable=False),
    sa.Column('locked_until', TS, nullable=True),
    sa.Column('last_login_at', TS, nullable=True),
    sa.Column('password_changed_at', TS, nullable=True),
    sa.Column('extra', JSON_T, nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('channels',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('channel_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('manufacturer', sa.String(length=255), nullable=True),
    sa.Column('model', sa.String(length=255), nullable=True),
    sa.Column('owner', sa.String(length=255), nullable=True),
    sa.Column('civil_code', sa.String(length=32), nullable=True),
    sa.Column('block', sa.String(length=255), nullable=True),
    sa.Column('address', sa.String(length=255), nullable=True),
    sa.Column('parental', sa.Integer(), nullable=True),
    sa.Column('parent_id', sa.String(length=64), nullable=True),
    sa.Column('business_group_id', sa.String(length=32), nullable=True),
    sa.Column('safety_way', sa.Integer(), nullable=True),
    sa.Column('register_way', sa.Integer(), nullable=True),
    sa.Column('secrecy', sa.Integer(), nullable=True),
    sa.Column('ip_address', sa.String(length=64), nullable=True),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='offline', nullable=False),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('ptz_type', sa.Integer(), nullable=True),
    sa.Column('class_level', sa.Integer(), nullable=True),
    sa.Column('district', sa.String(length=64), nullable=True),
    sa.Column('owner_unit', sa.String(length=255), nullable=True),
    sa.Column('resolution', sa.String(length=64), nullable=True),
    sa.Column('resolution_width', sa.Integer(), nullable=True),
    sa.Column('type_code', sa.Integer(), nullable=True),
    sa.Column('stream_transport', sa.String(length=16), nullable=True),
    sa.Column('source', sa.String(length=8), server_default='gb', nullable=False),
    sa.Column('pull_url', sa.Text(), nullable=True),
    sa.Column('extra', JSON_T, nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.device_id'], name=op.f('fk_channels_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channels')),
    sa.UniqueConstraint('device_id', 'channel_id', name='uq_channels_device_channel')
    )
    op.create_index('ix_channels_business_group_id', 'channels', ['business_group_id'], unique=False)
    op.create_index('ix_channels_channel_id', 'channels', ['channel_id'], unique=False)
    op.create_index('ix_channels_civil_code', 'channels', ['civil_code', 'status', 'type_code', 'channel_id'], unique=False)
    op.create_index('ix_channels_class_level', 'channels', ['class_level'], unique=False)
    op.create_index('ix_channels_device_parent', 'channels', ['device_id', 'parent_id'], unique=False)
    op.create_index('ix_channels_district', 'channels', ['district'], unique=False)
    op.create_index('ix_channels_geo', 'channels', ['latitude', 'longitude', 'status', 'channel_id'], unique=False)
    op.create_index('ix_channels_name', 'channels', ['name'], unique=False)
    op.create_index('ix_channels_parent_id', 'channels', ['parent_id'], unique=False)
    op.create_index('ix_channels_status', 'channels', ['status', 'channel_id'], unique=False)
    op.create_index('ix_channels_type_code', 'channels', ['type_code', 'status', 'class_level', 'resolution_width', 'latitude', 'longitude'], unique=False)



def downgrade() -> None:
    op.drop_index('ix_channels_type_code', table_name='channels')
    op.drop_index('ix_channels_status', table_name='channels')
    op.drop_index('ix_channels_parent_id', table_name='channels')
    op.drop_index('ix_channels_name', table_name='channels')
    op.drop_index('ix_channels_geo', table_name='channels')
    op.drop_index('ix_channels_district', table_name='channels')
    op.drop_index('ix_channels_device_parent', table_name='channels')
    op.drop_index('ix_channels_class_level', table_name='channels')
    op.drop_index('ix_channels_civil_code', table_name='channels')
    op.drop_index('ix_channels_channel_id', table_name='channels')
    op.drop_index('ix_channels_business_group_id', table_name='channels')

    op.drop_table('channels')
    op.drop_table('users')
    op.drop_index('ix_status_events_kind_object_at', table_name='status_events')
    op.drop_index('ix_status_events_at', table_name='status_events')

    op.drop_table('status_events')
    op.drop_index('ix_snapshots_channel_taken', table_name='snapshots')

    op.drop_table('snapshots')
    op.drop_index('ix_positions_device_time', table_name='positions')
    op.drop_index('ix_positions_channel_time', table_name='positions')

    op.drop_table('positions')
    op.drop_index('ix_devices_status', table_name='devices')

    op.drop_table('devices')
    op.drop_index('ix_audit_log_user', table_name='audit_log')
    op.drop_index('ix_audit_log_at', table_name='audit_log')

    op.drop_table('audit_log')
    op.drop_index('ix_alarms_time', table_name='alarms')
    op.drop_index('ix_alarms_device_time', table_name='alarms')
    op.drop_index('ix_alarms_acknowledged', table_name='alarms')

    op.drop_table('alarms')
