"""The blob store's own protection (S3 Object Lock) kept in step with holds, open requests and dates.

The database rows (holds, open requests, disposition dates) are what disposition checks. The store's
legal-hold flag and retention date are a second guard, so that nobody with direct access to the bucket
can delete a blob either. A blob is flagged while any record whose content lives in it is under an
active hold or in an open request (one blob can serve several records: a page of comments is one
response). Flags and dates are changed after the database commit: a failure leaves the record protected
by the database (disposition still refuses it) and is reported, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .archive import Archive
from .db.models import Capture, Event, Record, Version
from .db.request_models import Request, RequestRecord
from .db.retention_models import Hold, HoldRecord
from .errors import ArchiverError

log = logging.getLogger(__name__)
CHUNK = 1000  # ids per IN (...) list, well under SQLite's bound-parameter limit


def _chunks(items: Sequence[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield list(items[i:i + CHUNK])


def record_blobs(s: Session, ids: Sequence[str]) -> set[str]:
    """Every blob a record's content lives in: its versions' item blobs and the responses they came from."""
    return set().union(*blobs_by_record(s, ids).values())


def blobs_by_record(s: Session, ids: Sequence[str]) -> dict[str, set[str]]:
    """record id -> the blobs its content lives in (see ``record_blobs``), three queries per 1,000 records."""
    out: dict[str, set[str]] = {}
    for chunk in _chunks(ids):
        pairs = list(s.execute(select(Version.record_id, Version.sha256).where(Version.record_id.in_(chunk))))
        pairs += s.execute(select(Version.record_id, Capture.sha256).join(Version, Version.capture_id == Capture.id)
                           .where(Version.record_id.in_(chunk))).all()
        # Responses that recorded a change of the record without a new version (a removal probe).
        pairs += s.execute(select(Event.record_id, Capture.sha256).join(Event, Event.capture_id == Capture.id)
                           .where(Event.record_id.in_(chunk))).all()
        for rid, sha in pairs:
            out.setdefault(rid, set()).add(sha)
    return out


def blob_users(s: Session, shas: Sequence[str]) -> dict[str, set[str]]:
    """blob -> ids of the records whose content lives in it (the inverse of ``record_blobs``)."""
    out: dict[str, set[str]] = {}
    for chunk in _chunks(sorted(shas)):
        pairs = list(s.execute(select(Version.sha256, Version.record_id).where(Version.sha256.in_(chunk))))
        pairs += s.execute(select(Capture.sha256, Version.record_id).join(Version, Version.capture_id == Capture.id)
                           .where(Capture.sha256.in_(chunk))).all()
        pairs += s.execute(select(Capture.sha256, Event.record_id).join(Event, Event.capture_id == Capture.id)
                           .where(Capture.sha256.in_(chunk))).all()
        for sha, rid in pairs:
            out.setdefault(sha, set()).add(rid)
    return out


def covered_record_ids(s: Session, ids: Iterable[str]) -> set[str]:
    """Those of ``ids`` under an unreleased hold or in a request that is not closed."""
    out: set[str] = set()
    for chunk in _chunks(sorted(set(ids))):
        out |= set(s.execute(select(HoldRecord.record_id).join(Hold, Hold.id == HoldRecord.hold_id)
                             .where(HoldRecord.record_id.in_(chunk), Hold.released_at.is_(None))).scalars())
        # Anything but "closed" holds, as in eligibility: an unknown status must never free a blob.
        out |= set(s.execute(select(RequestRecord.record_id).join(Request, Request.id == RequestRecord.request_id)
                             .where(RequestRecord.record_id.in_(chunk), Request.status != "closed")).scalars())
    return out


def releasable_blobs(s: Session, ids: Sequence[str]) -> set[str]:
    """Blobs of these records whose flag may be cleared: no record still under a hold or open request uses them.

    Call it after the hold release or request close is flushed, in the same session, so the released
    hold or closed request no longer counts.
    """
    users = blob_users(s, sorted(record_blobs(s, ids)))
    covered = covered_record_ids(s, set().union(*users.values()) if users else set())
    return {sha for sha, rids in users.items() if not rids & covered}


def enforces_locks(archive: Archive) -> bool:
    """Whether the blob store itself enforces retention and legal holds (S3 with Object Lock)."""
    return bool(archive.blobs.enforces_locks())


def flag(archive: Archive, shas: Iterable[str], on: bool) -> tuple[int, list[str]]:
    """Set or clear the store's legal-hold flag on these blobs; (how many, errors). No-op without locking."""
    todo = sorted(set(shas))
    if not todo or not enforces_locks(archive):
        return 0, []
    done, errors = 0, []
    for sha in todo:
        try:
            archive.blobs.legal_hold(sha, on)
            done += 1
        except ArchiverError as exc:
            errors.append(f"{sha}: {exc}")
            log.warning("legal hold flag %s on blob %s failed: %s", "set" if on else "cleared", sha, exc)
    return done, errors


def extend_locks(archive: Archive, moved: Sequence[tuple[str, datetime]]) -> list[str]:
    """Extend the store's retention of each record's blobs to its new, later date; errors returned."""
    return [f"{sha}: {err}" for sha, err in protect_records(archive, moved).items()]


def protect_records(archive: Archive, moved: Sequence[tuple[str, datetime]]) -> dict[str, str]:
    """Extend the store's retention of each record's blobs to its (record, date); blob -> error of failures.

    Runs after the commit: the database date is what disposition checks and the lock only ever grows,
    so a failure here leaves a blob protected for less long than its record, never deletable by us early.
    """
    if not moved or not enforces_locks(archive):
        return {}
    # Records share blobs (a page's response serves every item on it): one call per blob, to the
    # latest date any of its records needs, instead of one per record.
    latest: dict[str, datetime] = {}
    with archive.db.read() as s:
        by_record = blobs_by_record(s, [rid for rid, _ in moved])
    for rid, until in moved:
        for sha in by_record.get(rid, ()):
            latest[sha] = max(until, latest.get(sha, until))
    failed: dict[str, str] = {}
    for sha, until in sorted(latest.items()):
        try:
            archive.blobs.protect(sha, until)
        except ArchiverError as exc:
            failed[sha] = str(exc)
            log.warning("blob %s: retention not extended to %s: %s", sha, until, exc)
    return failed


def sync_store_locks(archive: Archive) -> dict[str, Any]:
    """Bring a store that enforces locks in line with the database: each record's blobs retained until its
    disposition date, and flagged while a hold or open request covers the record (after migrate-storage)."""
    from .eligibility import assess  # here: eligibility is a heavier import than this module needs

    if not enforces_locks(archive):
        return {"records_dated": 0, "blobs_flagged": 0, "errors": []}
    dated: list[tuple[str, datetime]] = []
    covered: list[str] = []
    with archive.db.read() as s:
        for st in assess(archive, s):
            if st.disposition_date is not None:
                dated.append((st.record_id, st.disposition_date))
            if st.held:
                covered.append(st.record_id)
        shas = record_blobs(s, covered)
    failed = protect_records(archive, dated)
    flagged, errors = flag(archive, shas, True)
    return {"records_dated": len(dated), "blobs_flagged": flagged,
            "errors": [f"{sha}: {err}" for sha, err in failed.items()] + errors}


def lock_new_versions(archive: Archive, run_id: int) -> dict[str, Any]:
    """After a harvest: retain the run's new versions' blobs until their records' disposition dates, and flag
    them when a hold or open request covers the record (capture stores them with the store's default lock)."""
    if not enforces_locks(archive):
        return {"records_dated": 0, "blobs_flagged": 0, "errors": []}
    with archive.db.read() as s:
        rids = sorted(set(s.execute(select(Version.record_id).where(Version.harvest_run_id == run_id)).scalars()))
        dated = [(r, d) for r, d in s.execute(select(Record.id, Record.disposition_date)
                                              .where(Record.id.in_(rids))).all() if d is not None]
        shas = record_blobs(s, sorted(covered_record_ids(s, rids)))
    failed = protect_records(archive, dated)
    flagged, errors = flag(archive, shas, True)
    return {"records_dated": len(dated), "blobs_flagged": flagged,
            "errors": [f"{sha}: {err}" for sha, err in failed.items()] + errors}
