"""Keeping the search index in step with the archive: catch-up after harvests, full rebuild, locking.

High-water mark: every change to a record appends an audit entry whose subject is the record id, and
audit ``seq`` is a global sequence committed in order (one DB writer at a time). ``catch_up`` reads
S = max(seq), re-indexes every record named by an entry in (hwm, S] from its current DB state (deleted
from the index if it is gone or disposed), commits the index, then stores hwm = S in ``archive_meta``
(key ``search_index_hwm``, with the id of the index it describes). A crash between the index commit and
the hwm write only means those records are indexed again next time (updates are idempotent).

Locking: every index change holds ``<index_dir>.lock`` (an OS file lock, released if the process dies),
taken with retries and backoff for up to ``LOCK_TIMEOUT`` seconds; DB state is read only once the lock
is held, so two writers can never put an older state over a newer one. A rebuild builds a fresh index
in a temporary directory beside ``index_dir`` without the lock, then, holding it, catches that index up
with what changed meanwhile and swaps the directories by rename.

The index directory holds ``archiver-index.json`` (schema version, index id, time zone); an index built
by another schema version or for another time zone, or one the high-water mark does not describe, is
rebuilt (with a warning saying why). Never call these functions inside an open ``db.write()``.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..archive import Archive
from ..db.models import Account, AuditEntry, Meta, Record, Version
from ..errors import ArchiverError
from .schema import SCHEMA_VERSION, RecordDoc, build_document, make_schema

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
MARKER = "archiver-index.json"
HWM_KEY = "search_index_hwm"
LOCK_TIMEOUT = 60.0
REBUILD_TIMEOUT = 4 * 3600.0
NO_INDEX = "there is no search index yet"
BATCH = 1000
WRITER_MB = 512  # posting buffer per indexing process before it spills sorted runs to disk


class IndexBusy(ArchiverError):
    """Another process held the search index lock for longer than the timeout."""


@contextmanager
def index_lock(index_dir: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the index's write lock; retry with backoff (and jitter) until ``timeout``."""
    from whoosh.util.filelock import FileLock

    index_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(index_dir.parent / f"{index_dir.name}.lock"))
    deadline, delay = time.monotonic() + timeout, 0.01
    while not lock.acquire(blocking=False):
        if time.monotonic() >= deadline:
            raise IndexBusy(f"the search index {index_dir} is locked by another process "
                            f"(waited {timeout:.0f} s); try again later")
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 1.0)
    try:
        yield
    finally:
        lock.release()


def _marker(d: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((d / MARKER).read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


def _tz(archive: Archive) -> ZoneInfo:
    return ZoneInfo(archive.settings.agency.timezone)


def _max_seq(s: Session) -> int:
    return int(s.execute(select(func.max(AuditEntry.seq))).scalar() or 0)


def read_hwm(archive: Archive) -> dict[str, Any]:
    """The stored high-water mark: {"index_id", "seq"} (empty if none)."""
    with archive.db.read() as s:
        raw = s.get(Meta, HWM_KEY)
        try:
            return json.loads(raw.value) if raw is not None else {}
        except ValueError:
            return {}


def _store_hwm(archive: Archive, index_id: str, seq: int) -> None:
    with archive.db.write() as s:
        row = s.get(Meta, HWM_KEY)
        value = json.dumps({"index_id": index_id, "seq": seq})
        if row is None:
            s.add(Meta(key=HWM_KEY, value=value))
        else:
            row.value = value


def _problem(archive: Archive, d: Path) -> tuple[str | None, dict[str, Any]]:
    """Why the index at d cannot be caught up incrementally (None if it can), and its marker."""
    mark = _marker(d)
    if mark is None:
        return NO_INDEX, {}
    if mark.get("schema") != SCHEMA_VERSION:
        return (f"the search index was built by schema version {mark.get('schema')}, this archiver uses "
                f"{SCHEMA_VERSION}"), mark
    if mark.get("timezone") != archive.settings.agency.timezone:
        return (f"the search index dates days in {mark.get('timezone')}, the agency time zone is now "
                f"{archive.settings.agency.timezone}"), mark
    if read_hwm(archive).get("index_id") != mark.get("index_id"):
        return "the database's search high-water mark belongs to another index (restored backup?)", mark
    return None, mark


def _open(d: Path) -> Any:
    from whoosh import index

    return index.open_dir(str(d))


def catch_up(archive: Archive, progress: Progress | None = None) -> int:
    """Index every record changed since the high-water mark (one writer); returns how many were indexed.

    Builds the index from scratch when there is none or it cannot be used (see the module docstring).
    """
    d = archive.settings.storage.index_dir
    why, n = _incremental(archive, d, progress)
    if why is None:
        return n
    # One rebuild at a time: whoever waited here finds the index rebuilt and only catches up.
    with index_lock(d.parent / f"{d.name}.rebuild", timeout=REBUILD_TIMEOUT):
        why, n = _incremental(archive, d, progress)
        if why is None:
            return n
        (log.info if why == NO_INDEX else log.warning)("search index %s: %s; building it from the archive", d, why)
        return rebuild(archive, progress)


def _incremental(archive: Archive, d: Path, progress: Progress | None) -> tuple[str | None, int]:
    """Catch the index up under the lock; (why it cannot be, 0) when it needs a rebuild."""
    with index_lock(d):
        why, mark = _problem(archive, d)
        if why is not None:
            return why, 0
        with archive.db.read() as s:
            top = _max_seq(s)
        hwm = int(read_hwm(archive).get("seq", 0))
        if top < hwm:
            return f"the database's audit log ends at {top}, before the index's mark {hwm} (restored backup?)", 0
        if top == hwm:
            return None, 0
        try:
            ix = _open(d)
        except Exception as exc:  # noqa: BLE001 - any unreadable index is rebuilt
            return f"the search index cannot be opened ({type(exc).__name__}: {exc})", 0
        n = _apply_changes(archive, ix, hwm, top, progress)
        _store_hwm(archive, mark["index_id"], top)
        return None, n


def catch_up_quietly(archive: Archive) -> int | None:
    """catch_up for callers that must not fail (harvests): logs a warning instead of raising."""
    try:
        return catch_up(archive)
    except Exception as exc:  # noqa: BLE001 - the index is derived; the next catch-up repairs it
        log.warning("search index not updated (the next harvest or search will catch up): %s", exc)
        return None


def purge_deleted(archive: Archive) -> int:
    """Rewrite the index segments that hold deleted documents; returns how many were rewritten.

    Whoosh's delete only marks a document: its terms and stored text stay in the segment files until
    the segment is merged. Disposition calls this after its catch-up so a destroyed record's words
    leave the disk, not just the results.
    """
    from whoosh.reading import SegmentReader

    d = archive.settings.storage.index_dir
    with index_lock(d):
        if _problem(archive, d)[0] is not None:
            return 0  # no usable index: the next catch-up rebuilds it from the (already tombstoned) DB
        rewritten = 0

        def merge_deleted(writer: Any, segments: list[Any]) -> list[Any]:
            nonlocal rewritten
            keep = []
            for seg in segments:
                if seg.has_deletions():
                    reader = SegmentReader(writer.storage, writer.schema, seg)
                    writer.add_reader(reader)  # copies only the live documents, in order
                    reader.close()
                    rewritten += 1
                else:
                    keep.append(seg)
            return keep

        writer = _open(d).writer(timeout=LOCK_TIMEOUT, compound=False)
        try:
            writer.commit(mergetype=merge_deleted)
        except BaseException:
            writer.cancel()
            raise
        return rewritten


def _changed_ids(s: Session, after: int, upto: int) -> list[str]:
    q = (select(AuditEntry.subject).where(AuditEntry.seq > after, AuditEntry.seq <= upto,
                                          AuditEntry.subject.like("rec\\_%", escape="\\")).distinct())
    return sorted(str(x) for x in s.execute(q).scalars())


def _apply_changes(archive: Archive, ix: Any, after: int, upto: int, progress: Progress | None) -> int:
    """Re-index the records named in audit entries (after, upto] into ix, in one writer."""
    with archive.db.read() as s:
        ids = _changed_ids(s, after, upto)
    if not ids:
        return 0
    tz = _tz(archive)
    writer = ix.writer(timeout=LOCK_TIMEOUT, compound=False)
    try:
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            with archive.db.read() as s:
                docs = {r.record_id: r for r in load_records(s, chunk)}
            for rid in chunk:
                doc = docs.get(rid)
                if doc is None:
                    writer.delete_by_term("record_id", rid)
                else:
                    writer.update_document(**build_document(doc, tz))
            if progress:
                progress(min(start + BATCH, len(ids)), len(ids))
        writer.commit()
    except BaseException:
        writer.cancel()
        raise
    return len(ids)


_COLS = (Record.id, Record.platform, Record.account_id, Record.kind, Record.status, Record.author, Record.created_at,
         Record.first_captured_at, Record.permalink)


def load_records(s: Session, ids: list[str]) -> list[RecordDoc]:
    """These records (the ones that exist and are not disposed) with their versions' texts and extras."""
    rows = s.execute(select(*_COLS).where(Record.id.in_(ids), Record.status != "disposed")).all()
    return _with_versions(s, rows, _accounts(s))


def iter_records(s: Session, batch: int = 2000) -> Iterator[list[RecordDoc]]:
    """Every record that is not disposed, oldest created first (so index order follows time), in batches."""
    accounts = _accounts(s)
    q = (select(*_COLS).where(Record.status != "disposed")
         .order_by(func.coalesce(Record.created_at, Record.first_captured_at), Record.id)
         .execution_options(yield_per=batch))
    for part in s.execute(q).partitions():
        yield _with_versions(s, part, accounts)


def _accounts(s: Session) -> dict[int, str]:
    return {i: n for i, n in s.execute(select(Account.id, Account.name))}


def _with_versions(s: Session, rows: Any, accounts: dict[int, str]) -> list[RecordDoc]:
    if not rows:
        return []
    texts: dict[str, list[str | None]] = {}
    extras: dict[str, list[str | None]] = {}
    vq = (select(Version.record_id, Version.text, Version.extra)
          .where(Version.record_id.in_([r[0] for r in rows])).order_by(Version.record_id, Version.seq))
    for rid, text, extra in s.execute(vq):
        texts.setdefault(rid, []).append(text)
        extras.setdefault(rid, []).append(extra)
    return [RecordDoc(r[0], r[1], accounts.get(r[2], ""), r[3], r[4], r[5], r[6], r[7], r[8],
                      texts.get(r[0], []), extras.get(r[0], [])) for r in rows]


def rebuild(archive: Archive, progress: Progress | None = None, *, procs: int | None = None) -> int:
    """Build a fresh index from the database beside index_dir and swap it in; returns records indexed."""
    from whoosh import index

    d = archive.settings.storage.index_dir
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}.rebuild-", dir=d.parent))
    index_id = uuid.uuid4().hex
    gc_was = gc.isenabled()
    try:
        with archive.db.read() as s:
            start_seq = _max_seq(s)
            total = int(s.execute(select(func.count()).select_from(Record)
                                  .where(Record.status != "disposed")).scalar() or 0)
        ix = index.create_in(str(tmp), make_schema())
        mark = {"schema": SCHEMA_VERSION, "index_id": index_id, "timezone": archive.settings.agency.timezone}
        (tmp / MARKER).write_text(json.dumps(mark), encoding="utf-8")
        if procs is None:  # worker processes are forked: not from a process that runs other threads
            alone = threading.active_count() == 1
            procs = min(2, os.cpu_count() or 1) if total >= 20_000 and alone else 1
        # Millions of small posting tuples make the cyclic GC's full passes dominate; none are cyclic.
        gc.disable()
        kw: dict[str, Any] = {"procs": procs, "multisegment": True} if procs > 1 else {}
        writer = ix.writer(limitmb=WRITER_MB, compound=False, **kw)
        done, tz = 0, _tz(archive)
        try:
            with archive.db.read() as s:
                for page in iter_records(s):
                    for rec in page:
                        writer.add_document(**build_document(rec, tz))
                    done += len(page)
                    if progress:
                        progress(done, max(total, done))
            writer.commit()
        except BaseException:
            _abort(writer)
            raise
        finally:
            if gc_was:
                gc.enable()
        # Each segment holds its documents in created order: searches sort them by document number.
        mark["ordered"] = [seg.segment_id() for seg in index.open_dir(str(tmp))._segments()]
        (tmp / MARKER).write_text(json.dumps(mark), encoding="utf-8")
        with index_lock(d):
            with archive.db.read() as s:
                top = _max_seq(s)
            if top > start_seq:
                _apply_changes(archive, _open(tmp), start_seq, top, None)
            _sweep(d)
            old = d.parent / f".{d.name}.old-{index_id}"
            if d.exists():
                os.rename(d, old)
            os.rename(tmp, d)
            _store_hwm(archive, index_id, top)
        shutil.rmtree(old, ignore_errors=True)
        return done
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _abort(writer: Any) -> None:
    """Cancel a writer; a multiprocess writer's workers are stopped too (they would wait forever)."""
    for task in getattr(writer, "tasks", ()):
        task.terminate()
        task.join()
    writer.cancel()


def _sweep(d: Path) -> None:
    """Remove what crashed rebuilds left beside the index (replaced indexes; builds a day old)."""
    for p in d.parent.glob(f".{d.name}.*-*"):
        stale = p.name.startswith(f".{d.name}.old-") or time.time() - p.stat().st_mtime > 86400
        if p.is_dir() and stale:
            shutil.rmtree(p, ignore_errors=True)
