"""Disposition: dry run, destruction with tombstones and a certificate, holds and open requests block it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text, update

from archiver.archive import Archive
from archiver.assignments import assign_series
from archiver.clock import FakeClock
from archiver.db.models import AuditEntry, Blob, Capture, Record, Version
from archiver.db.retention_models import HoldRecord
from archiver.disposition import dispose, report
from archiver.errors import BlobLocked, UsageError
from archiver.holds import create_hold, record_blobs, release_hold
from archiver.records import show_record
from archiver.search.indexer import catch_up
from archiver.search.searcher import close_all, search
from archiver.simulated.facebook import SimulatedFacebook
from archiver.verify import verify_archive
from tests.retention_support import (
    add_request,
    close_request,
    harvest,
    open_archive,
    record,
    retention_page,  # noqa: F401 - the fixture "fb"
    rid,
    seed,
)


@pytest.fixture
def arch(tmp_path, db_url, clock, registry, fb) -> Iterator[Archive]:
    a = open_archive(tmp_path, db_url, clock, registry, fb)
    yield a
    close_all()
    a.close()


@pytest.fixture
def ids(arch: Archive, fb: SimulatedFacebook, clock: FakeClock) -> dict[str, str]:
    """The seeded page, harvested once, then two years and a day later (the general series has ended)."""
    native = seed(fb, clock)
    harvest(arch)
    clock.advance(days=2 * 366)
    return {k: rid(v) for k, v in native.items()}


def snapshot(arch: Archive) -> dict[str, Any]:
    """Everything a dry run must leave alone."""
    out: dict[str, Any] = {}
    with arch.db.read() as s:
        for t in ("records", "versions", "blobs", "audit_log", "holds", "hold_records", "record_retention",
                  "dispositions"):
            rows = s.execute(text(f"SELECT * FROM {t}")).all()  # noqa: S608 - fixed table names
            out[t] = sorted(repr(tuple(r)) for r in rows)
    root = Path(arch.blobs.location)
    out["files"] = sorted(p.name for p in root.rglob("*") if p.is_file())
    return out


def audits(arch: Archive, action: str) -> list[AuditEntry]:
    with arch.db.read() as s:
        return list(s.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars())


def test_nothing_is_eligible_before_its_time(arch, fb, clock) -> None:
    seed(fb, clock)
    harvest(arch)
    clock.advance(days=365)
    doc = dispose(arch, approve=True, actor="Custodian")
    assert doc["disposed"] == [] and doc["certificate"] is None
    assert report(arch)["next_eligible"][0]["count"] == 5


def test_dry_run_shows_exactly_what_would_go_and_changes_nothing(arch, ids) -> None:
    before = snapshot(arch)
    doc = dispose(arch)
    assert doc["dry_run"] is True and doc["disposed"] == [] and doc["certificate"] is None
    going = {r["record_id"]: r for r in doc["would_destroy"]}
    assert set(going) == set(ids.values())
    r = going[ids["c0"]]
    assert (r["series"], r["trigger"]) == ("social-media-content", "capture")
    assert r["trigger_date"] == "2026-11-01T12:00:00Z" and r["disposition_date"] == "2028-11-01T12:00:00Z"
    assert r["versions"][0]["sha256"] in doc["blobs_to_destroy"]
    assert doc["eligible"][0]["series"] == "social-media-content" and doc["eligible"][0]["count"] == 5
    assert snapshot(arch) == before
    rep = report(arch)
    assert set(rep) >= {"eligible", "held", "disposed", "certificate", "next_eligible"}
    assert snapshot(arch) == before


def test_approve_destroys_content_keeps_tombstone_and_certifies(arch, ids, clock) -> None:
    catch_up(arch)
    assert search(arch, "zanzibar")["total"] == 1
    # p1 stays (permanent series): the feed response it was read from also holds p0, so it is kept.
    assign_series(arch, "t-forever", [ids["p1"]], "Custodian")
    with arch.db.read() as s:
        p1_blobs = record_blobs(s, [ids["p1"]])
        c0_item = s.execute(select(Version.sha256).where(Version.record_id == ids["c0"])).scalar_one()
        c0_capture = s.execute(select(Capture.sha256).join(Version, Version.capture_id == Capture.id)
                               .where(Version.record_id == ids["c0"])).scalar_one()
    doc = dispose(arch, approve=True, actor="J. Doe, Records Custodian")
    gone = [ids[k] for k in ("p0", "c0", "c1", "c2")]
    assert sorted(doc["disposed"]) == sorted(gone)
    # blobs: the records' own are gone, shared ones kept, and the blobs table says which
    assert not arch.blobs.exists(c0_item) and not arch.blobs.exists(c0_capture)
    assert all(arch.blobs.exists(b) for b in p1_blobs)
    with arch.db.read() as s:
        destroyed = dict(s.execute(select(Blob.sha256, Blob.destroyed_at).where(Blob.destroyed_at.is_not(None))).all())
        assert destroyed[c0_item] == clock.now()
        assert not set(destroyed) & p1_blobs
        texts = s.execute(select(Version.text, Version.content).where(Version.record_id.in_(gone))).all()
        assert texts and all(t is None and c == "{}" for t, c in texts)
        tomb = show_record(s, ids["c0"])
    # tombstone: id, series, dates, hashes; no text, author or permalink
    assert tomb["status"] == "disposed" and tomb["series"] == "social-media-content"
    assert tomb["author"] is None and tomb["permalink"] is None and tomb["first_captured_at"]
    assert tomb["versions"][0]["sha256"] == c0_item and tomb["versions"][0]["text"] is None
    assert tomb["versions"][0]["captured_at"] and tomb["disposition_date"] == "2028-11-01T12:00:00Z"
    # not searchable; the kept record still is
    assert search(arch, "zanzibar")["total"] == 0
    # ... and its words are gone from the index files, not only from the results
    files = [p for p in arch.settings.storage.index_dir.rglob("*") if p.is_file()]
    assert files and not [p.name for p in files if b"zanzibar" in p.read_bytes()]
    assert search(arch, "community")["total"] == 1
    # verify does not count destroyed blobs as missing
    rep = verify_archive(arch)
    assert rep.ok, rep.blobs_bad
    # certificate: file, blob and audit entry agree
    cert = doc["certificate"]
    txt, js = Path(cert["path"]), Path(cert["json_path"])
    assert txt.parent == arch.settings.storage.exports_dir / "dispositions"
    assert hashlib.sha256(txt.read_bytes()).hexdigest() == cert["sha256"]
    assert arch.blobs.get(cert["sha256"]) == txt.read_bytes()
    body = " ".join(txt.read_text(encoding="utf-8").split())  # the closing statement is wrapped
    for needle in ("CERTIFICATE OF DESTRUCTION", "J. Doe, Records Custodian", "Cal. Gov. Code 34090",
                   "social-media-content", ids["c0"], c0_item, c0_capture, clock.now().strftime("%Y-%m-%d"),
                   "legal hold"):
        assert needle in body, needle
    cj = json.loads(js.read_text(encoding="utf-8"))
    assert cj["approved_by"] == "J. Doe, Records Custodian" and cj["destroyed_at"] == "2028-11-02T12:00:00Z"
    assert cj["series"][0]["citation"].startswith("Cal. Gov. Code 34090") and cj["series"][0]["records"] == 4
    assert {r["record_id"] for r in cj["records"]} == set(gone)
    assert c0_item in cj["blobs_destroyed"] and set(cj["blobs_kept_shared"]) <= p1_blobs
    with arch.db.read() as s:
        kinds = dict(s.execute(select(Blob.sha256, Blob.kind).where(Blob.kind == "certificate")).all())
    assert set(kinds) == {cert["sha256"], cert["json_sha256"]}
    [entry] = audits(arch, "disposition")
    det = json.loads(entry.details)
    assert entry.actor == "J. Doe, Records Custodian" and det["certificate_sha256"] == cert["sha256"]
    per_record = audits(arch, "record.disposed")
    assert {a.subject for a in per_record} == set(gone) and {a.actor for a in per_record} == {entry.actor}
    # a second run finds nothing; a new harvest does not bring the destroyed records back
    assert dispose(arch, approve=True, actor="J. Doe")["certificate"] is None
    harvest(arch)
    assert record(arch, ids["c0"]).status == "disposed"
    with arch.db.read() as s:
        assert s.execute(select(Version.text).where(Version.record_id == ids["c0"])).scalar_one() is None


def test_approve_needs_an_actor(arch, ids) -> None:
    with pytest.raises(UsageError, match="--actor"):
        dispose(arch, approve=True, actor=" ")


def test_holds_block_disposition_even_when_the_db_is_edited_by_hand(arch, ids, clock, monkeypatch) -> None:
    flags: list[tuple[str, bool]] = []
    monkeypatch.setattr(arch.blobs, "enforces_locks", lambda: True)  # as an Object Lock bucket does
    monkeypatch.setattr(arch.blobs, "legal_hold", lambda sha, on: flags.append((sha, on)))
    hold = create_hold(arch, "smith-v-city", [ids["c0"], ids["c1"]], "Smith v. City, 26-CV-114", "Counsel")
    assert hold["records"] == [ids["c0"], ids["c1"]] and hold["blobs_flagged"] == len(flags) > 0
    with arch.db.read() as s:
        assert {sha for sha, on in flags if on} == record_blobs(s, [ids["c0"], ids["c1"]])
    add_request(arch, "KORA-2026-0009", [ids["c1"]])  # c1 is also in an open request
    assign_series(arch, "t-forever", [ids["p1"]], "Custodian")
    with arch.db.write() as s:  # hand edits: a past date on a permanent record, a deleted hold row
        s.execute(update(Record).where(Record.id == ids["p1"]).values(disposition_date=clock.now().replace(year=2020)))
        s.execute(delete(HoldRecord).where(HoldRecord.record_id == ids["c1"]))
    rep = report(arch)
    held = {h["record_id"]: h for h in rep["held"]}
    assert held[ids["c0"]]["holds"] == ["smith-v-city"] and held[ids["c1"]]["requests"] == ["KORA-2026-0009"]
    doc = dispose(arch, approve=True, actor="Custodian")
    assert sorted(doc["disposed"]) == sorted([ids["p0"], ids["c2"]])
    for k in ("c0", "c1", "p1"):
        assert record(arch, ids[k]).status != "disposed", k
    with arch.db.read() as s:
        kept = record_blobs(s, [ids["c0"], ids["c1"], ids["p1"]])
    assert all(arch.blobs.exists(b) for b in kept)
    # released: c0 goes; c1 waits for its request to close
    flags.clear()
    rel = release_hold(arch, "smith-v-city", "Counsel")
    assert rel["records"] == [ids["c0"]] and flags and not any(on for _, on in flags)
    assert dispose(arch, approve=True, actor="Custodian")["disposed"] == [ids["c0"]]
    close_request(arch, "KORA-2026-0009", clock.now())
    assert dispose(arch, approve=True, actor="Custodian")["disposed"] == [ids["c1"]]
    assert record(arch, ids["p1"]).status != "disposed"
    # every hold action is audited with its actor, per record too
    assert [(a.subject, a.actor) for a in audits(arch, "hold.created")] == [("hold:smith-v-city", "Counsel")]
    assert {a.subject for a in audits(arch, "hold.placed")} == {ids["c0"], ids["c1"]}
    assert {(a.subject, a.actor) for a in audits(arch, "hold.lifted")} == {(ids["c0"], "Counsel")}


def test_hand_edited_disposition_date_does_not_make_a_record_eligible(arch, fb, clock) -> None:
    native = seed(fb, clock)
    harvest(arch)
    clock.advance(days=10)
    c0 = rid(native["c0"])
    with arch.db.write() as s:  # both the cached date and the first-capture time pushed into the past
        s.execute(update(Record).where(Record.id == c0).values(
            disposition_date=clock.now().replace(year=2020), first_captured_at=clock.now().replace(year=2020)))
    doc = dispose(arch, approve=True, actor="Custodian")
    assert doc["disposed"] == [] and record(arch, c0).status != "disposed"


def test_transfer_and_review_series_are_listed_for_a_person(arch, ids) -> None:
    assign_series(arch, "press-releases", [ids["p0"]], "Custodian")
    assign_series(arch, "social-media-content-ks", [ids["c0"]], "Custodian")
    rep = report(arch)
    person = {g["series"]: g for g in rep["needs_person"]}
    assert person["press-releases"]["action"] == "transfer"
    assert person["social-media-content-ks"]["records"][0]["record_id"] == ids["c0"]
    doc = dispose(arch, approve=True, actor="Custodian")
    assert ids["p0"] not in doc["disposed"] and ids["c0"] not in doc["disposed"] and len(doc["disposed"]) == 3


def test_a_store_that_refuses_keeps_the_blob_and_the_next_run_retries(arch, ids, monkeypatch) -> None:
    with arch.db.read() as s:
        locked = s.execute(select(Version.sha256).where(Version.record_id == ids["c2"])).scalar_one()
    real = arch.blobs.destroy

    def refuse(sha: str) -> None:
        if sha == locked:
            raise BlobLocked(f"blob {sha} is under Object Lock retention until 2030-01-01")
        real(sha)

    monkeypatch.setattr(arch.blobs, "destroy", refuse)
    doc = dispose(arch, approve=True, actor="Custodian")
    assert [f["sha256"] for f in doc["blobs_failed"]] == [locked] and arch.blobs.exists(locked)
    assert verify_archive(arch).ok
    cert = json.loads(Path(doc["certificate"]["json_path"]).read_text(encoding="utf-8"))
    assert cert["blobs_failed"][0]["sha256"] == locked
    monkeypatch.setattr(arch.blobs, "destroy", real)
    again = dispose(arch, approve=True, actor="Custodian")
    assert again["disposed"] == [] and again["blobs_destroyed"] == 1 and not arch.blobs.exists(locked)
    with arch.db.read() as s:
        assert s.execute(select(func.count()).select_from(Blob).where(Blob.sha256 == locked,
                                                                      Blob.destroyed_at.is_not(None))).scalar() == 1


def test_a_held_record_marked_disposed_by_hand_keeps_its_blobs(arch, ids, clock) -> None:
    """The status column is not proof of a disposition: the audit log's record.disposed entry is."""
    create_hold(arch, "smith-v-city", [ids["c0"]], "Smith v. City", "Counsel")
    with arch.db.write() as s:  # hand edits: a held record and an unheld one marked disposed
        s.execute(update(Record).where(Record.id.in_([ids["c0"], ids["p1"]])).values(status="disposed"))
    with arch.db.read() as s:
        theirs = record_blobs(s, [ids["c0"], ids["p1"]])
    dry = dispose(arch)
    assert not theirs & set(dry["blobs_to_destroy"])
    doc = dispose(arch, approve=True, actor="Custodian")
    assert sorted(doc["disposed"]) == sorted([ids["p0"], ids["c1"], ids["c2"]])
    assert all(arch.blobs.exists(sha) for sha in theirs)
    # A later run (which retries blobs of earlier dispositions) still leaves them alone.
    dispose(arch, approve=True, actor="Custodian")
    assert all(arch.blobs.exists(sha) for sha in theirs)
