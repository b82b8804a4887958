"""End to end: harvests of the simulated Facebook page into a real archive (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from archiver.archive import Archive
from archiver.clock import FakeClock
from archiver.config import AccountConfig
from archiver.db.models import AuditEntry, Capture, Event, HarvestRun, Record, Version
from archiver.harvest import harvest_account
from archiver.ids import record_id
from archiver.records import show_record
from archiver.simulated.facebook import SimulatedFacebook
from archiver.verify import verify_archive

TOKEN = "EAAGtestPAGEtoken-7f3a9c1e5b"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def fb(clock: FakeClock) -> Iterator[SimulatedFacebook]:
    with SimulatedFacebook(page_id="1000", token=TOKEN, now=clock.now) as sim:
        yield sim


@pytest.fixture
def account(fb: SimulatedFacebook, monkeypatch: pytest.MonkeyPatch) -> AccountConfig:
    monkeypatch.setenv("TEST_FB_TOKEN", TOKEN)
    return AccountConfig(name="apd-facebook", connector="facebook", lookback=timedelta(days=30),
                         max_wait=timedelta(seconds=20),
                         options={"page_id": "1000", "access_token": "$env:TEST_FB_TOKEN",
                                  "api_base": fb.api_base, "page_size": 2})


def ago(clock: FakeClock, **kw: float) -> datetime:
    return clock.now() - timedelta(**kw)


def seed(fb: SimulatedFacebook, clock: FakeClock) -> dict[str, str]:
    """6 posts (3 pages of 2) with paged comments and replies."""
    ids: dict[str, str] = {}
    for i in range(6):
        ids[f"p{i}"] = fb.add_post(f"Post {i} from the department", created_time=ago(clock, days=6 - i))
    for i in range(5):
        ids[f"c{i}"] = fb.add_comment(ids["p5"], f"comment {i}", author=(f"u{i}", f"Resident {i}"),
                                      created_time=ago(clock, hours=10 - i))
    ids["r0"] = fb.add_comment(ids["p5"], "a reply", author=("u9", "Replier"), parent_id=ids["c1"],
                               created_time=ago(clock, hours=4))
    ids["r1"] = fb.add_comment(ids["p5"], "another reply", author=("u8", "Other"), parent_id=ids["c1"],
                               created_time=ago(clock, hours=3))
    ids["c5"] = fb.add_comment(ids["p0"], "on the oldest post", created_time=ago(clock, days=5))
    return ids


def statuses(archive: Archive) -> dict[str, str]:
    with archive.db.read() as s:
        return {nid: st for nid, st in s.execute(select(Record.native_id, Record.status))}


def event_types(archive: Archive, nid: str) -> list[str]:
    with archive.db.read() as s:
        return list(s.execute(select(Event.type).join(Record, Record.id == Event.record_id)
                              .where(Record.native_id == nid).order_by(Event.id)).scalars())


def test_paged_harvest_archives_every_item_once_with_threading(archive, fb, account, clock) -> None:
    ids = seed(fb, clock)
    r = harvest_account(archive, account)
    assert r.status == "ok", r.error
    assert r.new_records == 14 and r.pages >= 3 + 3  # 3 feed pages of 2 posts, paged comments
    with archive.db.read() as s:
        rows = {rec.native_id: rec for rec in s.execute(select(Record)).scalars()}
        assert len(rows) == 14
        assert s.execute(select(func.count()).select_from(Version)).scalar() == 14
        caps = s.execute(select(func.count()).select_from(Capture)).scalar()
    assert caps == r.pages
    assert rows[ids["c0"]].kind == "comment" and rows[ids["c0"]].parent_id == record_id("apd-facebook", ids["p5"])
    assert rows[ids["r0"]].kind == "reply" and rows[ids["r0"]].parent_id == record_id("apd-facebook", ids["c1"])
    assert rows[ids["r0"]].thread_native_id == ids["p5"]
    assert rows[ids["p0"]].series == "social-media-content"
    assert rows[ids["p0"]].disposition_date == clock.now().replace(year=clock.now().year + 2)
    # A second harvest with nothing changed adds no record, version or event.
    r2 = harvest_account(archive, account)
    assert (r2.status, r2.new_records, r2.new_versions, sum(r2.events.values())) == ("ok", 0, 0, 0)


def test_edit_hide_unhide_delete_restore_events(archive, fb, account, clock) -> None:
    ids = seed(fb, clock)
    assert harvest_account(archive, account).status == "ok"
    fb.edit_post(ids["p5"], "Post 5 from the department (corrected time: 6 PM)")
    fb.edit_comment(ids["c0"], "comment 0, edited")
    fb.hide_comment(ids["c2"])
    fb.delete_comment(ids["c3"])
    fb.set_counts(ids["c4"], like_count=99)  # counts alone are not a new version
    clock.advance(hours=1)
    r = harvest_account(archive, account)
    assert r.status == "ok", r.error
    assert r.events == {"edited": 2, "hidden": 1, "unhidden": 0, "removed": 1, "restored": 0}
    assert r.new_versions == 2
    st = statuses(archive)
    assert (st[ids["p5"]], st[ids["c0"]], st[ids["c2"]], st[ids["c3"]], st[ids["c4"]]) == \
        ("edited", "edited", "hidden", "removed", "live")
    with archive.db.read() as s:
        doc = show_record(s, record_id("apd-facebook", ids["p5"]))
    assert [v["text"] for v in doc["versions"]] == ["Post 5 from the department",
                                                    "Post 5 from the department (corrected time: 6 PM)"]
    assert [e["type"] for e in doc["events"]] == ["captured", "edited"]
    # The removed comment keeps its text and says when it was found missing.
    with archive.db.read() as s:
        gone = show_record(s, record_id("apd-facebook", ids["c3"]))
    assert gone["versions"][0]["text"] == "comment 3" and gone["removed_at"] is not None

    fb.unhide_comment(ids["c2"])
    fb.restore_comment(ids["c3"])
    clock.advance(hours=1)
    r = harvest_account(archive, account)
    assert r.events == {"edited": 0, "hidden": 0, "unhidden": 1, "removed": 0, "restored": 1}
    st = statuses(archive)
    assert (st[ids["c2"]], st[ids["c3"]]) == ("live", "live")
    assert event_types(archive, ids["c3"]) == ["captured", "removed", "restored"]
    assert event_types(archive, ids["c2"]) == ["captured", "hidden", "unhidden"]


def test_deleted_post_removes_its_thread(archive, fb, account, clock) -> None:
    ids = seed(fb, clock)
    harvest_account(archive, account)
    fb.delete_post(ids["p5"])
    r = harvest_account(archive, account)
    assert r.status == "ok"
    st = statuses(archive)
    assert st[ids["p5"]] == "removed"
    assert all(st[ids[k]] == "removed" for k in ("c0", "c1", "c2", "c3", "c4", "r0", "r1"))
    assert st[ids["p4"]] == "live"


@pytest.mark.parametrize("fault, kw", [
    ("5xx", {"times": None}),
    ("html", {"times": None}),
    ("truncated", {}),
    ("invalid_utf8", {}),
    ("rate_limit", {"times": None, "code": 613, "retry_after": "5"}),
])
def test_failed_comment_walk_marks_nothing_removed(archive, fb, account, clock, fault, kw) -> None:
    ids = seed(fb, clock)
    assert harvest_account(archive, account).status == "ok"
    fb.delete_comment(ids["c3"])
    fb.delete_comment(ids["r1"])
    # The second page of the big thread fails: the walk is incomplete, absence proves nothing.
    fb.inject(fault, path_contains=f"{ids['p5']}/comments?", **kw)
    fb.hold_after(None)
    r = harvest_account(archive, account)
    assert r.status == "partial", r
    assert r.error
    assert r.events["removed"] == 0
    st = statuses(archive)
    assert st[ids["c3"]] == "live" and st[ids["r1"]] == "live"
    fb.clear_faults()
    r = harvest_account(archive, account)
    assert r.status == "ok" and r.events["removed"] == 2
    st = statuses(archive)
    assert st[ids["c3"]] == "removed" and st[ids["r1"]] == "removed"


def test_failed_feed_walk_marks_no_post_removed(archive, fb, account, clock) -> None:
    ids = seed(fb, clock)
    harvest_account(archive, account)
    fb.delete_post(ids["p1"])
    fb.inject("truncated", path_contains="/feed")
    r = harvest_account(archive, account)
    assert r.status == "partial" and r.events["removed"] == 0
    assert statuses(archive)[ids["p1"]] == "live"


def test_lookback_only_rewalks_recent_threads(archive, fb, account, clock) -> None:
    ids = seed(fb, clock)
    harvest_account(archive, account)
    clock.advance(days=28)  # p0..p3 (2-6 days old) are now outside the 30-day window, p4/p5 inside
    fb.requests_seen.clear()
    fb.delete_comment(ids["c5"])  # on p0: outside the window, not re-walked, so not concluded
    r = harvest_account(archive, account)
    assert r.status == "ok"
    assert not any(f"{ids['p0']}/comments" in p for p in fb.requests_seen)
    assert any(f"{ids['p5']}/comments" in p for p in fb.requests_seen)
    assert statuses(archive)[ids["c5"]] == "live"


def test_hostile_comment_text_round_trips(archive, fb, account, clock) -> None:
    pid = fb.add_post("post", created_time=ago(clock, hours=1))
    texts = ["<script>alert(1)</script>", "\u202eevil override\u202c", "\U0001f6a8 emoji \U0001f46e\u200d\u2640\ufe0f",
             "x" * 100_000, "nul \x00 byte"]
    cids = [fb.add_comment(pid, t, created_time=ago(clock, minutes=30 - i)) for i, t in enumerate(texts)]
    r = harvest_account(archive, account)
    assert r.status == "ok", r.error
    with archive.db.read() as s:
        for cid, t in zip(cids, texts, strict=True):
            assert show_record(s, record_id("apd-facebook", cid))["versions"][0]["text"] == t


def test_token_expiry_fails_the_account_without_leaking_the_token(archive, fb, account, clock, tmp_path) -> None:
    seed(fb, clock)
    harvest_account(archive, account)
    fb.expire_token()
    r = harvest_account(archive, account)
    assert r.status == "failed"
    assert "apd-facebook" in r.error and "access token" in r.error and "\n" not in r.error
    assert TOKEN not in r.error
    with archive.db.read() as s:
        run = s.get(HarvestRun, r.run_id)
        assert run.status == "failed" and TOKEN not in (run.error or "")


def test_token_never_stored_anywhere(archive, fb, account, clock) -> None:
    seed(fb, clock)
    harvest_account(archive, account)
    with archive.db.read() as s:
        urls = list(s.execute(select(Capture.url, Capture.headers, Capture.secrets_redacted)))
        assert urls and all(TOKEN not in u and TOKEN not in h for u, h, _ in urls)
        assert any(red for _, _, red in urls)  # Graph API next links carried the token in the bodies
        assert all(TOKEN not in (e.details or "") for e in s.execute(select(AuditEntry)).scalars())
    for sha in archive.blobs.iterate():
        assert TOKEN.encode() not in archive.blobs.get(sha)


def test_id_less_comments_without_moderate_task_are_reported(archive, fb, account, clock) -> None:
    seed(fb, clock)
    fb.set_moderate(False)
    r = harvest_account(archive, account)
    assert r.status == "partial"
    assert "MODERATE" in r.error
    with archive.db.read() as s:
        assert s.execute(select(func.count()).select_from(Record).where(Record.kind != "post")).scalar() == 0


def test_verify_names_a_flipped_blob_byte_and_an_edited_audit_row(archive, fb, account, clock) -> None:
    seed(fb, clock)
    harvest_account(archive, account)
    assert verify_archive(archive).ok
    sha = next(iter(sorted(archive.blobs.iterate())))
    p = Path(archive.blobs.path(sha))
    p.chmod(0o644)
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x20
    p.write_bytes(bytes(data))
    with archive.db.write() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 5).values(subject="rec_tampered"))
    rep = verify_archive(archive)
    assert not rep.ok
    assert [b["sha256"] for b in rep.blobs_bad] == [sha] and rep.blobs_bad[0]["problem"] == "corrupt"
    assert rep.first_bad_entry == 5 and not rep.audit_ok


def test_unknown_series_or_connector_is_a_failed_run_not_a_crash(archive, account) -> None:
    bad = AccountConfig(name=account.name, connector="facebook", series="no-such-series", options=account.options)
    r = harvest_account(archive, bad)
    assert r.status == "failed" and "no-such-series" in r.error


def test_schema_check_refuses_an_uninitialised_or_old_database(tmp_path, db_url, registry) -> None:
    from archiver.errors import SchemaOutOfDate
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, db_url)
    with pytest.raises(SchemaOutOfDate, match="archiver init"):
        Archive.open(settings, registry=registry)
    arch = Archive(settings, registry=registry)
    arch.init()
    with arch.db.write() as s:
        s.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaOutOfDate):
        arch.db.check_schema()
    arch.close()


def test_concurrent_same_page_items_in_one_page_are_stored_once(archive, fb, account, clock) -> None:
    """An item repeated across pages (paging overlap) is one record."""
    seed(fb, clock)
    harvest_account(archive, account)
    harvest_account(archive, account)
    with archive.db.read() as s:
        counts = Counter(s.execute(select(Record.native_id)).scalars())
    assert max(counts.values()) == 1


def test_interrupted_runs_are_marked_only_when_provably_dead(archive, account) -> None:
    import os
    import socket

    from archiver.harvest import _mark_interrupted, ensure_account

    aid = ensure_account(archive, account)
    now = archive.clock.now()
    with archive.db.write() as s:
        rows = [HarvestRun(account_id=aid, started_at=now, status="running", host=socket.gethostname(), pid=os.getpid()),
                HarvestRun(account_id=aid, started_at=now, status="running", host=socket.gethostname(), pid=2 ** 22 + 7),
                HarvestRun(account_id=aid, started_at=now, status="running", host="other-host", pid=1),
                HarvestRun(account_id=aid, started_at=now - timedelta(days=2), status="running", host="other-host", pid=1)]
        s.add_all(rows)
    _mark_interrupted(archive, aid)
    with archive.db.read() as s:
        got = [r.status for r in s.execute(select(HarvestRun).order_by(HarvestRun.id)).scalars()]
    assert got == ["running", "failed", "running", "failed"]
