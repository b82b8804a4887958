"""Legal holds: named sets of records whose disposition is frozen until the hold is released.

The hold rows in the database are what disposition checks; when the blob store supports it (S3 Object
Lock) each blob of a held record also gets the store's legal-hold flag, so even someone with direct
access to the bucket cannot delete it. The flags are set after the database commit: if setting one
fails, the record is still held (the database says so) and the error is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .archive import Archive
from .audit import AuditLog
from .db.models import Capture, Event, Record, Version
from .db.retention_models import Hold, HoldRecord
from .errors import ArchiverError, NotFound, UsageError

log = logging.getLogger(__name__)


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def record_blobs(s: Session, ids: Sequence[str]) -> set[str]:
    """Every blob a record's content lives in: its versions' item blobs and the responses they came from."""
    out: set[str] = set()
    for i in range(0, len(ids), 1000):
        chunk = list(ids[i:i + 1000])
        out |= set(s.execute(select(Version.sha256).where(Version.record_id.in_(chunk))).scalars())
        out |= set(s.execute(select(Capture.sha256).join(Version, Version.capture_id == Capture.id)
                             .where(Version.record_id.in_(chunk))).scalars())
        # Responses that recorded a change of the record without a new version (a removal probe).
        out |= set(s.execute(select(Capture.sha256).join(Event, Event.capture_id == Capture.id)
                             .where(Event.record_id.in_(chunk))).scalars())
    return out


def held_record_ids(s: Session) -> set[str]:
    """Every record under at least one unreleased hold."""
    return set(s.execute(select(HoldRecord.record_id).join(Hold, Hold.id == HoldRecord.hold_id)
                         .where(Hold.released_at.is_(None))).scalars())


def _flag(archive: Archive, shas: set[str], on: bool) -> tuple[int, list[str]]:
    """Set or clear the store's legal-hold flag on these blobs; (how many, errors). No-op if unsupported."""
    legal_hold = getattr(archive.blobs, "legal_hold", None)
    if legal_hold is None or not shas:
        return 0, []
    done, errors = 0, []
    for sha in sorted(shas):
        try:
            legal_hold(sha, on)
            done += 1
        except ArchiverError as exc:
            errors.append(f"{sha}: {exc}")
            log.warning("legal hold flag %s on blob %s failed: %s", "set" if on else "cleared", sha, exc)
    return done, errors


def _get(s: Session, name: str) -> Hold:
    hold = s.execute(select(Hold).where(Hold.name == name)).scalar_one_or_none()
    if hold is None:
        raise NotFound(f"no hold named {name!r} (see `archiver hold list`)")
    return hold


def create_hold(archive: Archive, name: str, ids: Sequence[str], matter: str, actor: str,
                query: str | None = None) -> dict[str, Any]:
    """Place a hold on these records; returns {"hold","records",...}."""
    name = name.strip()
    if not name or len(name) > 100 or any(c in name for c in "\r\n\t"):
        raise UsageError("a hold name is 1-100 characters on one line")
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
    flagged, errors = _flag(archive, shas, True)
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
        # A blob shared with a record that another hold still covers keeps its flag.
        still = held_record_ids(s)
        shas = record_blobs(s, ids) - record_blobs(s, sorted(still))
    cleared, errors = _flag(archive, shas, False)
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
