"""Capture: turn what a connector saw into blobs, records, versions, events and audit entries.

One page of items is one transaction, so a harvest killed at any point leaves only whole pages behind
and the next run carries on from a consistent archive (DESIGN invariant 3).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from .audit import AuditLog
from .blobstore import BlobStore, sha256_hex
from .clock import Clock
from .connectors.base import Exchange, Item, Probe, Scope, WalkComplete, WalkFailed
from .db.bulk import BulkInsert, bulk_insert
from .db.engine import Database
from .db.models import Base, Blob, Capture, Event, Record, Version, table
from .db.types import dumps
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
        # The blobs (the response and the page's new item versions) are written and made durable on
        # worker threads, fed while the page is compared with the archive and the rows that name them
        # are inserted; the transaction commits only after every blob is durable (wait() below), so no
        # row ever names a blob that is not on disk. A blob written for a transaction that then fails is
        # left unreferenced, as a crash between the two would leave it: content-addressed, it is
        # harmless, and writing it again later is a no-op.
        writer = _BlobWriter(self.blobs, exchange.body)
        try:
            with self.db.write() as s:
                audit = AuditLog(s)
                plan = _PagePlan(sink=writer.add)
                if items:
                    self._plan_items(s, scope, items, now, plan)
                writer.close()
                capture_id = self._store_capture(s, audit, scope, exchange, now, sha=sha256_hex(exchange.body),
                                                 item_blobs=list(zip(plan.shas, plan.blobs, strict=True)))
                self._apply_plan(s, audit, plan, plan.shas, capture_id, now)
                audit.flush()
                writer.wait()
        finally:
            writer.abandon()
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
                       sha: str | None = None, item_blobs: Sequence[tuple[str, bytes]] = ()) -> int:
        """The capture row of one response, after the blob rows of the response and the page's new item
        versions, in one insert."""
        if sha is None:
            sha = self.blobs.put(ex.body)
        # An address already known is left as it is (write-once), except that bytes captured again after
        # disposition destroyed them are no longer destroyed: verify must check the new copy.
        blobs = bulk_insert(s, table(Blob), _BLOB_COLUMNS, ignore_conflict_on="sha256", clear_on_conflict="destroyed_at")
        stamp = blobs.bind_value("stored_at", now)
        rows = {sha: (sha, len(ex.body), "capture", stamp)}
        for h, b in item_blobs:
            rows.setdefault(h, (h, len(b), "item", stamp))
        blobs.execute(s, list(rows.values()), raw=("stored_at",))
        capture_id: int = s.execute(insert(table(Capture)).values(
            account_id=self.account_id, harvest_run_id=self.run_id, method=ex.method, url=ex.url,
            status=ex.status, headers=dumps(dict(ex.headers)), sha256=sha, size=len(ex.body),
            fetched_at=ex.fetched_at, secrets_redacted=ex.secrets_redacted, scope=scope.label()[:200],
        ).returning(table(Capture).c.id)).scalar_one()
        audit.append("capture.stored", f"capture:{capture_id}",
                     {"account": self.account_name, "url": ex.url, "status": ex.status, "sha256": sha,
                      "secrets_redacted": ex.secrets_redacted, "run": self.run_id}, SYSTEM_ACTOR, now)
        return capture_id

    def _plan_items(self, s: Session, scope: Scope, items: list[Item], now: datetime, plan: _PagePlan) -> None:
        """Compare the page's items, in order, with the archive: new, edited, hidden, unhidden, restored.

        An item may appear several times in one page (a history page holds every past state of one
        status; paging overlap repeats items): each occurrence is compared with the state left by the
        one before it.
        """
        nids = list(dict.fromkeys(it.native_id for it in items))
        existing = {r.native_id: r for r in s.execute(
            select(*_STATE_COLUMNS).where(Record.account_id == self.account_id, Record.native_id.in_(nids)))}
        known: dict[str, set[str]] = {}
        history_ids = [record_id(self.account_name, it.native_id) for it in items
                       if it.history and it.native_id in existing]
        if history_ids:
            for rid, fp in s.execute(select(Version.record_id, Version.fingerprint)
                                     .where(Version.record_id.in_(history_ids))):
                known.setdefault(rid, set()).add(fp)
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
                row = self._new_record_row(rid, scope, it, fp, now, plan)
                plan.new_records.append(row)
                states[rid] = _State(1, fp, row["hidden"], False, False, row, {fp}, {a: row[a] for a in _FILL_IN})
                plan.add_version(rid, it, 1, fp)
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
                    if st.new_row is None:
                        st.fills[attr] = val
            if it.history:
                if fp not in st.known:
                    st.seq += 1
                    st.fp = fp
                    st.known.add(fp)
                    plan.add_version(rid, it, st.seq, fp)
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
                plan.add_version(rid, it, st.seq, fp)
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
                if st.fills:
                    # Fields the archive did not know yet (a later harvest brought them): a change of
                    # state like any other, so it is audited (and the search index re-reads the record).
                    changed = {a: {"from": None, "to": _json_value(v)} for a, v in st.fills.items()}
                    if "parent_native_id" in st.fills:
                        changed["parent_id"] = {"from": None, "to": st.changes["parent_id"]}
                    plan.fill_ins.append((rid, changed))

    def _apply_plan(self, s: Session, audit: AuditLog, plan: _PagePlan, shas: list[str], capture_id: int,
                    now: datetime) -> None:
        # Records seen again: one executemany per set of changed columns (most share one set).
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for rid, changes in plan.updates:
            groups.setdefault(tuple(sorted(changes)), []).append(
                {"rid_": rid, **{f"{k}_": v for k, v in changes.items()}})
        records_table = table(Record)
        for cols, params in groups.items():
            s.execute(update(records_table).where(records_table.c.id == bindparam("rid_"))
                      .values({c: bindparam(f"{c}_") for c in cols}), params)
        if plan.new_records:
            records = _bulk(s, Record, _RECORD_COLUMNS)
            stamp = records.bind_value("first_captured_at", now)
            rows = []
            for r in plan.new_records:
                r["first_captured_at"] = r["last_seen_at"] = stamp  # the same instant, converted once
                rows.append(tuple(r[c] for c in _RECORD_COLUMNS))
            records.execute(s, rows, raw=("first_captured_at", "last_seen_at"))
        if plan.new_versions:
            versions = _bulk(s, Version, _VERSION_COLUMNS)
            stamp = versions.bind_value("captured_at", now)
            versions.execute(s, [
                (rid, seq, sha, fp, it.text, _dumps_mapping(it.content), _dumps_mapping(it.extra), it.edited_at,
                 stamp, capture_id, self.run_id)
                for (rid, it, seq, fp), sha in zip(plan.new_versions, shas, strict=True)
            ], raw=("captured_at",))
        if plan.events:
            self._write_events(s, audit, plan.events, capture_id, now,
                               {rid: sha for (rid, _, _, _), sha in zip(plan.new_versions, shas, strict=True)})
        for rid, changed in plan.fill_ins:
            audit.append("record.updated", rid, {"account": self.account_name, "run": self.run_id,
                                                 "capture": capture_id, "changes": changed}, SYSTEM_ACTOR, now)
            self.counts.changed_records.add(rid)
        self.counts.new_records += len(plan.new_records)
        self.counts.new_versions += sum(1 for _, _, seq, _ in plan.new_versions if seq > 1)

    def _new_record_row(self, rid: str, scope: Scope, it: Item, fp: str, now: datetime,
                        plan: _PagePlan) -> dict[str, Any]:
        thread = it.native_id if it.kind == "post" else (scope.post_native_id or it.parent_native_id)
        disp = None
        if self.series is not None:
            # The same for every item of the page created at the same time (captured_at is the page's).
            key = it.created_at
            if key in plan.disposition:
                disp = plan.disposition[key]
            else:
                disp = plan.disposition[key] = self.series.disposition_date(
                    captured_at=now, created_at=it.created_at, removed_at=None)
        parent_id = None
        if it.parent_native_id:
            parent_id = plan.parent_ids.get(it.parent_native_id)
            if parent_id is None:
                parent_id = plan.parent_ids[it.parent_native_id] = record_id(self.account_name, it.parent_native_id)
        return dict(
            id=rid, account_id=self.account_id, platform=self.platform, native_id=it.native_id, kind=it.kind,
            parent_id=parent_id,
            parent_native_id=it.parent_native_id, thread_native_id=thread, author=it.author,
            author_id=it.author_id, created_at=it.created_at, permalink=it.permalink,
            status=derive_status(it.hidden, False, 1), hidden=bool(it.hidden), removed_at=None,
            first_captured_at=now, last_seen_at=now, latest_seq=1, latest_fingerprint=fp,
            series=self.series.id if self.series else None, disposition_date=disp,
        )

    def _write_events(self, s: Session, audit: AuditLog, events: list[tuple[str, str, int | None]],
                      capture_id: int | None, now: datetime, version_sha: dict[str, str]) -> None:
        table_ = _bulk(s, Event, _EVENT_COLUMNS)
        stamp = table_.bind_value("at", now)
        run = self.run_id
        table_.execute(s, [(rid, typ, stamp, run, capture_id, seq) for rid, typ, seq in events], raw=("at",))
        # The details of every entry are {"account", "capture", "run"[, "seq", "sha256"]}: their canonical
        # JSON is built from one serialised head (dumps sorts the keys; "seq" and "sha256" sort after it).
        head = dumps({"account": self.account_name, "capture": capture_id, "run": run})[:-1]
        counts, changed = self.counts.events, self.counts.changed_records
        for rid, typ, seq in events:
            if seq is None:
                details = head + "}"
            else:
                sha = version_sha.get(rid)
                details = f'{head},"seq":{int(seq)!r},"sha256":{"null" if sha is None else _enc(sha)}}}'
            audit.append_json(_EVENT_ACTIONS[typ], rid, details, SYSTEM_ACTOR, now)
            counts[typ] += 1
            changed.add(rid)

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
    """Durable put_many calls on worker threads ("lanes"), fed blob by blob; wait() returns when every
    blob is durable, or re-raises what a write raised.

    Creating a file is kernel work that runs without the GIL, so two lanes write a page's blobs on two
    CPUs while the main thread inserts rows. Each lane's put_many makes its own batch durable (fsync,
    rename, fsync) before it returns; equal bytes always go to the same lane.
    """

    LANES = 2

    def __init__(self, store: BlobStore, first: bytes):
        self._store = store
        self._errors: list[BaseException] = []
        self._lanes: list[tuple[queue.SimpleQueue[bytes | None], threading.Thread] | None] = [None] * self.LANES
        self._closed = False
        self.add(first)

    def add(self, data: bytes) -> None:
        """Queue one more blob (a lane's thread starts with its first blob)."""
        if self._closed:
            raise RuntimeError("blob writer already closed")
        i = hash(data) % len(self._lanes)
        lane = self._lanes[i]
        if lane is None:
            q: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
            t = threading.Thread(target=self._run, args=(q,), name="blob-writer", daemon=True)
            lane = self._lanes[i] = (q, t)
            t.start()
        lane[0].put(data)

    def _run(self, q: queue.SimpleQueue[bytes | None]) -> None:
        def blobs() -> Iterator[bytes]:
            while (data := q.get()) is not None:
                yield data

        try:
            self._store.put_many(blobs())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            self._errors.append(exc)

    def close(self) -> None:
        """No more blobs: each lane's put_many makes its batch durable and returns."""
        if not self._closed:
            self._closed = True
            for lane in self._lanes:
                if lane is not None:
                    lane[0].put(None)

    def wait(self) -> None:
        """Block until every blob is durable; raise what a write raised."""
        self.abandon()
        if self._errors:
            raise self._errors[0]

    def abandon(self) -> None:
        """Close and let the lanes finish (after an error elsewhere, what they wrote is harmless)."""
        self.close()
        for lane in self._lanes:
            if lane is not None:
                lane[1].join()


_FILL_IN = ("author", "author_id", "permalink", "created_at", "parent_native_id")
# What comparing an item with its record needs to know about the record.
_STATE_COLUMNS = (Record.native_id, Record.latest_seq, Record.latest_fingerprint, Record.hidden, Record.removed_at,
                  Record.status, *(getattr(Record, a) for a in _FILL_IN))
_EVENT_ACTIONS = {typ: f"record.{typ}" for typ in EVENT_TYPES}
_enc = json.encoder.encode_basestring  # json.dumps's own escaping of a str (ensure_ascii=False)
_BLOB_COLUMNS = ("sha256", "size", "kind", "stored_at")
_RECORD_COLUMNS = (
    "id", "account_id", "platform", "native_id", "kind", "parent_id", "parent_native_id", "thread_native_id",
    "author", "author_id", "created_at", "permalink", "status", "hidden", "removed_at", "first_captured_at",
    "last_seen_at", "latest_seq", "latest_fingerprint", "series", "disposition_date",
)
_VERSION_COLUMNS = ("record_id", "seq", "sha256", "fingerprint", "text", "content", "extra", "edited_at",
                    "captured_at", "capture_id", "harvest_run_id")
_EVENT_COLUMNS = ("record_id", "type", "at", "harvest_run_id", "capture_id", "version_seq")


def _bulk(s: Session, model: type[Base], columns: tuple[str, ...]) -> BulkInsert:
    return bulk_insert(s, table(model), columns)


def _dumps_mapping(value: Any) -> str:
    """dumps(dict(value)); an empty mapping (most items' extra fields) is "{}" without the encoder."""
    return dumps(dict(value)) if value else "{}"


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
    fills: dict[str, Any] = field(default_factory=dict)  # fields an existing record gains in this page


@dataclass
class _PagePlan:
    """What one page changes, decided before anything is written."""

    new_records: list[dict[str, Any]] = field(default_factory=list)
    new_versions: list[tuple[str, Item, int, str]] = field(default_factory=list)  # record, item, seq, fingerprint
    blobs: list[bytes] = field(default_factory=list)  # the stored form of each new version's raw item
    shas: list[str] = field(default_factory=list)  # and its address
    sink: Callable[[bytes], None] | None = None  # gets each new version's blob as soon as it is known
    parent_ids: dict[str, str] = field(default_factory=dict)  # parent native id -> record id
    disposition: dict[datetime | None, datetime | None] = field(default_factory=dict)  # created_at -> date

    def add_version(self, rid: str, it: Item, seq: int, fp: str) -> None:
        """A new version of record rid: its row comes later, its blob goes to the sink now."""
        data = canonical_item_bytes(it.raw)
        self.new_versions.append((rid, it, seq, fp))
        self.blobs.append(data)
        self.shas.append(sha256_hex(data))
        if self.sink is not None:
            self.sink(data)
    updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    events: list[tuple[str, str, int | None]] = field(default_factory=list)  # record, type, version seq
    fill_ins: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # record, {field: {from, to}}


def _json_value(value: Any) -> Any:
    """A filled-in field's value as the audit entry records it (times as ISO-8601 UTC)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def _key(scope: Scope) -> tuple[str, str | None]:
    return (scope.kind, scope.post_native_id)

