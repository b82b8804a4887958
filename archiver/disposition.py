"""Disposition: which records may go (report, dry run) and destroying them with a certificate (approve).

Invariant 6: nothing held, in an open request or not yet eligible is destroyed. Eligibility is decided
from first principles (archiver.eligibility) inside the write transaction that destroys, and checked
again for each batch right before its blobs are destroyed; the blob store is the last line (an S3
bucket with Object Lock refuses to delete a blob before its retention date, and a record whose blob
still carries the legal-hold flag is kept whole even when the database shows no hold). A record that goes keeps a
tombstone (status ``disposed``, ids, series, dates, version hashes); its text, author and permalink are
cleared and its blobs destroyed unless a record that stays still needs them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from . import certificate
from .archive import Archive
from .assignments import recompute
from .audit import AuditLog
from .blob_holds import blob_users, covered_record_ids, enforces_locks, record_blobs
from .db.models import Account, AuditEntry, Blob, Record, Version
from .db.retention_models import Disposition
from .eligibility import Standing, assess
from .errors import ArchiverError, BlobMissing, UsageError

log = logging.getLogger(__name__)
RECHECK = 200  # records re-assessed together right before their blobs are destroyed


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def _groups(items: list[Standing]) -> list[dict[str, Any]]:
    """Records grouped by series, with the series' authority."""
    by: dict[str, list[Standing]] = defaultdict(list)
    for st in items:
        by[st.series_id or "-"].append(st)
    out = []
    for sid in sorted(by):
        s = by[sid][0].series
        out.append({"series": sid, "title": s.title if s else None, "citation": s.citation if s else None,
                    "action": s.action if s else None, "count": len(by[sid]),
                    "records": [{"record_id": st.record_id, "account": st.account,
                                 "trigger_date": _iso(st.trigger_date),
                                 "disposition_date": _iso(st.disposition_date)} for st in by[sid]]})
    return out


def _survey(archive: Archive, s: Session, now: datetime) -> dict[str, Any]:
    """Every not-yet-disposed record sorted into: destroy now, needs a person, held, later, never."""
    destroy, person, held, later, never, unknown, stale = [], [], [], [], 0, [], 0
    for st in assess(archive, s):
        stale += st.stale
        if st.series is None:
            unknown.append(st.record_id)
        if st.held:
            held.append(st)
        elif st.destroyable(now):
            destroy.append(st)
        elif st.due(now):
            person.append(st)
        elif st.disposition_date is not None:
            later.append(st)
        else:
            never += 1
    nxt: dict[str, list[Standing]] = defaultdict(list)
    for st in later:
        nxt[st.series_id or "-"].append(st)
    return {
        "destroy": destroy,
        "as_of": _iso(now),
        "eligible": _groups(destroy),
        "needs_person": _groups(person),
        "held": [{"record_id": st.record_id, "series": st.series_id, "disposition_date": _iso(st.disposition_date),
                  "due": st.due(now), "holds": st.holds, "requests": st.open_requests} for st in held],
        "next_eligible": [{"series": sid, "date": _iso(min(x.disposition_date for x in sts if x.disposition_date)),
                           "count": len(sts)} for sid, sts in sorted(nxt.items())],
        "not_scheduled": never,
        "unknown_series": unknown,
        "stale_dates": stale,
        "disposed": int(s.execute(select(func.count()).select_from(Record)
                                  .where(Record.status == "disposed")).scalar() or 0),
    }


def report(archive: Archive) -> dict[str, Any]:
    """Eligible records by series, held records, next eligible dates; changes nothing."""
    with archive.db.read() as s:
        doc = _survey(archive, s, archive.clock.now())
    doc.pop("destroy")
    doc["certificate"] = None
    return doc


# --- blobs ------------------------------------------------------------------------------------------
def _proven_disposed(s: Session) -> set[str]:
    """Records marked disposed whose disposition is in the audit log and that nothing holds now.

    The status column alone is not proof: a hand edit could mark a held record ``disposed``. The audit
    log's ``record.disposed`` entry is hash-chained (an edit there breaks ``verify``), and a hold or an
    open request on the record (also only possible by hand) keeps its blobs too.
    """
    marked = list(s.execute(select(Record.id).where(Record.status == "disposed")).scalars())
    proven: set[str] = set()
    for i in range(0, len(marked), 1000):
        proven |= {rid for rid in s.execute(select(AuditEntry.subject).where(
            AuditEntry.action == "record.disposed", AuditEntry.subject.in_(marked[i:i + 1000]))).scalars() if rid}
    return proven - covered_record_ids(s, proven)


def _blob_plan(s: Session, ids: list[str]) -> tuple[list[str], list[str]]:
    """(blobs to destroy, blobs kept because a staying record shares them) if ``ids`` were disposed.

    Blobs of earlier dispositions that the store refused (or a crash left) are retried here too. A blob
    goes only when every record using it is going now or was proven disposed before.
    """
    going = set(ids)
    gone = _proven_disposed(s)
    candidates = record_blobs(s, ids) | record_blobs(s, sorted(gone))
    keep = {sha for sha, users in blob_users(s, sorted(candidates)).items() if users - going - gone}
    done = set()
    ordered = sorted(candidates)
    for i in range(0, len(ordered), 1000):
        done |= set(s.execute(select(Blob.sha256).where(Blob.sha256.in_(ordered[i:i + 1000]),
                                                        Blob.destroyed_at.is_not(None))).scalars())
    return sorted(candidates - keep - done), sorted(keep & record_blobs(s, ids))


def _store_held(archive: Archive, s: Session, going: list[Standing]) -> tuple[list[Standing], list[str]]:
    """(records that may go, records kept because the store still flags one of their blobs as held).

    The database said these records are free, but a legal-hold flag on a blob only they use means a hold
    or open request once covered them and the database no longer shows it (a hand edit, a lost row):
    the store's word wins and the records stay whole. A flag that cannot be read counts as set.
    """
    if not going or not enforces_locks(archive):
        return going, []
    blobs, _ = _blob_plan(s, [st.record_id for st in going])
    flagged = []
    for sha in blobs:
        try:
            if archive.blobs.lock_status(sha).legal_hold:
                flagged.append(sha)
        except BlobMissing:
            continue
        except ArchiverError as exc:
            log.warning("blob %s: legal-hold flag unreadable, its records are kept: %s", sha, exc)
            flagged.append(sha)
    users = set().union(*blob_users(s, flagged).values()) if flagged else set()
    kept = sorted(st.record_id for st in going if st.record_id in users)
    if kept:
        log.warning("%d records kept: the blob store holds their blobs under legal hold (%s)", len(kept),
                    ", ".join(kept[:5]))
    return [st for st in going if st.record_id not in users], kept


def _destroy_blob(archive: Archive, sha: str) -> None:
    """Destroy one blob through the store (which refuses while an Object Lock retention or hold is on)."""
    fn = getattr(archive.blobs, "destroy", None) or getattr(archive.blobs, "delete", None)
    if fn is None:
        raise ArchiverError(f"the blob store {archive.blobs.location} cannot destroy blobs")
    fn(sha)


# --- dispose ----------------------------------------------------------------------------------------
def _record_facts(s: Session, sts: Iterable[Standing]) -> list[dict[str, Any]]:
    """What the certificate says about each record (read before its tombstone is written)."""
    by_id = {st.record_id: st for st in sts}
    ids = list(by_id)
    rows = {r.id: (r, acc) for r, acc in s.execute(select(Record, Account.name).join(
        Account, Account.id == Record.account_id).where(Record.id.in_(ids)))}
    vers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in s.execute(select(Version).where(Version.record_id.in_(ids)).order_by(Version.record_id, Version.seq)
                       ).scalars():
        vers[v.record_id].append({"seq": v.seq, "sha256": v.sha256, "captured_at": _iso(v.captured_at)})
    out = []
    for rid in ids:
        rec, acc = rows[rid]
        st = by_id[rid]
        out.append({"record_id": rid, "platform": rec.platform, "account": acc, "native_id": rec.native_id,
                    "kind": rec.kind, "series": st.series_id, "trigger": st.series.trigger if st.series else None,
                    "trigger_date": _iso(st.trigger_date), "disposition_date": _iso(st.disposition_date),
                    "created_at": _iso(rec.created_at), "first_captured_at": _iso(rec.first_captured_at),
                    "removed_at": _iso(rec.removed_at), "versions": vers[rid]})
    return out


def _tombstone(s: Session, ids: list[str], st_by_id: dict[str, Standing]) -> None:
    """Clear the content of these records, keeping ids, dates, series and hashes."""
    for i in range(0, len(ids), 1000):
        chunk = ids[i:i + 1000]
        s.execute(update(Version).where(Version.record_id.in_(chunk)).values(text=None, content="{}", extra="{}"))
        s.execute(update(Record).where(Record.id.in_(chunk))
                  .values(status="disposed", author=None, author_id=None, permalink=None))
    for rid in ids:  # the date it was destroyed under, not a hand-edited one
        st = st_by_id[rid]
        s.execute(update(Record).where(Record.id == rid)
                  .values(series=st.series_id, disposition_date=st.disposition_date))


def dispose(archive: Archive, *, approve: bool = False, actor: str | None = None) -> dict[str, Any]:
    """Without approve: what would go (changes nothing). With approve: destroy it and certify."""
    if not approve:
        now = archive.clock.now()
        with archive.db.read() as s:
            doc = _survey(archive, s, now)
            going, store_held = _store_held(archive, s, doc.pop("destroy"))
            facts = _record_facts(s, going) if going else []
            blobs, kept = _blob_plan(s, [st.record_id for st in going]) if going else ([], [])
        doc.update(dry_run=True, would_destroy=facts, blobs_to_destroy=blobs, blobs_kept_shared=kept,
                   kept_store_legal_hold=store_held, disposed=[], certificate=None)
        return doc
    if not actor or not actor.strip():
        raise UsageError("--approve needs --actor NAME: the certificate names who approved the destruction")
    recompute(archive, actor)
    now = archive.clock.now()
    with archive.db.write() as s:
        doc = _survey(archive, s, now)
        planned = doc.pop("destroy")
        confirmed: list[Standing] = []
        # Re-assessed right before acting: a hold placed or a request opened since the survey (impossible
        # under the write lock, but cheap to prove) or any inconsistency keeps the record.
        for i in range(0, len(planned), RECHECK):
            chunk = [st.record_id for st in planned[i:i + RECHECK]]
            confirmed += [st for st in assess(archive, s, chunk) if st.destroyable(now)]
        confirmed, store_held = _store_held(archive, s, confirmed)
        doc["kept_store_legal_hold"] = store_held
        ids = [st.record_id for st in confirmed]
        blobs, kept = _blob_plan(s, ids)
        if not ids and not blobs:
            doc.update(dry_run=False, disposed=[], certificate=None, blobs_destroyed=0)
            return doc
        facts = _record_facts(s, confirmed)
        destroyed, failed = [], []
        for sha in blobs:
            try:
                _destroy_blob(archive, sha)
                destroyed.append(sha)
            except ArchiverError as exc:  # e.g. BlobLocked: the store's lock is the last word
                failed.append({"sha256": sha, "error": str(exc).splitlines()[0]})
                log.warning("blob %s not destroyed: %s", sha, exc)
        for i in range(0, len(destroyed), 1000):
            s.execute(update(Blob).where(Blob.sha256.in_(destroyed[i:i + 1000])).values(destroyed_at=now))
        _tombstone(s, ids, {st.record_id: st for st in confirmed})
        series = _series_doc(confirmed)
        cert = certificate.build(certificate.new_id(now), {
            "agency": archive.settings.agency.name, "custodian": archive.settings.agency.custodian,
            "destroyed_at": _iso(now), "approved_by": actor, "series": series, "records": facts,
            "blobs_destroyed": destroyed, "blobs_kept_shared": kept, "blobs_failed": failed})
        certificate.store(archive, s, cert, now)
        s.add(Disposition(id=cert.id, at=now, actor=actor, records=len(ids), certificate_sha256=cert.sha256,
                          certificate_json_sha256=cert.json_sha256))
        audit = AuditLog(s)
        for f in facts:
            audit.append("record.disposed", f["record_id"], {
                "certificate": cert.id, "series": f["series"], "disposition_date": f["disposition_date"],
                "versions": [v["sha256"] for v in f["versions"]]}, actor, now)
        audit.append("disposition", f"disposition:{cert.id}", {
            "certificate": cert.id, "certificate_sha256": cert.sha256, "certificate_json_sha256": cert.json_sha256,
            "records": len(ids), "blobs_destroyed": len(destroyed), "blobs_failed": len(failed),
            "series": {x["id"]: x["citation"] for x in series}}, actor, now)
        audit.flush()
    txt: str | None = None
    js: str | None = None
    try:
        txt, js = (str(p) for p in certificate.write_files(archive, cert))
    except OSError as exc:
        # Committed already: the certificate is safe as blobs and in the audit log; only the copy failed.
        log.warning("certificate %s not copied to the exports folder: %s", cert.id, exc)
    _catch_up(archive)
    doc.update(dry_run=False, disposed=ids, blobs_destroyed=len(destroyed), blobs_kept_shared=kept,
               blobs_failed=failed, certificate={"id": cert.id, "path": txt, "json_path": js,
                                                 "sha256": cert.sha256, "json_sha256": cert.json_sha256})
    return doc


def _series_doc(sts: list[Standing]) -> list[dict[str, Any]]:
    counts: dict[str, int] = defaultdict(int)
    for st in sts:
        counts[st.series_id or "-"] += 1
    out = []
    for st in {st.series_id: st for st in sts}.values():
        s = st.series
        assert s is not None  # destroyable() requires a known series
        out.append({"id": s.id, "title": s.title, "jurisdiction": s.jurisdiction, "retention": str(s.retention),
                    "trigger": s.trigger, "action": s.action, "citation": s.citation, "source": s.source,
                    "records": counts[s.id]})
    return sorted(out, key=lambda x: x["id"])


def _catch_up(archive: Archive) -> None:
    """Drop the destroyed records from the search index now (the audit entries name them)."""
    from .search.indexer import catch_up_quietly, purge_deleted

    if catch_up_quietly(archive) is None:
        return  # logged; the next catch-up deletes them (and a rebuild never contained them)
    try:
        purge_deleted(archive)
    except Exception as exc:  # noqa: BLE001 - the index is derived: `archiver reindex` rewrites it whole
        log.warning("search index: deleted entries not purged from disk (run `archiver reindex`): %s", exc)
