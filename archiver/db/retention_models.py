"""Models of retention management: per-record series assignments, legal holds, dispositions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .models import SHA, Base
from .types import ExactText, UTCDateTime


class RecordRetention(Base):
    """A custodian's per-record retention facts: a series that overrides the account's, a case-closed date."""

    __tablename__ = "record_retention"
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"), primary_key=True)
    series: Mapped[str | None] = mapped_column(String(100))  # None: the account's series applies
    case_closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # for trigger case-closed
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(ExactText)
    reason: Mapped[str | None] = mapped_column(ExactText)


class Hold(Base):
    """A named legal hold; it freezes disposition of its records until released."""

    __tablename__ = "holds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    matter: Mapped[str] = mapped_column(ExactText)
    query: Mapped[str | None] = mapped_column(ExactText)  # the search that selected the records, if any
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(ExactText)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(ExactText)


class HoldRecord(Base):
    """One record under one hold (rows stay after release, as history)."""

    __tablename__ = "hold_records"
    hold_id: Mapped[int] = mapped_column(ForeignKey("holds.id"), primary_key=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"), primary_key=True, index=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Disposition(Base):
    """One approved disposition run and its certificate of destruction."""

    __tablename__ = "dispositions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # also the certificate's file name
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(ExactText)
    records: Mapped[int] = mapped_column(Integer)
    certificate_sha256: Mapped[str] = mapped_column(SHA)
    certificate_json_sha256: Mapped[str] = mapped_column(SHA)
