"""The open-records request workflow: create, add records, redact, withhold, extend, close, list, show.

Every change of state is one ``db.write()`` transaction with its audit entry (subject = request id), so
the audit chain and the request tables never disagree. Packets are built in ``request_export``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .archive import Archive
from .audit import AuditLog
from .config import Settings
from .db.models import Account, Record, Version, table
from .db.request_models import Request, RequestExport, RequestRecord, RequestRedaction
from .errors import NotFound, RequestError, UsageError
from .laws import Law, load_law, parse_agency_holidays

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-parameter limit
STATUSES = ("open", "closed")
# Request facts are typed by the custodian and printed in the letter, the packet and the certification:
# a pasted-in document or a stray escape sequence there is a mistake, not data (records are the data).
MAX_REQUESTER, MAX_DESCRIPTION, MAX_REASON = 500, 5000, 2000
# C0/C1 controls and the bidi overrides/isolates that could make a letter read differently from its text.
_BAD_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def check_text(option: str, value: str, limit: int, *, multiline: bool = False) -> str:
    """The value if it is non-empty, at most limit characters and free of control characters; UsageError otherwise."""
    if not value.strip():
        raise UsageError(f"{option} must not be empty")
    if len(value) > limit:
        raise UsageError(f"{option} is {len(value)} characters long; at most {limit} are allowed")
    bad = _BAD_CHARS.search(value) or (None if multiline else re.search("[\n\t]", value))
    if bad:
        raise UsageError(f"{option} contains a control character (U+{ord(bad.group()):04X}); type it as plain text")
    return value


def validate_request_id(value: str) -> str:
    """The id if it is safe as a folder name and a key; UsageError otherwise."""
    if not isinstance(value, str) or not REQUEST_ID_RE.fullmatch(value):
        raise UsageError(f"invalid request id {value!r}: use 1-64 letters, digits, '-' or '_' "
                         "(e.g. KORA-2026-0007)")
    return value


def agency_holidays(settings: Settings) -> tuple[date, ...]:
    """The agency's own holidays from archiver.toml."""
    return parse_agency_holidays(settings.agency.holidays)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def _get(s: Session, rid: str) -> Request:
    req = s.get(Request, validate_request_id(rid))
    if req is None:
        raise NotFound(f"no request {rid!r} (see `archiver request list`)")
    return req


def _open(s: Session, rid: str) -> Request:
    req = _get(s, rid)
    if req.status != "open":
        raise RequestError(f"request {rid} is closed; it can no longer be changed")
    return req


def _next_id(s: Session, law: Law, year: int) -> str:
    prefix = f"{law.id_prefix}-{year}-"
    pat = re.compile(rf"^{re.escape(prefix)}(\d+)$")
    numbers = [int(m.group(1)) for (i,) in s.execute(select(Request.id).where(Request.id.like(f"{prefix}%")))
               if (m := pat.match(i))]
    return f"{prefix}{max(numbers, default=0) + 1:04d}"


def create_request(arch: Archive, *, law: str, requester: str, received: date, description: str,
                   actor: str, request_id: str | None = None) -> dict[str, Any]:
    """Open a request and compute its due date; the id is the next for the law and year unless given."""
    lw = load_law(law)
    check_text("--requester", requester, MAX_REQUESTER)
    check_text("--description", description, MAX_DESCRIPTION, multiline=True)
    if request_id is not None:
        validate_request_id(request_id)
    due = lw.due_date(received, agency_holidays(arch.settings))
    now = arch.clock.now()
    with arch.db.write() as s:
        rid = request_id or _next_id(s, lw, received.year)
        if s.get(Request, rid) is not None:
            raise RequestError(f"request {rid} already exists")
        s.add(Request(id=rid, law=lw.id, requester=requester, description=description, received=received,
                      due=due, status="open", created_at=now, created_by=actor))
        audit = AuditLog(s)
        audit.append("request.create", rid, {"law": lw.id, "received": received.isoformat(),
                                             "due": due.isoformat(), "deadline_citation": lw.deadline_citation},
                     actor, now)
        s.flush()
        audit.flush()
    return {"request_id": rid, "law": lw.id, "received": received.isoformat(), "due": due.isoformat()}


def search_record_ids(arch: Archive, query: str) -> list[str]:
    """Every record the search query matches (the index is caught up first, as `search` does)."""
    from .search.indexer import catch_up
    from .search.searcher import search

    catch_up(arch)
    return [h["record_id"] for h in search(arch, query, limit=None, snippets=False)["hits"]]


def add_records(arch: Archive, rid: str, record_ids: Sequence[str], actor: str) -> dict[str, Any]:
    """Add records to an open request (decision: release); disposed or unknown records are refused."""
    if not record_ids:
        raise RequestError("no records to add (the query matched nothing, or no --record was given)")
    now = arch.clock.now()
    wanted = list(dict.fromkeys(record_ids))
    with arch.db.write() as s:
        _open(s, rid)
        found: dict[str, str] = {}
        for start in range(0, len(wanted), CHUNK):
            found.update(s.execute(select(Record.id, Record.status)
                                   .where(Record.id.in_(wanted[start:start + CHUNK]))).all())
        missing = [r for r in wanted if r not in found]
        if missing:
            raise NotFound(f"no record {missing[0]!r} in the archive" + (f" (and {len(missing) - 1} more)"
                                                                           if len(missing) > 1 else ""))
        disposed = [r for r in wanted if found[r] == "disposed"]
        if disposed:
            raise RequestError(f"record {disposed[0]} was disposed of under its retention schedule and "
                               "cannot be added to a request")
        have = set(s.execute(select(RequestRecord.record_id).where(RequestRecord.request_id == rid)).scalars())
        added = [r for r in wanted if r not in have]
        if added:
            s.execute(table(RequestRecord).insert(), [{"request_id": rid, "record_id": r, "decision": "release",
                                                       "added_at": now} for r in added])
            audit = AuditLog(s)
            audit.append("request.add", rid, {"records": added}, actor, now)
            s.flush()
            audit.flush()
        total = len(have) + len(added)
    # A record in an open request is held: on an Object Lock bucket its blobs get the legal-hold flag,
    # as a hold's do (after the commit; a failure is reported and the database still holds the record).
    flagged, errors = _flag_records(arch, added)
    return {"request_id": rid, "records": added, "already": [r for r in wanted if r in have], "total": total,
            "blobs_flagged": flagged, "blob_errors": errors}


def _flag_records(arch: Archive, ids: Sequence[str]) -> tuple[int, list[str]]:
    """Set the store's legal-hold flag on these records' blobs (nothing to do without Object Lock)."""
    from .blob_holds import enforces_locks, flag, record_blobs

    if not ids or not enforces_locks(arch):
        return 0, []
    with arch.db.read() as s:
        shas = record_blobs(s, ids)
    return flag(arch, shas, True)


def _member(s: Session, rid: str, record_id: str) -> RequestRecord:
    rr = s.execute(select(RequestRecord).where(RequestRecord.request_id == rid,
                                               RequestRecord.record_id == record_id)).scalar_one_or_none()
    if rr is None:
        raise RequestError(f"record {record_id!r} is not in request {rid} (add it with `archiver request add`)")
    return rr


def record_strings(s: Session, record_id: str) -> list[str]:
    """Every string of a record a packet may show (versions' text, author, permalink, ids, account)."""
    from .exports.redact import rendered_strings

    row = s.execute(select(Record.author, Record.permalink, Record.native_id, Account.name, Record.platform)
                    .join(Account, Account.id == Record.account_id).where(Record.id == record_id)).first()
    if row is None:
        return []
    texts = list(s.execute(select(Version.text).where(Version.record_id == record_id)).scalars())
    return rendered_strings(*row, texts)


def _redactions_of(s: Session, rid: str, record_id: str) -> list[dict[str, Any]]:
    rows = s.execute(select(RequestRedaction).where(RequestRedaction.request_id == rid,
                                                    RequestRedaction.record_id == record_id)
                     .order_by(RequestRedaction.id)).scalars()
    return [{"id": r.id, "record_id": r.record_id, "text": r.text, "exemption": r.exemption} for r in rows]


def _add_redaction(s: Session, audit: AuditLog, req: Request, law: Law, record_id: str, text: str, cite: str,
                   actor: str, arch: Archive) -> bool:
    """One redaction (False when the same text is already redacted in that record)."""
    exemption = law.find_exemption(cite)
    rr = _member(s, req.id, record_id)
    if not text.strip():
        raise UsageError("--text must not be empty or only spaces")
    if not any(text in x for x in record_strings(s, record_id)):
        raise RequestError(f"the text to redact does not occur in record {record_id} (give it exactly as the "
                           "record has it: `archiver show RECORD_ID`)")
    if any(r["text"] == text for r in _redactions_of(s, req.id, record_id)):
        return False
    now = arch.clock.now()
    row = RequestRedaction(request_id=req.id, record_id=record_id, text=text, exemption=exemption.citation,
                           created_at=now)
    s.add(row)
    s.flush()
    if rr.decision == "release":
        rr.decision = "redact"
    # The audit entry names the redaction row, not its text: the log must not become a second copy of
    # what was withheld from the requester.
    audit.append("request.redact", req.id, {"record_id": record_id, "redaction_id": row.id,
                                            "exemption": exemption.citation}, actor, now)
    return True


def redact(arch: Archive, rid: str, record_id: str, text: str, cite: str, actor: str) -> dict[str, Any]:
    """Redact every occurrence of ``text`` in one record of the request, citing an exemption of its law."""
    with arch.db.write() as s:
        req = _open(s, rid)
        audit = AuditLog(s)
        _add_redaction(s, audit, req, load_law(req.law), record_id, text, cite, actor, arch)
        s.flush()
        audit.flush()
        return {"request_id": rid, "record_id": record_id, "redactions": _redactions_of(s, rid, record_id)}


def withhold(arch: Archive, rid: str, record_id: str, cite: str, actor: str) -> dict[str, Any]:
    """Withhold one record of the request whole, citing an exemption of its law."""
    now = arch.clock.now()
    with arch.db.write() as s:
        req = _open(s, rid)
        exemption = load_law(req.law).find_exemption(cite)
        rr = _member(s, rid, record_id)
        rr.decision, rr.exemption = "withhold", exemption.citation
        audit = AuditLog(s)
        audit.append("request.withhold", rid, {"record_id": record_id, "exemption": exemption.citation}, actor, now)
        s.flush()
        audit.flush()
        withheld = list(s.execute(select(RequestRecord.record_id).where(
            RequestRecord.request_id == rid, RequestRecord.decision == "withhold")
            .order_by(RequestRecord.record_id)).scalars())
    return {"request_id": rid, "withheld": withheld}


def extend(arch: Archive, rid: str, reason: str, days: int | None, actor: str) -> dict[str, Any]:
    """Extend the request's deadline once, where its law allows, by written reasons."""
    if not reason.strip():
        raise UsageError("--reason must say why (the requester is told in writing)")
    check_text("--reason", reason, MAX_REASON, multiline=True)
    now = arch.clock.now()
    with arch.db.write() as s:
        req = _open(s, rid)
        law = load_law(req.law)
        if not law.extension_allowed:
            raise RequestError(f"the {law.name} has no extension of its deadline ({law.extension_citation})")
        if req.extended_due is not None:
            raise RequestError(f"request {rid} was already extended to {req.extended_due.isoformat()}; "
                               f"{law.extension_citation} allows one extension")
        n = law.extension_max_days if days is None else days
        new_due = law.extended_due_date(req.received, n, agency_holidays(arch.settings))
        req.extended_due, req.extension_days, req.extension_reason = new_due, n, reason
        audit = AuditLog(s)
        audit.append("request.extend", rid, {"days": n, "extended_due": new_due.isoformat(), "reason": reason,
                                             "citation": law.extension_citation}, actor, now)
        s.flush()
        audit.flush()
        return {"request_id": rid, "due": req.due.isoformat(), "extended_due": new_due.isoformat(), "days": n,
                "reason": reason, "citation": law.extension_citation}


def close(arch: Archive, rid: str, actor: str) -> dict[str, Any]:
    """Close an open request: its records are no longer held by it, and retention trigger request-closed starts.

    In the same transaction the records' disposition dates are recomputed (audited, cause request.close).
    After the commit the store's retention is extended where a date moved later, and only then are the
    legal-hold flags cleared of blobs no other hold or open request covers, so a blob is never left
    with neither.
    """
    from .assignments import recompute_in
    from .blob_holds import enforces_locks, flag, protect_records, releasable_blobs

    now = arch.clock.now()
    with arch.db.write() as s:
        req = _open(s, rid)
        req.status, req.closed_at = "closed", now
        audit = AuditLog(s)
        audit.append("request.close", rid, {}, actor, now)
        s.flush()
        audit.flush()
        ids = list(s.execute(select(RequestRecord.record_id).where(RequestRecord.request_id == rid)
                             .order_by(RequestRecord.record_id)).scalars())
        _, changed, moved = recompute_in(arch, s, actor, now, ids, {"cause": "request.close", "request": rid})
        release = releasable_blobs(s, ids) if enforces_locks(arch) else set()
    failed = protect_records(arch, moved)
    # A blob whose retention could not be extended keeps its flag: the flag is then its only guard.
    cleared, flag_errors = flag(arch, release - set(failed), False)
    return {"request_id": rid, "status": "closed", "closed_at": _iso(now), "records": len(ids),
            "dates_changed": changed, "blobs_released": cleared,
            "blob_errors": [f"{sha}: {err}" for sha, err in failed.items()] + flag_errors}


def list_requests(s: Session, status: str | None = None) -> list[dict[str, Any]]:
    """One row per request, newest received first."""
    if status is not None and status not in STATUSES:
        raise UsageError(f"--status must be open or closed, not {status!r}")
    n = (select(RequestRecord.request_id, func.count().label("n")).group_by(RequestRecord.request_id)
         .subquery())
    q = (select(Request, n.c.n).outerjoin(n, n.c.request_id == Request.id)
         .order_by(Request.received.desc(), Request.id.desc()))
    if status:
        q = q.where(Request.status == status)
    return [{"request_id": r.id, "law": r.law, "requester": r.requester, "received": r.received.isoformat(),
             "due": r.due.isoformat(), "extended_due": r.extended_due.isoformat() if r.extended_due else None,
             "status": r.status, "records": cnt or 0} for r, cnt in s.execute(q)]


def show_request(s: Session, rid: str, today: date | None = None) -> dict[str, Any]:
    """A request with its records, decisions, redactions, cited exemptions, deadlines and exports."""
    req = _get(s, rid)
    law = load_law(req.law)
    rows = s.execute(select(RequestRecord, Record, Account.name).join(Record, Record.id == RequestRecord.record_id)
                     .join(Account, Account.id == Record.account_id).where(RequestRecord.request_id == rid)
                     .order_by(Record.created_at, Record.id)).all()
    reds: dict[str, list[dict[str, Any]]] = {}
    for r in s.execute(select(RequestRedaction).where(RequestRedaction.request_id == rid)
                       .order_by(RequestRedaction.id)).scalars():
        reds.setdefault(r.record_id, []).append({"id": r.id, "text": r.text, "exemption": r.exemption})
    records: list[dict[str, Any]] = []
    cited: dict[str, int] = {}
    names = {e.citation: e.short_name for e in law.exemption_list()}
    for rr, rec, acc in rows:
        red = reds.get(rec.id, [])
        records.append({"record_id": rec.id, "platform": rec.platform, "account": acc, "kind": rec.kind,
                        "author": rec.author, "created_at": _iso(rec.created_at), "status": rec.status,
                        "decision": rr.decision, "exemption": rr.exemption,
                        "redactions": red})
        for cite in ([rr.exemption] if rr.decision == "withhold" else [x["exemption"] for x in red]):
            if cite:
                cited.setdefault(cite, 0)
                cited[cite] += 1
    exports = [{"seq": e.seq, "path": e.path, "bates_first": e.bates_first, "bates_last": e.bates_last,
                "pages": e.pages, "released": e.released, "redacted": e.redacted, "withheld": e.withheld,
                "manifest_sha256": e.manifest_sha256, "created_at": _iso(e.created_at), "by": e.created_by}
               for e in s.execute(select(RequestExport).where(RequestExport.request_id == rid)
                                  .order_by(RequestExport.seq)).scalars()]
    deadline = req.extended_due or req.due
    return {
        "request_id": req.id, "law": req.law, "law_name": law.name, "law_citation": law.citation,
        "requester": req.requester, "description": req.description, "received": req.received.isoformat(),
        "due": req.due.isoformat(), "deadline_citation": law.deadline_citation,
        "extended_due": req.extended_due.isoformat() if req.extended_due else None,
        "extension_days": req.extension_days, "extension_reason": req.extension_reason,
        "status": req.status, "overdue": req.status == "open" and today is not None and today > deadline,
        "created_at": _iso(req.created_at), "created_by": req.created_by, "closed_at": _iso(req.closed_at),
        "records": records,
        "counts": {d: sum(1 for r in records if r["decision"] == d) for d in ("release", "redact", "withhold")},
        "exemptions": [{"citation": c, "short_name": names.get(c, ""), "uses": n} for c, n in sorted(cited.items())],
        "exports": exports,
    }


def suggest(arch: Archive, rid: str, accept: bool, actor: str) -> dict[str, Any]:
    """Likely personal information in the request's records, proposed as redactions; --accept redacts them."""
    from .pii import unique_findings

    with arch.db.read() as s:
        req = _get(s, rid) if not accept else _open(s, rid)  # --accept on a closed request fails even with nothing to accept
        law = load_law(req.law)
        done: dict[str, set[str]] = {}
        for rec_id, text in s.execute(select(RequestRedaction.record_id, RequestRedaction.text)
                                      .where(RequestRedaction.request_id == rid)):
            done.setdefault(rec_id, set()).add(text)
        # One pass over every version of every released record (nothing of a withheld record is
        # released, so nothing in it needs redacting), instead of a query per record.
        texts: dict[str, list[str | None]] = {}
        q = (select(Record.id, Record.author, Version.text).join(RequestRecord, RequestRecord.record_id == Record.id)
             .join(Version, Version.record_id == Record.id)
             .where(RequestRecord.request_id == rid, RequestRecord.decision != "withhold")
             .order_by(Record.id, Version.seq))
        for rec_id, author, vtext in s.execute(q.execution_options(yield_per=2000)):
            texts.setdefault(rec_id, [author]).append(vtext)
        suggestions = []
        for rec_id, strings in texts.items():
            for f in unique_findings([*strings[1:], strings[0]]):
                if f.text not in done.get(rec_id, ()):
                    suggestions.append({"record_id": rec_id, "text": f.text, "kind": f.kind,
                                        "exemption": law.pii_exemption})
    accepted = 0
    if accept and suggestions:
        with arch.db.write() as s:
            req = _open(s, rid)
            audit = AuditLog(s)
            for sg in suggestions:
                accepted += _add_redaction(s, audit, req, law, sg["record_id"], sg["text"], sg["exemption"],
                                           actor, arch)
            s.flush()
            audit.flush()
    return {"request_id": rid, "suggestions": suggestions, "accepted": accepted}
