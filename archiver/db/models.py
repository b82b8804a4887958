"""SQLAlchemy models of the metadata database (the names DESIGN.md's record model uses)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .types import ExactText, UTCDateTime

# Stable constraint names so Alembic migrations behave the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SHA = String(64)


def table(model: type[Base]) -> Table:
    """The Core table of a model, for fast multi-row inserts."""
    return cast(Table, model.__table__)


class Base(DeclarativeBase):
    """Declarative base with the shared naming convention."""

    metadata = MetaData(naming_convention=NAMING)


class Account(Base):
    """A configured platform account, as the archive knows it (config holds the rest)."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    platform: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Canonical JSON of the connector's SaveState from the last ok run (ETag, Last-Modified ...).
    connector_state: Mapped[str | None] = mapped_column(ExactText)


class HarvestRun(Base):
    """One harvest of one account: when, outcome, counts, error text."""

    __tablename__ = "harvest_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))  # running | ok | partial | failed
    trigger: Mapped[str] = mapped_column(String(16), default="manual")  # manual | schedule
    backfill: Mapped[bool] = mapped_column(Boolean, default=False)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    items_seen: Mapped[int] = mapped_column(Integer, default=0)
    new_records: Mapped[int] = mapped_column(Integer, default=0)
    new_versions: Mapped[int] = mapped_column(Integer, default=0)
    edited: Mapped[int] = mapped_column(Integer, default=0)
    hidden: Mapped[int] = mapped_column(Integer, default=0)
    unhidden: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    restored: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(ExactText)
    host: Mapped[str | None] = mapped_column(String(255))  # who runs it, to tell a crashed run from a live one
    pid: Mapped[int | None] = mapped_column(Integer)

    account: Mapped[Account] = relationship()


class Blob(Base):
    """A blob the archive refers to: its address, size, what it holds, when last verified."""

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(SHA, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # capture | item | export | certificate
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Capture(Base):
    """One HTTP response fetched from a platform: the provenance of the items read from it."""

    __tablename__ = "captures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    harvest_run_id: Mapped[int | None] = mapped_column(ForeignKey("harvest_runs.id"), index=True)
    method: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(ExactText)  # secrets stripped
    status: Mapped[int] = mapped_column(Integer)
    headers: Mapped[str] = mapped_column(ExactText)  # canonical JSON
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    size: Mapped[int] = mapped_column(BigInteger)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    secrets_redacted: Mapped[bool] = mapped_column(Boolean, default=False)
    scope: Mapped[str] = mapped_column(String(200))


class Record(Base):
    """One item on a platform (post, comment, reply) and its current state."""

    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("account_id", "native_id", name="uq_records_account_native"),
        Index("ix_records_account_thread", "account_id", "thread_native_id"),
        Index("ix_records_account_kind_created", "account_id", "kind", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    platform: Mapped[str] = mapped_column(String(64))
    native_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # post | comment | reply
    parent_id: Mapped[str | None] = mapped_column(String(32), index=True)
    parent_native_id: Mapped[str | None] = mapped_column(String(255))
    thread_native_id: Mapped[str | None] = mapped_column(String(255))  # the post a comment belongs to
    author: Mapped[str | None] = mapped_column(ExactText)
    author_id: Mapped[str | None] = mapped_column(ExactText)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    permalink: Mapped[str | None] = mapped_column(ExactText)
    status: Mapped[str] = mapped_column(String(16), index=True)  # live | edited | hidden | removed | disposed
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    latest_seq: Mapped[int] = mapped_column(Integer, default=1)
    latest_fingerprint: Mapped[str] = mapped_column(SHA)
    series: Mapped[str | None] = mapped_column(String(100))
    disposition_date: Mapped[datetime | None] = mapped_column(UTCDateTime)

    versions: Mapped[list[Version]] = relationship(order_by="Version.seq", back_populates="record")
    events: Mapped[list[Event]] = relationship(order_by="Event.id", back_populates="record")
    account: Mapped[Account] = relationship()


class Version(Base):
    """One distinct content of a record; the blob holds the raw item exactly as received."""

    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("record_id", "seq", name="uq_versions_record_seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"))
    seq: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    fingerprint: Mapped[str] = mapped_column(SHA)
    text: Mapped[str | None] = mapped_column(ExactText)
    content: Mapped[str] = mapped_column(ExactText)  # canonical JSON of the version-defining fields
    extra: Mapped[str] = mapped_column(ExactText)  # canonical JSON: hashtags, mentions ...
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    capture_id: Mapped[int | None] = mapped_column(ForeignKey("captures.id"))
    harvest_run_id: Mapped[int | None] = mapped_column(ForeignKey("harvest_runs.id"))

    record: Mapped[Record] = relationship(back_populates="versions")


class Event(Base):
    """A change of state of a record: captured, edited, hidden, unhidden, removed, restored."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    harvest_run_id: Mapped[int | None] = mapped_column(ForeignKey("harvest_runs.id"))
    capture_id: Mapped[int | None] = mapped_column(ForeignKey("captures.id"))
    version_seq: Mapped[int | None] = mapped_column(Integer)

    record: Mapped[Record] = relationship(back_populates="events")


class AuditEntry(Base):
    """Append-only, hash-chained log of every change of state."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))  # ISO-8601 UTC, hashed as written
    actor: Mapped[str] = mapped_column(ExactText)
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(ExactText)
    details: Mapped[str] = mapped_column(ExactText)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(SHA)
    entry_hash: Mapped[str] = mapped_column(SHA)


class Meta(Base):
    """Small key/value facts about the archive (index high-water mark, archive id)."""

    __tablename__ = "archive_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(ExactText)


# The other model modules register their tables on Base.metadata (migrations and create_all see them).
from . import request_models, retention_models  # noqa: E402,F401
