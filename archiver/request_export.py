"""Exporting a request: gather its records from the database into a PacketIn, have the packet builder
render it, then record the export and its audit entry.

The builder (archiver.exports.packet) never opens the database; this is the only place that turns DB
rows into packet input, so what a packet can contain is decided here and in exports.model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from .archive import Archive
from .audit import AuditLog
from .config import Settings
from .db.models import Account, Event, Record, Version
from .db.request_models import Request, RequestExport, RequestRecord, RequestRedaction
from .errors import ArchiverError, NotFound, UsageError
from .exports.model import EventIn, Exemption, PacketIn, RecordIn, Redaction, VersionIn
from .laws import load_law
from .requests import validate_request_id


def template_dirs(settings: Settings) -> list[Path]:
    """The agency's template override folders: [agency] templates_dir, else <config dir>/templates if present."""
    configured = settings.agency.templates_dir
    if configured:
        p = Path(configured).expanduser()
        p = p if p.is_absolute() else settings.base_dir / p
        if not p.is_dir():
            raise UsageError(f"agency.templates_dir: {p} is not a directory")
        return [p]
    default = settings.base_dir / "templates"
    return [default] if default.is_dir() else []


def _record_ins(s: Session, rid: str, exemptions: dict[str, Exemption]) -> list[RecordIn]:
    rows = s.execute(select(RequestRecord, Record, Account.name).join(Record, Record.id == RequestRecord.record_id)
                     .join(Account, Account.id == Record.account_id)
                     .where(RequestRecord.request_id == rid)).all()
    ids = [rec.id for _, rec, _ in rows]
    versions: dict[str, list[VersionIn]] = {}
    events: dict[str, list[EventIn]] = {}
    redactions: dict[str, list[Redaction]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for v in s.execute(select(Version).where(Version.record_id.in_(chunk)).order_by(Version.record_id,
                                                                                           Version.seq)).scalars():
            versions.setdefault(v.record_id, []).append(VersionIn(v.seq, v.captured_at, v.sha256, v.text, v.edited_at))
        for e in s.execute(select(Event).where(Event.record_id.in_(chunk)).order_by(Event.id)).scalars():
            events.setdefault(e.record_id, []).append(EventIn(e.type, e.at))
    for r in s.execute(select(RequestRedaction).where(RequestRedaction.request_id == rid)
                       .order_by(RequestRedaction.id)).scalars():
        redactions.setdefault(r.record_id, []).append(Redaction(r.text, _exemption(exemptions, r.exemption)))
    # The post a comment belongs to is named by native id within its account; packets want record ids.
    wanted = {(rec.account_id, rec.thread_native_id) for _, rec, _ in rows if rec.thread_native_id}
    threads: dict[tuple[int, str], str] = {}
    pairs = list(wanted)
    for start in range(0, len(pairs), 500):
        for aid, nid, tid in s.execute(select(Record.account_id, Record.native_id, Record.id).where(
                tuple_(Record.account_id, Record.native_id).in_(pairs[start:start + 500]))):
            threads[(aid, nid)] = tid
    out = []
    for rr, rec, acc in rows:
        thread = threads.get((rec.account_id, rec.thread_native_id)) if rec.thread_native_id else None
        decision = rr.decision
        reds = redactions.get(rec.id, []) if decision != "withhold" else []
        if decision == "redact" and not reds:
            decision = "release"
        out.append(RecordIn(
            record_id=rec.id, platform=rec.platform, account=acc, native_id=rec.native_id, kind=rec.kind,
            parent_id=rec.parent_id, thread_id=thread if thread != rec.id else None, author=rec.author,
            created_at=rec.created_at, permalink=rec.permalink, status=rec.status,
            first_captured_at=rec.first_captured_at, last_seen_at=rec.last_seen_at, removed_at=rec.removed_at,
            versions=tuple(versions.get(rec.id, ())), events=tuple(events.get(rec.id, ())), decision=decision,  # type: ignore[arg-type]
            redactions=tuple(reds),
            withhold_exemption=_exemption(exemptions, rr.exemption) if decision == "withhold" else None,
        ))
    return out


def _exemption(exemptions: dict[str, Exemption], cite: str | None) -> Exemption:
    if cite is None:
        # The withhold command always records one; only a hand-edited row gets here.
        raise ArchiverError("a withheld record has no exemption recorded: run `archiver request withhold` "
                            "for it again with --exemption")
    # A citation recorded under an older law file keeps working: it is shown as written.
    return exemptions.get(cite) or Exemption(cite, cite)


def next_bates(s: Session, rid: str) -> int:
    """First Bates number of the next export: after the last export's last number, else 1."""
    last = s.execute(select(func.max(RequestExport.bates_last_number)).where(RequestExport.request_id == rid)).scalar()
    return (last or 0) + 1


def build_packet(arch: Archive, rid: str, *, bates_start: int | None = None) -> PacketIn:
    """The packet input of a request's next export (export_seq and Bates start filled in)."""
    ag = arch.settings.agency
    with arch.db.read() as s:
        req = s.get(Request, validate_request_id(rid))
        if req is None:
            raise NotFound(f"no request {rid!r} (see `archiver request list`)")
        law = load_law(req.law)
        exemptions = {e.citation: e for e in law.exemption_list()}
        records = _record_ins(s, rid, exemptions)
        if not records:
            raise UsageError(f"request {rid} has no records: add some with `archiver request add` first")
        seq = (s.execute(select(func.max(RequestExport.seq)).where(RequestExport.request_id == rid)).scalar() or 0) + 1
        start = next_bates(s, rid) if bates_start is None else bates_start
        return PacketIn(
            request_id=req.id, law=law.id, law_name=law.name, law_citation=law.citation, requester=req.requester,
            description=req.description, received=req.received, due=req.due, extended_due=req.extended_due,
            extension_reason=req.extension_reason, agency_name=ag.name, custodian=ag.custodian,
            bates_prefix=ag.bates_prefix, timezone=ag.timezone, generated_at=arch.clock.now(), records=records,
            exemptions=tuple(law.exemption_list()), bates_start=start, export_seq=seq,
            # Full citations ("Cal. Gov. Code 7922.535(b)"), under names templates can rely on.
            extra={"law_deadline_citation": law.deadline_citation,
                   "law_extension_citation": law.extension_citation,
                   "extension_days": str(req.extension_days or "")},
        )


def _bates_number(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    m = re.search(r"(\d+)$", str(value or ""))
    return int(m.group(1)) if m else None


def export_request(arch: Archive, rid: str, *, out_dir: Path | None, bates_start: int | None,
                   actor: str) -> dict[str, Any]:
    """Render the request's packet into out_dir (default exports_dir) and record the export."""
    try:
        from .exports.packet import export_packet
    except ImportError as exc:
        raise ArchiverError(f"the packet builder is not available in this installation ({exc}): reinstall the "
                            "archiver with its dependencies (pip install archiver)") from None
    if bates_start is not None and bates_start < 1:
        raise UsageError("--bates-start must be 1 or more")
    packet = build_packet(arch, rid, bates_start=bates_start)
    target = out_dir or arch.settings.storage.exports_dir
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # A typo in --out (or an unmounted USB drive) is an operator's error to report, not a traceback.
        raise ArchiverError(f"cannot create the packet folder {target}: {exc.strerror or exc}") from None
    res = export_packet(packet, target, template_dirs=template_dirs(arch.settings))
    now = arch.clock.now()
    doc = {"request_id": rid, "path": str(res.path), "bates_first": res.bates_first, "bates_last": res.bates_last,
           "pages": res.pages, "released": res.released, "redacted": res.redacted, "withheld": res.withheld,
           "manifest_sha256": res.manifest_sha256, "export_seq": packet.export_seq}
    with arch.db.write() as s:
        s.add(RequestExport(request_id=rid, seq=packet.export_seq, path=str(res.path),
                            bates_first=_str(res.bates_first), bates_last=_str(res.bates_last),
                            bates_last_number=_bates_number(res.bates_last), pages=res.pages,
                            released=res.released, redacted=res.redacted, withheld=res.withheld,
                            manifest_sha256=res.manifest_sha256, created_at=now, created_by=actor))
        audit = AuditLog(s)
        audit.append("request.export", rid, {k: doc[k] for k in ("path", "bates_first", "bates_last", "pages",
                                                                 "released", "redacted", "withheld",
                                                                 "manifest_sha256", "export_seq")}, actor, now)
        s.flush()
        audit.flush()
    return doc


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def export_counts(records: Sequence[RecordIn]) -> dict[str, int]:
    """How many records a packet releases whole, releases redacted and withholds."""
    return {d: sum(1 for r in records if r.decision == d) for d in ("release", "redact", "withhold")}
