"""The capture engine on real databases: exact storage, versions vs counts, events, removal rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from archiver.archive import Archive
from archiver.audit import verify_chain
from archiver.capture import CaptureSession, canonical_item_bytes
from archiver.config import AccountConfig
from archiver.connectors.base import Exchange, Item, Probe, Scope, WalkComplete
from archiver.db.models import AuditEntry, Event, Record, Version
from archiver.harvest import ensure_account
from archiver.ids import record_id
from archiver.records import show_record
from archiver.search import indexer
from archiver.search.searcher import search

HOSTILE = [
    "<script>alert(1)</script>",
    "right-to-left \u202eevil\u202c override",
    "emoji \U0001f694\U0001f6a8 and ZWJ \U0001f469\u200d\U0001f692",
    "nul \x00 inside",
    "x" * 100_000,
    "lone surrogate \ud800 from a \\u escape",
]
FEED = Scope("feed")


def _session(archive: Archive) -> CaptureSession:
    acc = AccountConfig(name="acct", connector="facebook")
    aid = ensure_account(archive, acc)
    return CaptureSession(archive.db, archive.blobs, archive.clock, account_id=aid, account_name="acct",
                          platform="facebook", run_id=None, series=archive.series_for(acc))


def _ex(archive: Archive, body: bytes = b"{}") -> Exchange:
    return Exchange("GET", "http://platform/feed", 200, {"content-type": "application/json"}, body,
                    archive.clock.now())


def _post(nid: str, text: str, likes: int = 0, hidden: bool = False) -> Item:
    raw = {"id": nid, "message": text, "like_count": likes, "is_hidden": hidden}
    return Item(native_id=nid, kind="post", raw=raw, text=text, author="PD",
                created_at=datetime(2026, 10, 1, tzinfo=UTC), hidden=hidden)


def test_hostile_text_round_trips_exactly(archive: Archive) -> None:
    cs = _session(archive)
    items = [_post(f"p{i}", t) for i, t in enumerate(HOSTILE)]
    cs.store_page(FEED, _ex(archive), items)
    with archive.db.read() as s:
        for i, text in enumerate(HOSTILE):
            doc = show_record(s, record_id("acct", f"p{i}"))
            assert doc["versions"][0]["text"] == text
            sha = doc["versions"][0]["sha256"]
            assert archive.blobs.get(sha) == canonical_item_bytes(items[i].raw)


def test_counts_do_not_make_versions_but_content_does(archive: Archive) -> None:
    cs = _session(archive)
    cs.store_page(FEED, _ex(archive), [_post("p1", "hello")])
    archive.clock.advance(minutes=5)
    cs.store_page(FEED, _ex(archive), [_post("p1", "hello", likes=40)])
    cs.store_page(FEED, _ex(archive), [_post("p1", "hello, edited")])
    cs.store_page(FEED, _ex(archive), [_post("p1", "hello, edited", hidden=True)])
    cs.store_page(FEED, _ex(archive), [_post("p1", "hello, edited", hidden=False)])
    rid = record_id("acct", "p1")
    with archive.db.read() as s:
        assert s.execute(select(func.count()).select_from(Version).where(Version.record_id == rid)).scalar() == 2
        types = [e.type for e in s.execute(select(Event).where(Event.record_id == rid).order_by(Event.id)).scalars()]
        assert types == ["captured", "edited", "hidden", "unhidden"]
        assert s.get(Record, rid).status == "edited"


def test_removal_needs_a_complete_walk_and_a_confirming_probe(archive: Archive) -> None:
    cs = _session(archive)
    cs.store_page(FEED, _ex(archive), [_post("p1", "a"), _post("p2", "b"), _post("p3", "c")])
    # A later harvest sees only p1; the walk completes; p2 is confirmed gone, p3 still exists.
    cs2 = _session(archive)
    cs2.store_page(FEED, _ex(archive), [_post("p1", "a")])
    probes = []

    def probe(kind: str, nid: str) -> Probe:
        probes.append(nid)
        return Probe(nid, gone=(nid == "p2"), exchange=_ex(archive, b'{"error":{"code":100}}'))

    cs2.conclude(WalkComplete(FEED), probe)
    assert probes == ["p2", "p3"]
    with archive.db.read() as s:
        assert s.get(Record, record_id("acct", "p2")).status == "removed"
        assert s.get(Record, record_id("acct", "p3")).status == "live"
    # Seen again later: restored, and the old version is still there.
    cs3 = _session(archive)
    cs3.store_page(FEED, _ex(archive), [_post("p2", "b")])
    with archive.db.read() as s:
        doc = show_record(s, record_id("acct", "p2"))
    assert doc["status"] == "live" and [e["type"] for e in doc["events"]] == ["captured", "removed", "restored"]


def test_history_items_add_only_unknown_past_states_in_order(archive: Archive) -> None:
    """Mastodon-style edit history: oldest first, then the current item; re-reading it adds nothing."""
    cs = _session(archive)
    t = [datetime(2026, 10, 1, h, tzinfo=UTC) for h in (1, 2, 3)]

    def state(text: str, at: datetime, history: bool) -> Item:
        raw = {"content": text, "created_at": at.isoformat()} if history else {"id": "s1", "content": text}
        return Item(native_id="s1", kind="post", raw=raw, text=text, edited_at=at, history=history,
                    author=None if history else "PD")

    cs.store_page(FEED, _ex(archive), [state("v one", t[0], True), state("v two", t[1], True)])
    cs.store_page(FEED, _ex(archive), [state("v two", t[1], False)])
    rid = record_id("acct", "s1")
    with archive.db.read() as s:
        doc = show_record(s, rid)
    assert [v["text"] for v in doc["versions"]] == ["v one", "v two"]
    assert doc["author"] == "PD" and doc["status"] == "edited"
    # A later edit: the whole history comes again; only the new state is added.
    cs.store_page(FEED, _ex(archive), [state("v one", t[0], True), state("v two", t[1], True),
                                       state("v three", t[2], True)])
    cs.store_page(FEED, _ex(archive), [state("v three", t[2], False)])
    with archive.db.read() as s:
        doc = show_record(s, rid)
    assert [v["text"] for v in doc["versions"]] == ["v one", "v two", "v three"]
    assert [e["type"] for e in doc["events"]] == ["captured", "edited", "edited"]


def test_repeated_item_in_one_page_is_compared_in_order(archive: Archive) -> None:
    cs = _session(archive)
    cs.store_page(FEED, _ex(archive), [_post("p1", "a"), _post("p1", "a", likes=3), _post("p1", "b")])
    with archive.db.read() as s:
        doc = show_record(s, record_id("acct", "p1"))
    assert [v["text"] for v in doc["versions"]] == ["a", "b"]
    assert doc["status"] == "edited"


def test_fields_filled_in_later_are_audited_and_searchable(archive: Archive) -> None:
    """A later harvest that brings fields the archive lacked (author, permalink, created time, parent)
    writes a record.updated audit entry naming them, so the search index re-reads the record."""
    cs = _session(archive)
    bare = Item(native_id="c1", kind="comment", raw={"id": "c1", "message": "who said this"}, text="who said this")
    cs.store_page(FEED, _ex(archive), [bare])
    indexer.catch_up(archive)
    rid = record_id("acct", "c1")
    assert search(archive, "author:quimby")["total"] == 0
    archive.clock.advance(minutes=5)
    created = datetime(2026, 10, 1, 8, 30, tzinfo=UTC)
    full = Item(native_id="c1", kind="comment", text="who said this", author="Mayor Quimby", author_id="u7",
                raw={"id": "c1", "message": "who said this", "from": {"id": "u7", "name": "Mayor Quimby"}},
                permalink="https://facebook.example/c1", created_at=created, parent_native_id="p9")
    cs.store_page(FEED, _ex(archive), [full])
    # Seen again with the same fields: nothing more to record.
    cs.store_page(FEED, _ex(archive), [full])
    with archive.db.read() as s:
        entries = list(s.execute(select(AuditEntry).where(AuditEntry.subject == rid,
                                                          AuditEntry.action == "record.updated")).scalars())
        assert len(entries) == 1
        details = json.loads(entries[0].details)
        assert details["changes"] == {
            "author": {"from": None, "to": "Mayor Quimby"},
            "author_id": {"from": None, "to": "u7"},
            "permalink": {"from": None, "to": "https://facebook.example/c1"},
            "created_at": {"from": None, "to": "2026-10-01T08:30:00+00:00"},
            "parent_native_id": {"from": None, "to": "p9"},
            "parent_id": {"from": None, "to": record_id("acct", "p9")},
        }
        rec = s.get(Record, rid)
        assert (rec.author, rec.created_at, rec.parent_id) == ("Mayor Quimby", created, record_id("acct", "p9"))
        assert rec.last_seen_at == archive.clock.now() and rec.first_captured_at < rec.last_seen_at
        assert s.execute(select(func.count()).select_from(Version).where(Version.record_id == rid)).scalar() == 1
        assert verify_chain(s).ok
    indexer.catch_up(archive)
    assert [h["record_id"] for h in search(archive, "author:quimby")["hits"]] == [rid]
    assert search(archive, 'author:"Mayor Quimby"')["hits"][0]["author"] == "Mayor Quimby"


def test_bulk_insert_sends_what_a_core_insert_sends(archive: Archive) -> None:
    """The capture path's multi-row insert converts values with the columns' own bind processors: the
    stored values are byte for byte those of table.insert(), hostile text and non-UTC times included."""
    from datetime import timedelta, timezone

    from sqlalchemy import text

    from archiver.db.bulk import bulk_insert
    from archiver.db.models import AuditEntry, Blob, table

    texts = ["plain", "nul \x00 inside", "lone \ud800 surrogate", "\ufdd0 starts with the marker", "\U0001f694 ok", None]
    audit_rows = [(i + 1, f"at{i}", t or "actor", "test.action", t, t or "{}", "0" * 64, "1" * 64)
                  for i, t in enumerate(texts)]
    cols = ("seq", "at", "actor", "action", "subject", "details", "prev_hash", "entry_hash")
    at = datetime(2026, 3, 8, 1, 59, 59, 123456, tzinfo=timezone(timedelta(hours=-6)))
    with archive.db.write() as s:
        s.execute(table(AuditEntry).insert(), [dict(zip(cols, r, strict=True)) for r in audit_rows])
        bulk_insert(s, table(AuditEntry), cols).execute(s, [(r[0] + 100, *r[1:]) for r in audit_rows])
        s.execute(table(Blob).insert(), [dict(sha256="a" * 64, size=1, kind="item", stored_at=at)])
        blobs = bulk_insert(s, table(Blob), ("sha256", "size", "kind", "stored_at"), ignore_conflict_on="sha256")
        blobs.execute(s, [("b" * 64, 1, "item", at)])
        stamp = blobs.bind_value("stored_at", at)
        blobs.execute(s, [("c" * 64, 1, "item", stamp), ("a" * 64, 2, "capture", stamp)], raw=("stored_at",))
    with archive.db.read() as s:
        raw = s.connection().exec_driver_sql(
            "SELECT seq, at, actor, action, subject, details FROM audit_log ORDER BY seq").all()
        assert [tuple(r[1:]) for r in raw[:6]] == [tuple(r[1:]) for r in raw[6:]]
        got = [(e.actor, e.subject, e.details) for e in s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()]
        assert got[6:] == [(r[2], r[4], r[5]) for r in audit_rows]
        stored = s.execute(text("SELECT sha256, size, stored_at FROM blobs ORDER BY sha256")).all()
        assert [r[0][0] for r in stored] == ["a", "b", "c"] and stored[0][1] == 1  # the existing row stays
        assert stored[0][2] == stored[1][2] == stored[2][2]
        assert s.get(Blob, "b" * 64).stored_at == at


def test_event_audit_details_are_canonical_json(archive: Archive) -> None:
    cs = _session(archive)
    cs.store_page(FEED, _ex(archive), [_post("p1", "a", hidden=True)])
    cs.store_page(FEED, _ex(archive), [_post("p1", "b", hidden=True)])
    with archive.db.read() as s:
        entries = list(s.execute(select(AuditEntry).where(AuditEntry.subject == record_id("acct", "p1"))
                                 .order_by(AuditEntry.seq)).scalars())
    from archiver.db.types import dumps

    assert [e.action for e in entries] == ["record.captured", "record.hidden", "record.edited"]
    for e in entries:
        assert e.details == dumps(json.loads(e.details))
    assert set(json.loads(entries[0].details)) == {"account", "run", "capture", "seq", "sha256"}
    assert set(json.loads(entries[1].details)) == {"account", "run", "capture"}
    assert json.loads(entries[2].details)["seq"] == 2


def test_a_failed_blob_write_commits_nothing_of_the_page(archive: Archive, monkeypatch: Any) -> None:
    """Rows are committed only after every blob of the page is durable: a write error on any of the
    writer threads rolls the page back and is raised."""
    from archiver.blobstore import LocalBlobStore
    from archiver.errors import BlobError

    cs = _session(archive)
    with archive.db.read() as s:
        entries_before = s.execute(select(func.count()).select_from(AuditEntry)).scalar()
    real = LocalBlobStore.put_many

    def failing(self: LocalBlobStore, blobs: Any, **kw: Any) -> list[str]:
        data = list(blobs)
        if any(b"p3" in b for b in data):
            raise BlobError("cannot write to blob store: disk full")
        return real(self, data, **kw)

    monkeypatch.setattr(LocalBlobStore, "put_many", failing)
    with pytest.raises(BlobError):
        cs.store_page(FEED, _ex(archive), [_post(f"p{i}", f"text {i}") for i in range(8)])
    with archive.db.read() as s:
        assert s.execute(select(func.count()).select_from(Record)).scalar() == 0
        assert s.execute(select(func.count()).select_from(AuditEntry)).scalar() == entries_before
    monkeypatch.setattr(LocalBlobStore, "put_many", real)
    items = [_post(f"p{i}", f"text {i}") for i in range(8)]
    cs.store_page(FEED, _ex(archive), items)
    with archive.db.read() as s:
        for it in items:
            sha = show_record(s, record_id("acct", it.native_id))["versions"][0]["sha256"]
            assert archive.blobs.get(sha) == canonical_item_bytes(it.raw)


def test_bytes_captured_again_after_destruction_are_checked_again(archive: Archive) -> None:
    from sqlalchemy import update

    from archiver.blobstore import sha256_hex
    from archiver.db.models import Blob
    from archiver.verify import verify_archive

    body = b'{"data": [], "note": "the same response twice"}'
    sha = sha256_hex(body)
    session = _session(archive)
    session.store_page(FEED, _ex(archive, body), [])
    archive.blobs.destroy(sha)  # as disposition does
    with archive.db.write() as s:
        s.execute(update(Blob).where(Blob.sha256 == sha).values(destroyed_at=archive.clock.now()))
    session.store_page(FEED, _ex(archive, body), [])
    with archive.db.read() as s:
        assert s.get(Blob, sha).destroyed_at is None  # type: ignore[union-attr]
    assert archive.blobs.get(sha) == body
    archive.blobs.destroy(sha)  # lost again: verify must now notice, since the archive holds it again
    assert [b["sha256"] for b in verify_archive(archive).to_json()["blobs_bad"]] == [sha]
