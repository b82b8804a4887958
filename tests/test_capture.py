"""The capture engine on real databases: exact storage, versions vs counts, events, removal rules."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from archiver.archive import Archive
from archiver.capture import CaptureSession, canonical_item_bytes
from archiver.config import AccountConfig
from archiver.connectors.base import Exchange, Item, Probe, Scope, WalkComplete
from archiver.db.models import Event, Record, Version
from archiver.harvest import ensure_account
from archiver.ids import record_id
from archiver.records import show_record

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
