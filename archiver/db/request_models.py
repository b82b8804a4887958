"""Models of open-records requests (KORA, CPRA): the request, its records, redactions and exports.

Retention relies on ``requests.status``/``closed_at`` and ``request_records`` (a record in an open
request is implicitly held), so those names are a contract.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base
from .types import ExactText, UTCDateTime


class Request(Base):
    """One open-records request: who asked for what, under which law, and by when it must be answered."""

    __tablename__ = "requests"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # KORA-2026-0007
    law: Mapped[str] = mapped_column(String(16))  # kora | cpra
    requester: Mapped[str] = mapped_column(ExactText)
    description: Mapped[str] = mapped_column(ExactText)
    received: Mapped[date] = mapped_column(Date)
    due: Mapped[date] = mapped_column(Date)
    extended_due: Mapped[date | None] = mapped_column(Date)
    extension_days: Mapped[int | None] = mapped_column(Integer)
    extension_reason: Mapped[str | None] = mapped_column(ExactText)
    status: Mapped[str] = mapped_column(String(16), index=True)  # open | closed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(ExactText)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RequestRecord(Base):
    """A record responsive to a request, with the custodian's decision about it."""

    __tablename__ = "request_records"
    __table_args__ = (UniqueConstraint("request_id", "record_id", name="uq_request_records_request_record"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"), index=True)
    decision: Mapped[str] = mapped_column(String(16))  # release | redact | withhold
    exemption: Mapped[str | None] = mapped_column(String(64))  # citation, when withheld
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RequestRedaction(Base):
    """Exact text removed from one record of one request, and the exemption that allows it."""

    __tablename__ = "request_redactions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"))
    text: Mapped[str] = mapped_column(ExactText)
    exemption: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RequestExport(Base):
    """One packet exported for a request (every export is kept; seq counts them)."""

    __tablename__ = "request_exports"
    __table_args__ = (UniqueConstraint("request_id", "seq", name="uq_request_exports_request_seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(ExactText)
    bates_first: Mapped[str | None] = mapped_column(String(40))
    bates_last: Mapped[str | None] = mapped_column(String(40))
    bates_last_number: Mapped[int | None] = mapped_column(Integer)
    pages: Mapped[int] = mapped_column(Integer)
    released: Mapped[int] = mapped_column(Integer)
    redacted: Mapped[int] = mapped_column(Integer)
    withheld: Mapped[int] = mapped_column(Integer)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(ExactText)
