"""Read-side queries over the archive: list records, show one with its versions and events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .connectors.base import KINDS
from .db.models import Account, Capture, Event, Record, Version
from .errors import NotFound, UsageError

STATUSES = ("live", "edited", "hidden", "removed", "disposed")


def _iso(dt: Any) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def list_records(s: Session, *, account: str | None = None, kind: str | None = None,
                 status: str | None = None, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """One row per record, oldest first, filtered by account, kind and status."""
    if kind is not None and kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if status is not None and status not in STATUSES:
        raise UsageError(f"--status must be one of {', '.join(STATUSES)}, not {status!r}")
    nver = select(Version.record_id, func.count().label("n")).group_by(Version.record_id).subquery()
    q = (select(Record, Account.name, nver.c.n).join(Account, Account.id == Record.account_id)
         .outerjoin(nver, nver.c.record_id == Record.id)
         .order_by(Record.created_at, Record.id))
    if account:
        q = q.where(Account.name == account)
    if kind:
        q = q.where(Record.kind == kind)
    if status:
        q = q.where(Record.status == status)
    if limit:
        q = q.limit(limit)
    for rec, acc, n in s.execute(q.execution_options(yield_per=2000)):
        yield {"record_id": rec.id, "platform": rec.platform, "account": acc, "native_id": rec.native_id,
               "kind": rec.kind, "parent_id": rec.parent_id, "author": rec.author,
               "created_at": _iso(rec.created_at), "status": rec.status, "versions": n or 0}


def show_record(s: Session, rid: str) -> dict[str, Any]:
    """A record with every version (text, hash, capture) and every event."""
    rec = s.get(Record, rid)
    if rec is None:
        raise NotFound(f"no record {rid!r} in the archive (ids look like rec_0123456789abcdef0123)")
    acc = s.get(Account, rec.account_id)
    caps = {c.id: c for c in s.execute(select(Capture).where(
        Capture.id.in_([v.capture_id for v in rec.versions if v.capture_id]))).scalars()}
    versions = []
    for v in rec.versions:
        cap = caps.get(v.capture_id) if v.capture_id else None
        versions.append({
            "seq": v.seq, "sha256": v.sha256, "captured_at": _iso(v.captured_at),
            "text": None if rec.status == "disposed" else v.text,
            "edited_at": _iso(v.edited_at), "content": json.loads(v.content) if rec.status != "disposed" else None,
            "capture": None if cap is None else {"id": cap.id, "url": cap.url, "status": cap.status,
                                                  "fetched_at": _iso(cap.fetched_at), "sha256": cap.sha256},
        })
    events = [{"type": e.type, "at": _iso(e.at), "run": e.harvest_run_id, "capture": e.capture_id,
               "version": e.version_seq} for e in s.execute(
        select(Event).where(Event.record_id == rid).order_by(Event.id)).scalars()]
    return {
        "record_id": rec.id, "platform": rec.platform, "account": acc.name if acc else None,
        "native_id": rec.native_id, "kind": rec.kind, "parent_id": rec.parent_id,
        "parent_native_id": rec.parent_native_id, "author": rec.author, "author_id": rec.author_id,
        "created_at": _iso(rec.created_at), "permalink": rec.permalink, "status": rec.status,
        "hidden": rec.hidden, "removed_at": _iso(rec.removed_at),
        "first_captured_at": _iso(rec.first_captured_at), "last_seen_at": _iso(rec.last_seen_at),
        "series": rec.series, "disposition_date": _iso(rec.disposition_date),
        "versions": versions, "events": events,
    }
