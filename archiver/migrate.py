"""Copy a whole archive to other storage (e.g. SQLite + local blobs -> PostgreSQL + S3) and verify it there.

Order matters for a copy that can fail half-way: blobs first (write-once and content-addressed, so a
retried copy simply finds them), then every table in one destination transaction (all or nothing),
then an audit entry saying the archive moved, then a full verify of the destination: every blob's hash
and the whole audit chain, which continues unbroken because entries are copied with their hashes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, inspect, select, text
from sqlalchemy.engine import Connection, make_url

from .archive import Archive
from .audit import AuditLog, default_actor
from .blob_holds import sync_store_locks
from .blobstore import BlobStore, open_blobstore
from .db.engine import Database
from .db.models import Base, Blob, Record
from .eligibility import account_series
from .errors import ArchiverError
from .verify import verify_archive

BATCH_ROWS = 1000
BATCH_BLOB_BYTES = 16 * 1024 * 1024
BATCH_BLOBS = 64
SKIP_TABLES = {"scheduler_jobs", "alembic_version"}  # APScheduler's own table; Alembic's bookkeeping

Progress = Callable[[str], None]


class DestinationNotEmpty(ArchiverError):
    """migrate-storage only fills an empty destination."""


@dataclass
class MigrationSummary:
    """What was copied and what the destination's verify found."""

    records: int = 0
    blobs: int = 0
    audit_entries: int = 0
    audit_ok: bool = False
    blobs_bad: list[dict[str, str]] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    database_url: str = ""
    blobs_location: str = ""
    locks: dict[str, Any] = field(default_factory=lambda: {"records_dated": 0, "blobs_flagged": 0, "errors": []})

    @property
    def ok(self) -> bool:
        """True when the destination verified clean."""
        return self.audit_ok and not self.blobs_bad

    def to_json(self) -> dict[str, Any]:
        """The `migrate-storage --json` document."""
        return {"records": self.records, "blobs": self.blobs, "audit_entries": self.audit_entries,
                "audit_ok": self.audit_ok, "blobs_bad": self.blobs_bad, "tables": self.tables,
                "database_url": self.database_url, "blobs_location": self.blobs_location, "locks": self.locks,
                "ok": self.ok}


def safe_url(url: str) -> str:
    """A database URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can parse: show it as given
        return url


def copied_tables(engine_conn: Connection) -> list[Table]:
    """Every archive table (foreign-key order) that the source database has."""
    present = set(inspect(engine_conn).get_table_names())
    return [t for t in Base.metadata.sorted_tables if t.name in present and t.name not in SKIP_TABLES]


def migrate_storage(source: Archive, to_database_url: str, to_blobs: str, *,
                    to_s3_endpoint_url: str | None = None, progress: Progress | None = None,
                    actor: str | None = None) -> MigrationSummary:
    """Copy ``source`` to the database and blob store named, then verify the copy (see module doc)."""
    say = progress or (lambda _msg: None)
    storage = replace(source.settings.storage, database_url=to_database_url, blobs=to_blobs,
                      s3_endpoint_url=to_s3_endpoint_url or source.settings.storage.s3_endpoint_url)
    dest_db = Database(to_database_url)
    dest_blobs = open_blobstore(storage)
    dest = Archive(replace(source.settings, storage=storage), clock=source.clock, registry=source.registry,
                   db=dest_db, blobs=dest_blobs)
    try:
        summary = MigrationSummary(database_url=safe_url(to_database_url), blobs_location=dest_blobs.location)
        _refuse_unless_empty(source, dest_db, dest_blobs)
        rev = dest.init()  # directories / bucket check, and the schema through Alembic migrations
        say(f"destination ready: {summary.database_url} (schema {rev}), blobs {dest_blobs.location}"
            + (f" ({dest.blob_store_note})" if dest.blob_store_note else ""))
        if dest_blobs.enforces_locks():
            account_series(dest)  # a series no schedule defines fails here, before anything is copied
        summary.blobs = _copy_blobs(source, dest_blobs, say)
        summary.tables = _copy_tables(source.db, dest_db, say)
        summary.records = summary.tables.get(Record.__tablename__, 0)
        # The copies were put with the store's minimum lock only: an Object Lock bucket now gets each
        # record's disposition date and the legal-hold flags of held and requested records.
        summary.locks = sync_store_locks(dest)
        if summary.locks["records_dated"] or summary.locks["blobs_flagged"]:
            say(f"object lock: retention set for {summary.locks['records_dated']} records' blobs, "
                f"{summary.locks['blobs_flagged']} blobs under legal hold")
        with dest_db.write() as s:
            audit = AuditLog(s)
            audit.append("archive.migrated", None, {
                "from_database": safe_url(source.settings.storage.database_url),
                "from_blobs": source.blobs.location, "to_database": summary.database_url,
                "to_blobs": dest_blobs.location, "rows": summary.tables, "blobs": summary.blobs,
                "locks": {k: v for k, v in summary.locks.items() if k != "errors"},
            }, actor or default_actor(), source.clock.now())
            audit.flush()
        say("verifying the destination: every blob hash and the audit chain")
        rep = verify_archive(dest, progress=lambda done, total: say(f"verified {done}/{total} blobs"))
        summary.audit_entries, summary.audit_ok, summary.blobs_bad = rep.audit_entries, rep.audit_ok, rep.blobs_bad
        return summary
    finally:
        dest.close()


def _refuse_unless_empty(source: Archive, dest_db: Database, dest_blobs: BlobStore) -> None:
    if source.settings.storage.database_url == dest_db.url:
        raise DestinationNotEmpty("the destination database is the source database")
    if dest_db.sqlite_path is None or dest_db.sqlite_path.exists():
        with dest_db.engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
            for t in Base.metadata.sorted_tables:
                if t.name in present and conn.execute(select(func.count()).select_from(t)).scalar_one():
                    raise DestinationNotEmpty(f"the destination database is not empty (table {t.name} has rows): "
                                              "migrate-storage only fills a new, empty archive")
    # A blob the source does not name means the store belongs to another archive; blobs the source
    # does name are left over from an interrupted copy, and are simply found again.
    with source.db.read() as s:
        known = set(s.execute(select(Blob.sha256)).scalars())
    for sha in dest_blobs.iterate():
        if sha not in known:
            raise DestinationNotEmpty(f"the destination blob store {dest_blobs.location} holds blobs of another "
                                      f"archive (e.g. {sha}): use an empty directory, bucket or prefix")


def _copy_blobs(source: Archive, dest: BlobStore, say: Progress) -> int:
    """Every blob the source names (destroyed ones excepted), hash-checked as read, in batches."""
    with source.db.read() as s:
        shas = list(s.execute(select(Blob.sha256).where(Blob.destroyed_at.is_(None)).order_by(Blob.sha256))
                    .scalars())
    done = 0
    for batch in _blob_batches(source.blobs, shas):
        stored = dest.put_many(batch)
        done += len(stored)
        say(f"copied {done}/{len(shas)} blobs")
    return done


def _blob_batches(store: BlobStore, shas: list[str]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    size = 0
    for sha in shas:
        data = store.get(sha)  # BlobCorrupt / BlobMissing stop the copy: never carry damage across
        batch.append(data)
        size += len(data)
        if len(batch) >= BATCH_BLOBS or size >= BATCH_BLOB_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _copy_tables(src: Database, dest: Database, say: Progress) -> dict[str, int]:
    """Every table, parents before children, in one destination transaction; PostgreSQL sequences reset."""
    counts: dict[str, int] = {}
    with src.engine.connect() as sconn, dest.engine.begin() as dconn:
        for table in copied_tables(sconn):
            order = list(table.primary_key.columns) or list(table.columns)
            rows = sconn.execute(select(table).order_by(*order).execution_options(yield_per=BATCH_ROWS))
            n = 0
            for part in rows.mappings().partitions(BATCH_ROWS):
                dconn.execute(table.insert(), [dict(r) for r in part])
                n += len(part)
            counts[table.name] = n
            say(f"copied table {table.name}: {n} rows")
        if dconn.dialect.name == "postgresql":
            _reset_sequences(dconn, list(counts))
    return counts


def _reset_sequences(conn: Connection, tables: list[str]) -> None:
    """After explicit ids were inserted, make each serial column's next value follow the highest id."""
    for name in tables:
        for col in inspect(conn).get_pk_constraint(name)["constrained_columns"]:
            seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": name, "c": col}).scalar()
            if seq:
                conn.execute(text(f'SELECT setval(:s, COALESCE((SELECT MAX("{col}") FROM "{name}"), 0) + 1, false)'),
                             {"s": seq})


def resolve_blobs_target(value: str) -> str:
    """A local destination given on the command line is relative to the current directory."""
    return value if value.startswith("s3://") else str(Path(value).expanduser().resolve())
