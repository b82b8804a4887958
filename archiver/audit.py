"""The audit log: an append-only table whose entries are chained by SHA-256."""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db.bulk import bulk_insert
from .db.models import AuditEntry, table
from .db.types import dumps

GENESIS = "0" * 64
# The string escaping json.dumps(..., ensure_ascii=False) uses (the C version when there is one).
_enc = json.encoder.encode_basestring


def entry_hash(seq: int, at: str, actor: str, action: str, subject: str | None, details: str, prev: str) -> str:
    """The hash of one entry: its canonical content plus the previous entry's hash.

    Defined as the SHA-256 of ``dumps({"seq", "at", "actor", "action", "subject", "details", "prev"})``
    (canonical JSON, UTF-8 with surrogates passed through). For the usual field types the same bytes are
    built directly, key by key in sorted order, with the JSON encoder's own string escaping; any other
    value takes the general path. tests/test_audit.py checks both give the same hash.
    """
    if (type(seq) is int and type(at) is str and type(actor) is str and type(action) is str
            and (subject is None or type(subject) is str) and type(details) is str and type(prev) is str):
        doc = (f'{{"action":{_enc(action)},"actor":{_enc(actor)},"at":{_enc(at)},"details":{_enc(details)},'
               f'"prev":{_enc(prev)},"seq":{seq!r},"subject":{"null" if subject is None else _enc(subject)}}}')
    else:
        doc = dumps({"seq": seq, "at": at, "actor": actor, "action": action, "subject": subject,
                     "details": details, "prev": prev})
    return hashlib.sha256(doc.encode("utf-8", "surrogatepass")).hexdigest()


def default_actor() -> str:
    """The OS user running the command (for admin actions without --actor)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class AuditLog:
    """Appends entries inside the caller's write transaction (which serialises writers)."""

    def __init__(self, session: Session):
        self.session = session
        last = session.execute(
            select(AuditEntry.seq, AuditEntry.entry_hash).order_by(AuditEntry.seq.desc()).limit(1)
        ).first()
        self._seq, self._prev = (last[0], last[1]) if last else (0, GENESIS)
        self._pending: list[tuple[int, str, str, str, str | None, str, str, str]] = []
        self._stamps: tuple[datetime, str] | None = None

    def append(self, action: str, subject: str | None, details: dict[str, Any], actor: str, at: datetime) -> int:
        """Add one entry; returns its sequence number."""
        return self.append_json(action, subject, dumps(details), actor, at)

    def append_json(self, action: str, subject: str | None, details: str, actor: str, at: datetime) -> int:
        """Add one entry whose details are already canonical JSON (``dumps`` of a dict, or the same text)."""
        seq = self._seq + 1
        if self._stamps is not None and self._stamps[0] == at:
            stamp = self._stamps[1]
        else:
            stamp = _stamp(at)
            self._stamps = (at, stamp)
        h = entry_hash(seq, stamp, actor, action, subject, details, self._prev)
        self._pending.append((seq, stamp, actor, action, subject, details, self._prev, h))
        self._seq, self._prev = seq, h
        return seq

    def flush(self) -> None:
        """Write the pending entries (one multi-row insert)."""
        if self._pending:
            bulk_insert(self.session, table(AuditEntry), _COLUMNS).execute(self.session, self._pending)
            self._pending = []


_COLUMNS = ("seq", "at", "actor", "action", "subject", "details", "prev_hash", "entry_hash")


@dataclass
class ChainReport:
    """What verifying the chain found."""

    entries: int
    ok: bool
    first_bad_entry: int | None
    reason: str | None


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    """Recompute every entry's hash in order; the first entry that does not match is named."""
    prev, expected_seq, count = GENESIS, 1, 0
    rows = session.execute(select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=batch))
    for e in rows.scalars():
        count += 1
        if e.seq != expected_seq:
            return ChainReport(count, False, e.seq, f"entry {expected_seq} is missing (next is {e.seq})")
        if e.prev_hash != prev:
            return ChainReport(count, False, e.seq, "its previous-hash does not match the entry before it")
        h = entry_hash(e.seq, e.at, e.actor, e.action, e.subject, e.details, e.prev_hash)
        if h != e.entry_hash:
            return ChainReport(count, False, e.seq, "its content does not match its hash")
        prev, expected_seq = e.entry_hash, expected_seq + 1
    return ChainReport(count, True, None, None)
