"""Capture: turn what a connector saw into blobs, records, versions, events and audit entries.

One page of items is one transaction, so a harvest killed at any point leaves only whole pages behind
and the next run carries on from a consistent archive (DESIGN invariant 3).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .audit import AuditLog
from .blobstore import BlobStore, sha256_hex
from .clock import Clock
from .connectors.base import Exchange, Item, Probe, Scope, WalkComplete, WalkFailed
from .db.engine import Database
from .db.models import Blob, Capture, Event, Record, Version, table
from .db.types import dumps
from .dbwrite import insert_ignore
from .ids import record_id
from .retention import Series

log = logging.getLogger(__name__)
SYSTEM_ACTOR = "archiver"
EVENT_TYPES = ("captured", "edited", "hidden", "unhidden", "removed", "restored")


def canonical_item_bytes(raw: Any) -> bytes:
    """The stored form of a raw item: canonical JSON, UTF-8 (ASCII-escaped if it holds lone surrogates)."""
    text = json.dumps(raw, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(raw, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def derive_status(hidden: bool, removed: bool, versions: int) -> str:
    """The one status a record shows: removed, then hidden, then edited, else live."""
    if removed:
        return "removed"
    if hidden:
        return "hidden"
    return "edited" if versions > 1 else "live"


@dataclass
class CaptureCounts:
    """What one harvest did to the archive."""

    pages: int = 0
    items_seen: int = 0
    new_records: int = 0
    new_versions: int = 0
    events: Counter[str] = field(default_factory=Counter)
    changed_records: set[str] = field(default_factory=set)


class CaptureSession:
    """Stores one harvest's pages for one account and concludes removals after complete walks."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        clock: Clock,
        *,
        account_id: int,
        account_name: str,
        platform: str,
        run_id: int | None,
        series: Series | None,
        can_detect_removal: bool = True,
    ):
        self.db, self.blobs, self.clock = db, blobs, clock
        self.account_id, self.account_name, self.platform = account_id, account_name, platform
        self.run_id, self.series = run_id, series
        self.can_detect_removal = can_detect_removal
        self.counts = CaptureCounts()
        self.failed_scopes: list[tuple[Scope, str]] = []
        self._seen: dict[tuple[str, str | None], set[str]] = {}

    # --- pages --------------------------------------------------------------------------------
    def store_page(self, scope: Scope, exchange: Exchange, items: Iterable[Item]) -> None:
        """Store one response and its items atomically."""
        items = list(items)
        now = self.clock.now()
        seen = self._seen.setdefault(_key(scope), set())
        with self.db.write() as s:
            audit = AuditLog(s)
            plan = self._plan_items(s, scope, items, now) if items else _PagePlan()
            blob_bytes = [canonical_item_bytes(it.raw) for _, it, _, _ in plan.new_versions]
            # The blobs (the response and the new item versions) are written and made durable on a
            # worker thread while the rows that name them are inserted; the transaction commits only
            # after the blobs are durable, so no row ever names a blob that is not on disk.
            writer = _BlobWriter(self.blobs, [exchange.body, *blob_bytes])
            shas = [sha256_hex(b) for b in (exchange.body, *blob_bytes)]
            capture_id = self._store_capture(s, audit, scope, exchange, now, sha=shas[0])
            self._apply_plan(s, audit, plan, blob_bytes, shas[1:], capture_id, now)
            audit.flush()
            writer.wait()
        seen.update(i.native_id for i in items)
        self.counts.pages += 1
        self.counts.items_seen += len(items)

    def store_failure(self, failed: WalkFailed) -> None:
        """Keep the evidence of a failed walk (the response, if any) and remember the scope failed."""
        self.failed_scopes.append((failed.scope, failed.error))
        if failed.exchange is not None:
            with self.db.write() as s:
                audit = AuditLog(s)
                self._store_capture(s, audit, failed.scope, failed.exchange, self.clock.now())
                audit.flush()

    def _store_capture(self, s: Session, audit: AuditLog, scope: Scope, ex: Exchange, now: datetime,
                       sha: str | None = None) -> int:
        if sha is None:
            sha = self.blobs.put(ex.body)
        insert_ignore(s, table(Blob), [dict(sha256=sha, size=len(ex.body), kind="capture",
                                               stored_at=now)], "sha256")
        cap = Capture(account_id=self.account_id, harvest_run_id=self.run_id, method=ex.method, url=ex.url,
                      status=ex.status, headers=dumps(dict(ex.headers)), sha256=sha, size=len(ex.body),
                      fetched_at=ex.fetched_at, secrets_redacted=ex.secrets_redacted, scope=scope.label()[:200])
        s.add(cap)
        s.flush()
        audit.append("capture.stored", f"capture:{cap.id}",
                     {"account": self.account_name, "url": ex.url, "status": ex.status, "sha256": sha,
                      "secrets_redacted": ex.secrets_redacted, "run": self.run_id}, SYSTEM_ACTOR, now)
        return cap.id

    def _plan_items(self, s: Session, scope: Scope, items: list[Item], now: datetime) -> _PagePlan:
        """Compare the page's items, in order, with the archive: new, edited, hidden, unhidden, restored.

        An item may appear several times in one page (a history page holds every past state of one
        status; paging overlap repeats items): each occurrence is compared with the state left by the
        one before it.
        """
        nids = list(dict.fromkeys(it.native_id for it in items))
        existing = {r.native_id: r for r in s.execute(
            select(Record).where(Record.account_id == self.account_id, Record.native_id.in_(nids))
        ).scalars()}
        known: dict[str, set[str]] = {}
        history_ids = [record_id(self.account_name, it.native_id) for it in items
                       if it.history and it.native_id in existing]
        if history_ids:
            for rid, fp in s.execute(select(Version.record_id, Version.fingerprint)
                                     .where(Version.record_id.in_(history_ids))):
                known.setdefault(rid, set()).add(fp)
        plan = _PagePlan()
        states: dict[str, _State] = {}
        for it in items:
            rid = record_id(self.account_name, it.native_id)
            fp = it.fingerprint()
            st = states.get(rid)
            if st is None and (rec := existing.get(it.native_id)) is not None:
                st = states[rid] = _State(rec.latest_seq, rec.latest_fingerprint, bool(rec.hidden),
                                          rec.removed_at is not None, rec.status == "disposed", None,
                                          known.get(rid, {rec.latest_fingerprint}),
                                          {a: getattr(rec, a) for a in _FILL_IN})
            if st is None:
                row = self._new_record_row(rid, scope, it, fp, now)
                plan.new_records.append(row)
                states[rid] = _State(1, fp, row["hidden"], False, False, row, {fp}, {a: row[a] for a in _FILL_IN})
                plan.new_versions.append((rid, it, 1, fp))
                plan.events.append((rid, "captured", 1))
                if row["hidden"]:
                    plan.events.append((rid, "hidden", None))
                continue
            if st.disposed:
                continue  # a destroyed record is not re-captured under the same id
            st.changes["last_seen_at"] = now
            for attr in _FILL_IN:
                val = getattr(it, attr)
                if val is not None and st.filled[attr] is None:
                    st.filled[attr] = st.changes[attr] = val
            if it.history:
                if fp not in st.known:
                    st.seq += 1
                    st.fp = fp
                    st.known.add(fp)
                    plan.new_versions.append((rid, it, st.seq, fp))
                    plan.events.append((rid, "edited", st.seq))
                continue
            if st.removed:
                st.removed = False
                st.changes["removed_at"] = None
                plan.events.append((rid, "restored", None))
                if self.series is not None and self.series.trigger == "removal":
                    st.changes["disposition_date"] = None
            if fp != st.fp:
                st.seq += 1
                st.fp = fp
                st.known.add(fp)
                plan.new_versions.append((rid, it, st.seq, fp))
                plan.events.append((rid, "edited", st.seq))
            if bool(it.hidden) != st.hidden:
                st.hidden = bool(it.hidden)
                plan.events.append((rid, "hidden" if it.hidden else "unhidden", None))
        for rid, st in states.items():
            if st.disposed:
                continue
            values = {"latest_seq": st.seq, "latest_fingerprint": st.fp, "hidden": st.hidden,
                      "status": derive_status(st.hidden, st.removed, st.seq)}
            if st.changes.get("parent_native_id"):
                st.changes["parent_id"] = record_id(self.account_name, st.changes["parent_native_id"])
            if st.new_row is not None:
                st.new_row.update(values, **{k: v for k, v in st.changes.items()
                                             if k in _FILL_IN or k == "parent_id"})
            else:
                plan.updates.append((rid, {**st.changes, **values}))
        return plan

    def _apply_plan(self, s: Session, audit: AuditLog, plan: _PagePlan, blob_bytes: list[bytes],
                    shas: list[str], capture_id: int, now: datetime) -> None:
        insert_ignore(s, table(Blob), [dict(sha256=h, size=len(b), kind="item", stored_at=now)
                                          for h, b in zip(shas, blob_bytes, strict=True)], "sha256")
        for rid, changes in plan.updates:
            s.execute(update(Record).where(Record.id == rid).values(**changes))
        if plan.new_records:
            s.execute(table(Record).insert(), plan.new_records)
        if plan.new_versions:
            s.execute(table(Version).insert(), [
                dict(record_id=rid, seq=seq, sha256=sha, fingerprint=fp, text=it.text,
                     content=dumps(dict(it.content)), extra=dumps(dict(it.extra)), edited_at=it.edited_at,
                     captured_at=now, capture_id=capture_id, harvest_run_id=self.run_id)
                for (rid, it, seq, fp), sha in zip(plan.new_versions, shas, strict=True)
            ])
        if plan.events:
            self._write_events(s, audit, plan.events, capture_id, now,
                               {rid: sha for (rid, _, _, _), sha in zip(plan.new_versions, shas, strict=True)})
        self.counts.new_records += len(plan.new_records)
        self.counts.new_versions += sum(1 for _, _, seq, _ in plan.new_versions if seq > 1)

    def _new_record_row(self, rid: str, scope: Scope, it: Item, fp: str, now: datetime) -> dict[str, Any]:
        thread = it.native_id if it.kind == "post" else (scope.post_native_id or it.parent_native_id)
        disp = None
        if self.series is not None:
            disp = self.series.disposition_date(captured_at=now, created_at=it.created_at, removed_at=None)
        return dict(
            id=rid, account_id=self.account_id, platform=self.platform, native_id=it.native_id, kind=it.kind,
            parent_id=record_id(self.account_name, it.parent_native_id) if it.parent_native_id else None,
            parent_native_id=it.parent_native_id, thread_native_id=thread, author=it.author,
            author_id=it.author_id, created_at=it.created_at, permalink=it.permalink,
            status=derive_status(it.hidden, False, 1), hidden=bool(it.hidden), removed_at=None,
            first_captured_at=now, last_seen_at=now, latest_seq=1, latest_fingerprint=fp,
            series=self.series.id if self.series else None, disposition_date=disp,
        )

    def _write_events(self, s: Session, audit: AuditLog, events: list[tuple[str, str, int | None]],
                      capture_id: int | None, now: datetime, version_sha: dict[str, str]) -> None:
        s.execute(table(Event).insert(), [
            dict(record_id=rid, type=typ, at=now, harvest_run_id=self.run_id, capture_id=capture_id,
                 version_seq=seq) for rid, typ, seq in events
        ])
        for rid, typ, seq in events:
            details: dict[str, Any] = {"account": self.account_name, "run": self.run_id, "capture": capture_id}
            if seq is not None:
                details.update(seq=seq, sha256=version_sha.get(rid))
            audit.append(f"record.{typ}", rid, details, SYSTEM_ACTOR, now)
            self.counts.events[typ] += 1
            self.counts.changed_records.add(rid)

    # --- removal ------------------------------------------------------------------------------
    def conclude(self, done: WalkComplete, probe: Callable[[str, str], Probe]) -> None:
        """After a complete walk, mark captured items that were not seen (and are confirmed gone) removed."""
        if not self.can_detect_removal:
            return
        scope = done.scope
        seen = self._seen.get(_key(scope), set())
        with self.db.read() as s:
            q = select(Record.native_id, Record.kind).where(
                Record.account_id == self.account_id, Record.removed_at.is_(None),
                Record.status != "disposed")
            if scope.kind == "feed":
                q = q.where(Record.kind == "post")
                if scope.since is not None:
                    q = q.where(Record.created_at >= scope.since)
            else:
                q = q.where(Record.thread_native_id == scope.post_native_id, Record.kind != "post")
            missing = [(nid, kind) for nid, kind in s.execute(q) if nid not in seen]
        for nid, kind in sorted(missing):
            result = probe(kind, nid)
            if not result.gone:
                log.info("%s: %s %s missing from the walk but still on the platform", self.account_name, kind, nid)
                continue
            self._mark_removed(scope, nid, kind, result)

    def _mark_removed(self, scope: Scope, nid: str, kind: str, result: Probe) -> None:
        now = self.clock.now()
        with self.db.write() as s:
            audit = AuditLog(s)
            capture_id = None
            if result.exchange is not None:
                capture_id = self._store_capture(s, audit, scope, result.exchange, now)
            targets = [record_id(self.account_name, nid)]
            if kind == "post":
                # The thread under a removed post went with it.
                targets += list(s.execute(select(Record.id).where(
                    Record.account_id == self.account_id, Record.thread_native_id == nid,
                    Record.kind != "post", Record.removed_at.is_(None), Record.status != "disposed")).scalars())
            for rid in targets:
                values: dict[str, Any] = {"removed_at": now, "status": "removed"}
                if self.series is not None and self.series.trigger == "removal":
                    values["disposition_date"] = self.series.disposition_date(
                        captured_at=None, created_at=None, removed_at=now)
                s.execute(update(Record).where(Record.id == rid).values(**values))
            self._write_events(s, audit, [(rid, "removed", None) for rid in targets], capture_id, now, {})
            audit.flush()


class _BlobWriter:
    """Runs one durable put_many on a thread; wait() returns when done or re-raises its error."""

    def __init__(self, store: BlobStore, blobs: list[bytes]):
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(store, blobs), name="blob-writer", daemon=True)
        self._thread.start()

    def _run(self, store: BlobStore, blobs: list[bytes]) -> None:
        try:
            store.put_many(blobs)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            self._error = exc

    def wait(self) -> None:
        """Block until the blobs are durable; raise what the write raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error


_FILL_IN = ("author", "author_id", "permalink", "created_at", "parent_native_id")


@dataclass
class _State:
    """A record's state while one page is being compared with it."""

    seq: int
    fp: str
    hidden: bool
    removed: bool
    disposed: bool
    new_row: dict[str, Any] | None
    known: set[str]
    filled: dict[str, Any]
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass
class _PagePlan:
    """What one page changes, decided before anything is written."""

    new_records: list[dict[str, Any]] = field(default_factory=list)
    new_versions: list[tuple[str, Item, int, str]] = field(default_factory=list)  # record, item, seq, fingerprint
    updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    events: list[tuple[str, str, int | None]] = field(default_factory=list)  # record, type, version seq


def _key(scope: Scope) -> tuple[str, str | None]:
    return (scope.kind, scope.post_native_id)

