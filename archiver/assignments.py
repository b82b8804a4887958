"""Assigning retention series to records: per-record overrides, case-closed dates, recomputing dates.

Every change is audited per record (subject = record id) with the actor, so the audit log shows who
moved which record to which series and why, and the search index re-reads those records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .archive import Archive
from .audit import AuditLog
from .blob_holds import extend_locks
from .db.models import Record
from .db.retention_models import RecordRetention
from .eligibility import Standing, assess
from .errors import UsageError


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def _check_live(s: Session, ids: Sequence[str]) -> None:
    """Refuse to change retention facts of records that are already destroyed."""
    gone = list(s.execute(select(Record.id).where(Record.id.in_(ids), Record.status == "disposed")).scalars())
    if gone:
        raise UsageError(f"record {gone[0]} is disposed: its retention can no longer change")


def _override(s: Session, rid: str, now: datetime, actor: str, reason: str | None) -> RecordRetention:
    row = s.get(RecordRetention, rid)
    if row is None:
        row = RecordRetention(record_id=rid, updated_at=now, updated_by=actor, reason=reason)
        s.add(row)
    row.updated_at, row.updated_by = now, actor
    if reason is not None:
        row.reason = reason
    return row


def _store(s: Session, st: Standing) -> None:
    """Write the computed series and date into the record's cached columns."""
    s.execute(update(Record).where(Record.id == st.record_id)
              .values(series=st.series_id, disposition_date=st.disposition_date))


def _later(st: Standing, moved: list[tuple[str, datetime]]) -> None:
    """Note the record if its date moved later (a store lock set from the old date would end too soon)."""
    new, old = st.disposition_date, st.stored_date
    if new is not None and (old is None or new > old):
        moved.append((st.record_id, new))


def assign_series(archive: Archive, series_id: str, ids: Sequence[str], actor: str,
                  reason: str | None = None) -> dict[str, Any]:
    """Give these records a series other than their account's; returns {"series","records"}."""
    if series_id not in archive.schedules:
        raise UsageError(f"unknown retention series {series_id!r} (known: {', '.join(sorted(archive.schedules))})")
    records, errors = _override_all(archive, ids, actor, reason, "retention.assigned", series=series_id)
    return {"series": series_id, "records": records, "lock_errors": errors}


def set_case_closed(archive: Archive, ids: Sequence[str], closed_at: datetime, actor: str,
                    reason: str | None = None) -> dict[str, Any]:
    """Record when the case these records belong to closed (trigger case-closed)."""
    records, errors = _override_all(archive, ids, actor, reason, "retention.case_closed", case_closed_at=closed_at)
    return {"case_closed_at": _iso(closed_at), "records": records, "lock_errors": errors}


def _override_all(archive: Archive, ids: Sequence[str], actor: str, reason: str | None, action: str,
                  **change: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Set ``change`` on each record's override row, recompute its date, audit it; (records, lock errors)."""
    now = archive.clock.now()
    out: list[dict[str, Any]] = []
    moved: list[tuple[str, datetime]] = []
    shown = {k: _iso(v) if isinstance(v, datetime) else v for k, v in change.items()}
    with archive.db.write() as s:
        _check_live(s, ids)
        previous = dict(s.execute(select(Record.id, Record.series).where(Record.id.in_(ids))).all())
        for rid in ids:
            row = _override(s, rid, now, actor, reason)
            for key, value in change.items():
                setattr(row, key, value)
        s.flush()
        audit = AuditLog(s)
        for st in assess(archive, s, ids):
            _store(s, st)
            _later(st, moved)
            facts = {**shown, "series": st.series_id, "disposition_date": _iso(st.disposition_date)}
            details = {**facts, "reason": reason}
            if "series" in change:
                details["previous"] = previous.get(st.record_id)
            audit.append(action, st.record_id, details, actor, now)
            out.append({"record_id": st.record_id, **facts})
        audit.flush()
    return out, extend_locks(archive, moved)


def recompute_in(archive: Archive, s: Session, actor: str, now: datetime, ids: Iterable[str] | None = None,
                 cause: dict[str, Any] | None = None) -> tuple[int, list[dict[str, Any]], list[tuple[str, datetime]]]:
    """Recompute stale cached dates inside the caller's transaction; (checked, changes, dates moved later).

    ``ids`` limits it to some records (disposed ones are skipped); ``cause`` goes into each audit entry,
    e.g. {"cause": "request.close", "request": "KORA-2026-0007"}.
    """
    changed: list[dict[str, Any]] = []
    moved: list[tuple[str, datetime]] = []
    checked = 0
    audit = AuditLog(s)
    for st in assess(archive, s, ids):
        if st.status == "disposed":
            continue  # a tombstone keeps the date it was destroyed under
        checked += 1
        if not st.stale:
            continue
        _store(s, st)
        _later(st, moved)
        change = {"record_id": st.record_id, "series": st.series_id, "previous_series": st.stored_series,
                  "previous": _iso(st.stored_date), "disposition_date": _iso(st.disposition_date)}
        audit.append("retention.recomputed", st.record_id,
                     {**{k: v for k, v in change.items() if k != "record_id"}, **(cause or {})}, actor, now)
        changed.append(change)
    if changed:
        # What the dates were computed with, so a later reader can tell which schedule applied.
        used = sorted({c["series"] for c in changed if c["series"]})
        audit.append("retention.recomputed", None, {
            "checked": checked, "changed": len(changed), **(cause or {}),
            "series": {sid: {"retention": str(archive.schedules[sid].retention),
                             "trigger": archive.schedules[sid].trigger}
                       for sid in used if sid in archive.schedules}}, actor, now)
    audit.flush()
    return checked, changed, moved


def recompute(archive: Archive, actor: str) -> dict[str, Any]:
    """Bring every record's cached series and disposition date in line with the schedules as they are now.

    A changed schedule file (period or trigger), a changed account series, a closed request or a new
    case-closed date all move dates; each record whose date moves gets an audit entry.
    """
    with archive.db.write() as s:
        checked, changed, moved = recompute_in(archive, s, actor, archive.clock.now())
    errors = extend_locks(archive, moved)
    return {"checked": checked, "changed": len(changed), "records": changed, "lock_errors": errors}
