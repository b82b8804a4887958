"""Fixity: re-hash every blob the archive names and recompute the whole audit chain."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from .archive import Archive
from .audit import AuditLog, verify_chain
from .capture import SYSTEM_ACTOR
from .db.models import Blob
from .errors import BlobCorrupt, BlobError, BlobMissing


@dataclass
class VerifyReport:
    """What `verify` found; ``ok`` only when every blob and the chain are intact."""

    blobs_checked: int = 0
    blobs_bad: list[dict[str, str]] = field(default_factory=list)
    audit_entries: int = 0
    audit_ok: bool = True
    first_bad_entry: int | None = None
    audit_problem: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.blobs_bad and self.audit_ok

    def to_json(self) -> dict[str, Any]:
        """The documented `verify --json` keys."""
        return {"blobs_checked": self.blobs_checked, "blobs_bad": self.blobs_bad,
                "audit_entries": self.audit_entries, "audit_ok": self.audit_ok,
                "first_bad_entry": self.first_bad_entry, "audit_problem": self.audit_problem, "ok": self.ok}


def verify_archive(archive: Archive, *, older_than: datetime | None = None,
                   progress: Callable[[int, int], None] | None = None, batch: int = 1000) -> VerifyReport:
    """Check blobs (all, or those not verified since ``older_than``) and the audit chain."""
    rep = VerifyReport()
    q = select(Blob.sha256, Blob.kind).where(Blob.destroyed_at.is_(None)).order_by(Blob.sha256)
    if older_than is not None:
        q = q.where((Blob.verified_at.is_(None)) | (Blob.verified_at < older_than))
    with archive.db.read() as s:
        total = s.execute(select(func.count()).select_from(q.subquery())).scalar_one()
        rows = list(s.execute(q))
    good: list[str] = []
    for i, (sha, kind) in enumerate(rows, 1):
        rep.blobs_checked += 1
        try:
            archive.blobs.verify(sha)
            good.append(sha)
        except BlobCorrupt as exc:
            rep.blobs_bad.append({"sha256": sha, "kind": kind, "problem": "corrupt", "detail": str(exc)})
        except BlobMissing:
            rep.blobs_bad.append({"sha256": sha, "kind": kind, "problem": "missing", "detail": "not in the store"})
        except BlobError as exc:
            rep.blobs_bad.append({"sha256": sha, "kind": kind, "problem": "unreadable", "detail": str(exc)})
        if progress and (i % batch == 0 or i == total):
            progress(i, total)
    with archive.db.read() as s:
        chain = verify_chain(s)
    rep.audit_entries, rep.audit_ok = chain.entries, chain.ok
    rep.first_bad_entry, rep.audit_problem = chain.first_bad_entry, chain.reason
    now = archive.clock.now()
    with archive.db.write() as s:
        for start in range(0, len(good), batch):
            s.execute(update(Blob).where(Blob.sha256.in_(good[start:start + batch])).values(verified_at=now))
        if chain.ok:
            # Only a sound chain can be extended; a broken one is left exactly as found for inspection.
            audit = AuditLog(s)
            audit.append("archive.verified", None, {"blobs_checked": rep.blobs_checked,
                                                    "blobs_bad": len(rep.blobs_bad),
                                                    "audit_entries": rep.audit_entries}, SYSTEM_ACTOR, now)
            audit.flush()
    return rep
