"""Capture throughput: the archive path (blobs + DB + audit) against plain SQLite inserts of the same rows.

Items are fed from memory (no network), 100 per page as a Graph API page would bring them; each page is
one transaction in both paths. Run: `make bench` or `python -m bench.capture --items 100000`.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from archiver.archive import Archive
from archiver.capture import CaptureSession
from archiver.config import AccountConfig, settings_from_dict
from archiver.connectors.base import Exchange, Item, Scope
from archiver.harvest import ensure_account
from archiver.ids import record_id

WORDS = ("officer traffic crash Main St. closed reopened thanks community safety patrol school zone "
         "speeding neighbors please share missing found dog park festival parade detour").split()


def make_pages(n_items: int, per_page: int = 100) -> list[tuple[Scope, Exchange, list[Item]]]:
    """Deterministic comments on 1 post per 500 comments, in Graph API-shaped pages."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    pages = []
    for start in range(0, n_items, per_page):
        post = f"104729_{start // 500}"
        items = []
        for i in range(start, min(start + per_page, n_items)):
            text = " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(12 + i % 20))
            created = t0 + timedelta(minutes=i)
            raw = {"id": f"{start // 500}_{i}", "message": text, "created_time": created.strftime("%Y-%m-%dT%H:%M:%S+0000"),
                   "from": {"id": f"u{i % 977}", "name": f"Resident {i % 977}"}, "is_hidden": False,
                   "like_count": i % 13, "comment_count": 0, "permalink_url": f"https://facebook.example/{i}"}
            items.append(Item(native_id=raw["id"], kind="comment", raw=raw, parent_native_id=post, text=text,
                              author=raw["from"]["name"], author_id=raw["from"]["id"], created_at=created,
                              permalink=raw["permalink_url"]))
        body = json.dumps({"data": [it.raw for it in items], "paging": {"cursors": {"after": "x"}}}).encode()
        ex = Exchange("GET", f"https://graph.example/{post}/comments", 200, {}, body, t0)
        pages.append((Scope("thread", post_native_id=post), ex, items))
    return pages


def bench_archive(pages: list, root: Path) -> float:
    """Seconds to capture every page through the real archive path."""
    settings = settings_from_dict({"storage": {"database_url": f"sqlite:///{root}/archive.db", "blobs": "blobs"}},
                                  root / "archiver.toml")
    with Archive(settings) as arch:
        arch.init()
        acc = AccountConfig(name="bench", connector="facebook")
        aid = ensure_account(arch, acc)
        cs = CaptureSession(arch.db, arch.blobs, arch.clock, account_id=aid, account_name="bench",
                            platform="facebook", run_id=None, series=arch.series_for(acc))
        t = time.perf_counter()
        for scope, ex, items in pages:
            cs.store_page(scope, ex, items)
        return time.perf_counter() - t


def bench_plain(pages: list, root: Path) -> float:
    """Seconds to insert the same rows the archive writes (record, version, event, audit entry and blob
    row per item; capture and blob row per page) with plain sqlite3 executemany, one commit per page."""
    con = sqlite3.connect(root / "plain.db", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript("""
        CREATE TABLE records (id TEXT PRIMARY KEY, account_id INT, platform TEXT, native_id TEXT, kind TEXT,
                              parent_id TEXT, parent_native_id TEXT, thread_native_id TEXT, author TEXT,
                              author_id TEXT, created_at TEXT, permalink TEXT, status TEXT, hidden INT,
                              first_captured_at TEXT, last_seen_at TEXT, latest_seq INT, latest_fingerprint TEXT,
                              series TEXT, disposition_date TEXT, UNIQUE(account_id, native_id));
        CREATE TABLE versions (id INTEGER PRIMARY KEY, record_id TEXT, seq INT, sha256 TEXT, fingerprint TEXT,
                               text TEXT, content TEXT, extra TEXT, captured_at TEXT, capture_id INT,
                               UNIQUE(record_id, seq));
        CREATE TABLE events (id INTEGER PRIMARY KEY, record_id TEXT, type TEXT, at TEXT, capture_id INT);
        CREATE INDEX ix_events_record ON events(record_id);
        CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, at TEXT, actor TEXT, action TEXT, subject TEXT,
                                details TEXT, prev_hash TEXT, entry_hash TEXT);
        CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, size INT, kind TEXT, stored_at TEXT);
        CREATE TABLE captures (id INTEGER PRIMARY KEY, url TEXT, status INT, headers TEXT, sha256 TEXT,
                               size INT, fetched_at TEXT);
    """)
    t = time.perf_counter()
    seq = 0
    for _, ex, items in pages:
        con.execute("BEGIN")
        now = datetime.now(UTC).isoformat()
        cap = con.execute("INSERT INTO captures (url, status, headers, sha256, size, fetched_at) "
                          "VALUES (?,?,?,?,?,?)", (ex.url, ex.status, "{}", "0" * 64, len(ex.body), now)).lastrowid
        rows = [(record_id("bench", it.native_id), 1, "facebook", it.native_id, it.kind, None, it.parent_native_id,
                 it.parent_native_id, it.author, it.author_id, it.created_at.isoformat(), it.permalink, "live", 0,
                 now, now, 1, "f" * 64, "social-media-content", now) for it in items]
        con.executemany("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        con.executemany("INSERT INTO versions (record_id, seq, sha256, fingerprint, text, content, extra, "
                        "captured_at, capture_id) VALUES (?,1,?,?,?,?,?,?,?)",
                        [(r[0], "a" * 64, "f" * 64, it.text, "{}", "{}", now, cap) for r, it in zip(rows, items, strict=True)])
        con.executemany("INSERT INTO events (record_id, type, at, capture_id) VALUES (?, 'captured', ?, ?)",
                        [(r[0], now, cap) for r in rows])
        audit = []
        for r in rows:
            seq += 1
            audit.append((seq, now, "archiver", "record.captured", r[0], '{"account":"bench"}', "0" * 64, "1" * 64))
        con.executemany("INSERT INTO audit_log VALUES (?,?,?,?,?,?,?,?)", audit)
        con.executemany("INSERT OR IGNORE INTO blobs VALUES (?,?,?,?)",
                        [(f"{r[0]}{'0' * 40}", 300, "item", now) for r in rows])
        con.execute("COMMIT")
    elapsed = time.perf_counter() - t
    con.close()
    return elapsed


def main() -> None:
    """Print records/s for both paths and their ratio."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=100_000)
    args = ap.parse_args()
    pages = make_pages(args.items)
    with tempfile.TemporaryDirectory(prefix="archiver-bench-") as d:
        root = Path(d)
        plain = bench_plain(pages, root)
        arch = bench_archive(pages, root)
    n = args.items
    print(f"capture benchmark: {n} comments in {len(pages)} pages of 100")
    print(f"  archive path (blobs fsynced + DB + audit): {n / arch:10.0f} records/s  ({arch:.1f} s)")
    print(f"  plain sqlite3 inserts of the same rows:   {n / plain:10.0f} records/s  ({plain:.1f} s)")
    print(f"  ratio archive/plain: {plain / arch:.1%} (target >= 25%)")


if __name__ == "__main__":
    main()
