"""Legal holds: named sets of records whose disposition is frozen until the hold is released.

The hold rows in the database are what disposition checks; when the blob store supports it (S3 Object
Lock) each blob of a held record also gets the store's legal-hold flag (archiver.blob_holds, shared with
open requests), so even someone with direct access to the bucket cannot delete it. The flags are set
after the database commit: if setting one fails, the record is still held (the database says so) and
the error is reported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .archive import Archive
from .audit import AuditLog
from .blob_holds import flag, record_blobs, releasable_blobs
from .db.models import Record
from .db.retention_models import Hold, HoldRecord
from .errors import NotFound, UsageError

# Like request ids: no path characters, spaces or control characters, and not "." or "..".
HOLD_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
__all__ = ["create_hold", "list_holds", "record_blobs", "release_hold", "show_hold", "validate_hold_name"]


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def validate_hold_name(name: str) -> str:
    """The name if it is a safe slug (it names the hold in audit subjects, and may name files); UsageError otherwise."""
    if not isinstance(name, str) or not HOLD_NAME_RE.fullmatch(name):
        raise UsageError(f"invalid hold name {name!r}: use 1-100 letters, digits, '.', '-' or '_', starting with a "
                         "letter or digit (e.g. smith-v-city)")
    return name


def _get(s: Session, name: str) -> Hold:
    hold = s.execute(select(Hold).where(Hold.name == name)).scalar_one_or_none()
    if hold is None:
        raise NotFound(f"no hold named {name!r} (see `archiver hold list`)")
    return hold


def create_hold(archive: Archive, name: str, ids: Sequence[str], matter: str, actor: str,
                query: str | None = None) -> dict[str, Any]:
    """Place a hold on these records; returns {"hold","records",...}."""
    validate_hold_name(name)
    if not matter.strip():
        raise UsageError("--matter must say what the hold is for (case, claim, request)")
    now = archive.clock.now()
    with archive.db.write() as s:
        gone = s.execute(select(Record.id).where(Record.id.in_(ids), Record.status == "disposed")).first()
        if gone is not None:
            raise UsageError(f"record {gone[0]} is already disposed: there is nothing left to hold")
        if s.execute(select(Hold.id).where(Hold.name == name)).first() is not None:
            raise UsageError(f"a hold named {name!r} already exists (names are never reused)")
        hold = Hold(name=name, matter=matter, query=query, created_at=now, created_by=actor)
        s.add(hold)
        s.flush()
        s.add_all([HoldRecord(hold_id=hold.id, record_id=rid, added_at=now) for rid in ids])
        audit = AuditLog(s)
        audit.append("hold.created", f"hold:{name}", {"matter": matter, "query": query, "records": len(ids)},
                     actor, now)
        for rid in ids:
            audit.append("hold.placed", rid, {"hold": name, "matter": matter}, actor, now)
        audit.flush()
        shas = record_blobs(s, ids)
    flagged, errors = flag(archive, shas, True)
    return {"hold": name, "matter": matter, "records": list(ids), "created_at": _iso(now), "created_by": actor,
            "blobs_flagged": flagged, "blob_errors": errors}


def release_hold(archive: Archive, name: str, actor: str) -> dict[str, Any]:
    """Release a hold; its records become subject to their schedules again (other holds still apply)."""
    now = archive.clock.now()
    with archive.db.write() as s:
        hold = _get(s, name)
        if hold.released_at is not None:
            raise UsageError(f"hold {name!r} was already released at {_iso(hold.released_at)} by {hold.released_by}")
        ids = list(s.execute(select(HoldRecord.record_id).where(HoldRecord.hold_id == hold.id)
                             .order_by(HoldRecord.record_id)).scalars())
        hold.released_at, hold.released_by = now, actor
        s.flush()
        audit = AuditLog(s)
        audit.append("hold.released", f"hold:{name}", {"matter": hold.matter, "records": len(ids)}, actor, now)
        for rid in ids:
            audit.append("hold.lifted", rid, {"hold": name}, actor, now)
        audit.flush()
        # A blob shared with a record that another hold or an open request still covers keeps its flag.
        shas = releasable_blobs(s, ids)
    cleared, errors = flag(archive, shas, False)
    return {"hold": name, "matter": hold.matter, "records": ids, "released_at": _iso(now), "released_by": actor,
            "blobs_released": cleared, "blob_errors": errors}


def _doc(hold: Hold, count: int) -> dict[str, Any]:
    return {"hold": hold.name, "matter": hold.matter, "query": hold.query, "active": hold.released_at is None,
            "records": count, "created_at": _iso(hold.created_at), "created_by": hold.created_by,
            "released_at": _iso(hold.released_at), "released_by": hold.released_by}


def list_holds(archive: Archive) -> dict[str, Any]:
    """Every hold, active and released, newest first."""
    with archive.db.read() as s:
        counts = dict(s.execute(select(HoldRecord.hold_id, func.count()).group_by(HoldRecord.hold_id)).all())
        holds = s.execute(select(Hold).order_by(Hold.created_at.desc(), Hold.id.desc())).scalars()
        return {"holds": [_doc(h, counts.get(h.id, 0)) for h in holds]}


def show_hold(archive: Archive, name: str) -> dict[str, Any]:
    """One hold with its record ids."""
    with archive.db.read() as s:
        hold = _get(s, name)
        ids = list(s.execute(select(HoldRecord.record_id).where(HoldRecord.hold_id == hold.id)
                             .order_by(HoldRecord.record_id)).scalars())
        doc = _doc(hold, len(ids))
    doc["records"], doc["record_count"] = ids, len(ids)
    return doc
