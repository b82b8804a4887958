"""Requests and retention together: records in an open request are held (S3 legal-hold flag on their blobs,
cleared on close unless a hold or another open request still covers a blob), and closing a request starts
trigger request-closed (dates recomputed and audited, S3 retention extended). Moto's S3 over HTTP, with
Object Lock, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from archiver.archive import Archive
from archiver.assignments import assign_series
from archiver.blobstore.s3 import S3BlobStore
from archiver.clock import FakeClock
from archiver.db.models import AuditEntry
from archiver.db.retention_models import Hold, HoldRecord
from archiver.disposition import dispose
from archiver.errors import BlobError
from archiver.holds import create_hold, record_blobs, release_hold
from archiver.migrate import migrate_storage
from archiver.plugins import ConnectorRegistry
from archiver.requests import add_records, close, create_request
from archiver.simulated.facebook import SimulatedFacebook
from tests.conftest import make_settings, new_bucket
from tests.retention_support import (
    ACCOUNT,
    AGENCY_YAML,
    harvest,
    open_archive,
    record,
    retention_page,  # noqa: F401 - the fixture "fb"
    rid,
    seed,
)


@pytest.fixture
def clock() -> FakeClock:
    # S3 compares retain-until dates with the real time, so the archive's clock starts at it.
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def arch(tmp_path: Path, db_url: str, clock: FakeClock, registry: ConnectorRegistry, fb: SimulatedFacebook,
         s3_endpoint: str, s3_client: Any) -> Iterator[Archive]:
    """An archive on an Object Lock bucket (series t-capture: 30 days), the simulated page harvested once."""
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "agency.yaml").write_text(AGENCY_YAML, encoding="utf-8")
    bucket = new_bucket(s3_client, object_lock=True)
    acc = {"name": ACCOUNT, "connector": "facebook", "page_id": "1000", "access_token": "$env:RET_FB_TOKEN",
           "api_base": fb.api_base, "lookback": "30d", "series": "t-capture"}
    # Harvested blobs are locked until their record's date (30 days from capture); others one day.
    settings = make_settings(tmp_path, db_url, [acc], retention={"schedules": ["schedules/*.yaml"]},
                             storage={"blobs": f"s3://{bucket}/apd", "s3_endpoint_url": s3_endpoint,
                                      "s3_lock_days": 1})
    a = Archive(settings, clock=clock, registry=registry)
    a.init()
    yield a
    a.close()


@pytest.fixture
def ids(arch: Archive, fb: SimulatedFacebook, clock: FakeClock) -> dict[str, str]:
    native = seed(fb, clock)
    harvest(arch)
    return {k: rid(v) for k, v in native.items()}


def blobs_of(arch: Archive, *records: str) -> set[str]:
    with arch.db.read() as s:
        return record_blobs(s, list(records))


def flagged(arch: Archive, shas: set[str]) -> set[str]:
    """Those of the blobs whose legal-hold flag is on in the bucket."""
    return {sha for sha in shas if arch.blobs.lock_status(sha).legal_hold}


def new_request(arch: Archive, req_id: str) -> None:
    create_request(arch, law="kora", requester="A Reporter", received=arch.clock.now().date(),
                   description="road closure comments", actor="clerk", request_id=req_id)


def test_open_request_flags_blobs_and_close_clears_only_uncovered_ones(arch: Archive, ids: dict[str, str]) -> None:
    c0, c1, c2 = ids["c0"], ids["c1"], ids["c2"]
    everything = blobs_of(arch, *ids.values())
    new_request(arch, "KORA-2026-0001")
    doc = add_records(arch, "KORA-2026-0001", [c0, c1, c2], "clerk")
    in_request = blobs_of(arch, c0, c1, c2)
    assert doc["blob_errors"] == [] and doc["blobs_flagged"] == len(in_request)
    assert flagged(arch, everything) == in_request  # the same set a hold flags, and nothing else

    # c0 also under a legal hold; c2 also in a second open request.
    create_hold(arch, "smith-v-city", [c0], "Smith v. City", "Counsel")
    new_request(arch, "KORA-2026-0002")
    add_records(arch, "KORA-2026-0002", [c2], "clerk")
    shared = blobs_of(arch, c0) & blobs_of(arch, c1)
    assert shared, "c0 and c1 came in the same page of comments: that response is one blob"

    res = close(arch, "KORA-2026-0001", "clerk")
    assert res["blob_errors"] == [] and res["blobs_released"] == len(in_request - blobs_of(arch, c0, c2))
    still = blobs_of(arch, c0, c2)
    assert flagged(arch, everything) == still  # the shared page keeps its flag: the hold on c0 needs it

    # Releasing the hold clears c0's blobs except what the second, still open request needs.
    rel = release_hold(arch, "smith-v-city", "Counsel")
    assert rel["blob_errors"] == []
    assert flagged(arch, everything) == blobs_of(arch, c2)
    close(arch, "KORA-2026-0002", "clerk")
    assert flagged(arch, everything) == set()


def test_request_closed_trigger_recomputes_dates_and_extends_s3_retention(arch: Archive, ids: dict[str, str],
                                                                          clock: FakeClock) -> None:
    c0, c1, c2 = ids["c0"], ids["c1"], ids["c2"]
    assign_series(arch, "t-request", [c0, c1], "Custodian")  # 30 days from the request's closing
    assert record(arch, c0).disposition_date is None  # the trigger has not happened yet
    c2_date = record(arch, c2).disposition_date  # the account's series: 30 days from capture
    new_request(arch, "KORA-2026-0003")
    add_records(arch, "KORA-2026-0003", [c0, c2], "clerk")
    before = {sha: arch.blobs.lock_status(sha).retain_until for sha in blobs_of(arch, c0)}
    assert all(u is not None and u <= clock.now() + timedelta(days=30) for u in before.values())

    clock.advance(days=3)
    closed_at = clock.now()
    res = close(arch, "KORA-2026-0003", "clerk")
    due = closed_at + timedelta(days=30)
    assert [c["record_id"] for c in res["dates_changed"]] == [c0] and res["blob_errors"] == []
    assert record(arch, c0).disposition_date == due
    assert record(arch, c1).disposition_date is None  # same series, never in a request: still waiting
    assert record(arch, c2).disposition_date == c2_date  # its series does not count from a request
    with arch.db.read() as s:
        entries = list(s.execute(select(AuditEntry).where(AuditEntry.action == "retention.recomputed",
                                                          AuditEntry.subject == c0)).scalars())
    assert len(entries) == 1 and entries[0].actor == "clerk"
    assert '"cause":"request.close"' in entries[0].details and '"request":"KORA-2026-0003"' in entries[0].details
    # The bucket keeps c0's blobs until the new date, and their flags are off: never left with neither.
    for sha in blobs_of(arch, c0):
        st = arch.blobs.lock_status(sha)
        assert st.retain_until == due and st.mode == "COMPLIANCE" and not st.legal_hold, sha

    # Eligible in the database 30 days on, but S3 keeps the blobs until the lock expires.
    clock.advance(days=31)
    doc = dispose(arch, approve=True, actor="Custodian")
    assert c0 in doc["disposed"] and doc["blobs_failed"]
    assert all(arch.blobs.exists(sha) for sha in blobs_of(arch, c0))


def test_a_blob_whose_retention_was_not_extended_keeps_its_flag(arch: Archive, ids: dict[str, str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    c0 = ids["c0"]
    assign_series(arch, "t-request", [c0], "Custodian")
    new_request(arch, "KORA-2026-0004")
    add_records(arch, "KORA-2026-0004", [c0], "clerk")

    def refuse(sha: str, until: datetime) -> None:
        raise BlobError("access denied (s3:PutObjectRetention)")

    monkeypatch.setattr(arch.blobs, "protect", refuse)
    res = close(arch, "KORA-2026-0004", "clerk")
    mine = blobs_of(arch, c0)
    assert len(res["blob_errors"]) == len(mine) and res["blobs_released"] == 0
    assert flagged(arch, mine) == mine
    assert record(arch, c0).disposition_date is not None  # the database moved on; the error is reported


def test_a_hold_deleted_from_the_database_by_hand_is_still_honoured_at_the_blob(arch: Archive, ids: dict[str, str],
                                                                                 clock: FakeClock) -> None:
    c0 = ids["c0"]
    assign_series(arch, "t-capture", [c0], "Custodian")  # 30 days from capture
    create_hold(arch, "smith-v-city", [c0], "Smith v. City", "Counsel")
    with arch.db.write() as s:  # the hold's rows removed by hand: the database alone would free c0
        s.execute(delete(HoldRecord))
        s.execute(delete(Hold))
    clock.advance(days=31)
    dry = dispose(arch)
    assert c0 not in [r["record_id"] for r in dry["would_destroy"]] and c0 in dry["kept_store_legal_hold"]
    doc = dispose(arch, approve=True, actor="Custodian")
    assert c0 not in doc["disposed"] and c0 in doc["kept_store_legal_hold"]
    assert record(arch, c0).status != "disposed"
    assert all(arch.blobs.exists(sha) for sha in blobs_of(arch, c0))


def test_migrating_into_an_object_lock_bucket_carries_dates_and_holds(tmp_path: Path, db_url: str, clock: FakeClock,
                                                                      registry: ConnectorRegistry,
                                                                      fb: SimulatedFacebook, s3_endpoint: str,
                                                                      s3_client: Any) -> None:
    source = open_archive(tmp_path, db_url, clock, registry, fb)  # local blobs: nothing enforced there
    try:
        native = seed(fb, clock)
        harvest(source)
        c0, c2 = rid(native["c0"]), rid(native["c2"])
        create_hold(source, "smith-v-city", [c0], "Smith v. City", "Counsel")
        new_request(source, "KORA-2026-0005")
        add_records(source, "KORA-2026-0005", [c2], "clerk")
        bucket = new_bucket(s3_client, object_lock=True)
        summary = migrate_storage(source, f"sqlite:///{tmp_path / 'dest.db'}", f"s3://{bucket}/apd",
                                  to_s3_endpoint_url=s3_endpoint, actor="IT")
        assert summary.ok and summary.locks["errors"] == [] and summary.locks["records_dated"] == 5
        dest = S3BlobStore(f"s3://{bucket}/apd", endpoint_url=s3_endpoint)
        with source.db.read() as s:
            covered = record_blobs(s, [c0, c2])
            everything = record_blobs(s, [rid(n) for n in native.values()])
            only_c0 = record_blobs(s, [c0]) - record_blobs(s, [r for r in map(rid, native.values()) if r != c0])
        assert {sha for sha in everything if dest.lock_status(sha).legal_hold} == covered
        c0_date = record(source, c0).disposition_date
        assert only_c0 and all(dest.lock_status(sha).retain_until == c0_date for sha in only_c0)
    finally:
        source.close()


def test_harvest_locks_new_blobs_until_their_disposition_date_and_flags_held_ones(
        arch: Archive, ids: dict[str, str], fb: SimulatedFacebook, clock: FakeClock) -> None:
    # The bucket's default lock is one day; each harvested version is locked until its record's date.
    p1 = record(arch, ids["p1"])
    assert p1.disposition_date is not None and p1.disposition_date > clock.now() + timedelta(days=20)
    for sha in blobs_of(arch, ids["p1"]):
        until = arch.blobs.lock_status(sha).retain_until
        assert until is not None and until >= p1.disposition_date - timedelta(seconds=1)
    # A record under hold that is edited on the platform: its new version's blob is flagged at harvest.
    create_hold(arch, "smith", [ids["p0"]], matter="Smith v. City", actor="custodian")
    before = blobs_of(arch, ids["p0"])
    fb.edit_post(record(arch, ids["p0"]).native_id, "Road closure on Main Street: reopened")
    clock.advance(minutes=5)
    harvest(arch)
    new = blobs_of(arch, ids["p0"]) - before
    assert new and flagged(arch, new) == new
