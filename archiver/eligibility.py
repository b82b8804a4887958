"""Eligibility from first principles: each record's series, trigger date, disposition date and holds.

``records.series`` and ``records.disposition_date`` are a cache written at capture and by ``retention
recompute``; nothing that decides whether a record may be destroyed trusts them. The standing of a record
is computed here from the schedule files, the config, the per-record assignment, the record's own dates
(cross-checked against its versions and events) and the hold and request rows, all read in the caller's
session, so a disposition that calls this inside its write transaction sees exactly what it acts on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .archive import Archive
from .db.models import Account, Event, Record, Version
from .db.request_models import Request, RequestRecord
from .db.retention_models import Hold, HoldRecord, RecordRetention
from .retention import Series

BATCH = 1000

@dataclass
class Standing:
    """What the archive can prove about one record's retention right now."""

    record_id: str
    account: str
    status: str
    series_id: str | None
    series: Series | None  # None: the series id is not in any schedule file (never eligible)
    overridden: bool
    trigger_date: datetime | None
    disposition_date: datetime | None  # None: permanent, or the trigger has not happened yet
    stored_series: str | None
    stored_date: datetime | None
    holds: list[str] = field(default_factory=list)
    open_requests: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        """Under a legal hold or in an open request."""
        return bool(self.holds or self.open_requests)

    @property
    def stale(self) -> bool:
        """The cached series or date differs from what the schedules say now."""
        return self.stored_series != self.series_id or self.stored_date != self.disposition_date

    def due(self, now: datetime) -> bool:
        """The retention period has ended (hold and action not considered)."""
        return self.disposition_date is not None and self.disposition_date <= now

    def destroyable(self, now: datetime) -> bool:
        """May be destroyed now: due, unheld, not yet disposed, and its series' action is destroy."""
        return (self.status != "disposed" and self.series is not None and self.series.action == "destroy"
                and self.due(now) and not self.held)


def open_requests_of(s: Session, ids: list[str]) -> dict[str, list[str]]:
    """record id -> ids of the open requests that contain it (an implicit hold)."""
    out: dict[str, list[str]] = {}
    if not ids:
        return out
    # Anything but "closed" holds: an unknown status must never free a record for destruction.
    q = (select(RequestRecord.record_id, Request.id).join(Request, Request.id == RequestRecord.request_id)
         .where(RequestRecord.record_id.in_(ids), Request.status != "closed"))
    for rid, req in s.execute(q):
        out.setdefault(rid, []).append(str(req))
    return out


def _request_closed(s: Session, ids: list[str]) -> dict[str, datetime]:
    """record id -> latest closing time of the closed requests that contain it."""
    if not ids:
        return {}
    q = (select(RequestRecord.record_id, func.max(Request.closed_at))
         .join(Request, Request.id == RequestRecord.request_id)
         .where(RequestRecord.record_id.in_(ids), Request.status == "closed", Request.closed_at.is_not(None))
         .group_by(RequestRecord.record_id))
    return {rid: at for rid, at in s.execute(q) if at is not None}


def active_holds_of(s: Session, ids: list[str]) -> dict[str, list[str]]:
    """record id -> names of the unreleased holds on it."""
    out: dict[str, list[str]] = {}
    if not ids:
        return out
    q = (select(HoldRecord.record_id, Hold.name).join(Hold, Hold.id == HoldRecord.hold_id)
         .where(HoldRecord.record_id.in_(ids), Hold.released_at.is_(None)).order_by(Hold.name))
    for rid, name in s.execute(q):
        out.setdefault(rid, []).append(name)
    return out


def account_series(archive: Archive) -> dict[str, str]:
    """account name -> the series its config assigns (the default series when it names none).

    A series no schedule defines is a ConfigError naming the key (as harvest says), not records that
    quietly have no date: a recompute would otherwise clear every date of that account.
    """
    return {a.name: archive.series_for(a).id for a in archive.settings.accounts}


def assess(archive: Archive, s: Session, ids: Iterable[str] | None = None,
           include_disposed: bool = False) -> Iterator[Standing]:
    """The standing of the given records (default: every record not yet disposed), in batches."""
    schedules, by_account = archive.schedules, account_series(archive)
    if ids is not None:
        wanted = list(dict.fromkeys(ids))
        chunks: Iterable[list[str]] = (wanted[i:i + BATCH] for i in range(0, len(wanted), BATCH))
    else:
        q = select(Record.id).order_by(Record.id)
        if not include_disposed:
            q = q.where(Record.status != "disposed")
        everything = list(s.execute(q).scalars())
        chunks = (everything[i:i + BATCH] for i in range(0, len(everything), BATCH))
    for chunk in chunks:
        yield from _assess_chunk(s, chunk, schedules, by_account)


def _assess_chunk(s: Session, ids: list[str], schedules: Any, by_account: dict[str, str]) -> list[Standing]:
    rows = s.execute(select(Record, Account.name).join(Account, Account.id == Record.account_id)
                     .where(Record.id.in_(ids))).all()
    overrides = {r.record_id: r for r in s.execute(
        select(RecordRetention).where(RecordRetention.record_id.in_(ids))).scalars()}
    # Cross-checks: the first version's capture time and the latest removal event are written by
    # other code paths than the record row, so editing one column by hand does not make a record due.
    first_version = dict(s.execute(select(Version.record_id, func.min(Version.captured_at))
                                   .where(Version.record_id.in_(ids)).group_by(Version.record_id)).all())
    last_removed = dict(s.execute(select(Event.record_id, func.max(Event.at))
                                  .where(Event.record_id.in_(ids), Event.type == "removed")
                                  .group_by(Event.record_id)).all())
    closed = _request_closed(s, ids)
    holds = active_holds_of(s, ids)
    requests = open_requests_of(s, ids)
    out = []
    for rec, account in rows:
        ov = overrides.get(rec.id)
        sid = (ov.series if ov is not None and ov.series else None) or by_account.get(account) or rec.series
        series = schedules.get(sid) if sid else None
        captured = _latest(rec.first_captured_at, first_version.get(rec.id))
        removed = _latest(rec.removed_at, last_removed.get(rec.id)) if rec.removed_at is not None else None
        kw = dict(captured_at=captured, created_at=rec.created_at, removed_at=removed,
                  request_closed_at=closed.get(rec.id), case_closed_at=ov.case_closed_at if ov else None)
        trig = series.trigger_date(**kw) if series else None
        disp = series.disposition_date(**kw) if series else None
        out.append(Standing(rec.id, account, rec.status, sid, series, bool(ov and ov.series), trig, disp,
                            rec.series, rec.disposition_date, holds.get(rec.id, []), requests.get(rec.id, [])))
    return out


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    """The later of two times (either may be missing)."""
    if a is None or b is None:
        return a or b
    return max(a, b)
