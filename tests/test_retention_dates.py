"""Retention series assignment and disposition dates for every trigger (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from archiver.archive import Archive
from archiver.assignments import assign_series, recompute, set_case_closed
from archiver.db.models import AuditEntry
from archiver.disposition import report
from archiver.durations import RetentionPeriod
from archiver.eligibility import assess
from archiver.errors import ConfigError, UsageError
from archiver.holds import record_blobs
from tests.retention_support import (
    AGENCY_YAML,
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
    a.close()


def standing(arch: Archive, rec_id: str):  # type: ignore[no-untyped-def]
    with arch.db.read() as s:
        return next(assess(arch, s, [rec_id]))


def audits(arch: Archive, action: str) -> list[AuditEntry]:
    with arch.db.read() as s:
        return list(s.execute(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq))
                    .scalars())


def test_account_series_sets_capture_date(arch, fb, clock) -> None:
    ids = seed(fb, clock)
    harvest(arch)
    rec = record(arch, rid(ids["c0"]))
    assert rec.series == "social-media-content"
    assert rec.disposition_date == datetime(2028, 11, 1, 12, 0, tzinfo=UTC)  # 2y from first capture
    st = standing(arch, rec.id)
    assert st.disposition_date == rec.disposition_date and not st.stale and not st.held


def test_each_trigger(arch, fb, clock) -> None:
    ids = seed(fb, clock)
    harvest(arch)
    first = clock.now()
    # capture: 30 days from first capture
    assign_series(arch, "t-capture", [rid(ids["p0"])], "Custodian A", "test")
    assert record(arch, rid(ids["p0"])).disposition_date == first + timedelta(days=30)
    # creation: one calendar month from the platform's created time
    assign_series(arch, "t-creation", [rid(ids["p1"])], "Custodian A")
    created = record(arch, rid(ids["p1"])).created_at
    assert created is not None
    assert record(arch, rid(ids["p1"])).disposition_date == RetentionPeriod.parse("1m").after(created)
    # permanent: never
    assign_series(arch, "t-forever", [rid(ids["c2"])], "Custodian A")
    assert record(arch, rid(ids["c2"])).disposition_date is None
    # removal: nothing while the comment is online; 30 days from when it was found gone
    assign_series(arch, "t-removal", [rid(ids["c0"])], "Custodian A")
    assert record(arch, rid(ids["c0"])).disposition_date is None
    clock.advance(days=3)
    fb.delete_comment(ids["c0"])
    harvest(arch)
    removed_at = record(arch, rid(ids["c0"])).removed_at
    assert removed_at == clock.now()
    assert standing(arch, rid(ids["c0"])).disposition_date == removed_at + timedelta(days=30)
    # request-closed: nothing until a request containing it closes; the latest closing counts
    assign_series(arch, "t-request", [rid(ids["c1"])], "Custodian A")
    assert record(arch, rid(ids["c1"])).disposition_date is None
    add_request(arch, "KORA-2026-0001", [rid(ids["c1"])], closed_at=first + timedelta(days=1))
    add_request(arch, "KORA-2026-0002", [rid(ids["c1"])])
    st = standing(arch, rid(ids["c1"]))
    assert st.disposition_date == first + timedelta(days=31) and st.held and st.open_requests == ["KORA-2026-0002"]
    close_request(arch, "KORA-2026-0002", first + timedelta(days=5))
    st = standing(arch, rid(ids["c1"]))
    assert st.disposition_date == first + timedelta(days=35) and not st.held
    # case-closed: nothing until the custodian records the case's closing
    assign_series(arch, "t-case", [rid(ids["p0"])], "Custodian A")
    assert record(arch, rid(ids["p0"])).disposition_date is None
    closed = datetime(2027, 3, 31, 5, 0, tzinfo=UTC)
    doc = set_case_closed(arch, [rid(ids["p0"])], closed, "Custodian B", "IA-26-014")
    assert doc["records"][0]["disposition_date"] == "2028-03-31T05:00:00Z"
    assert record(arch, rid(ids["p0"])).disposition_date == datetime(2028, 3, 31, 5, 0, tzinfo=UTC)
    # recompute brings the cached columns in line (removal and request dates moved above)
    res = recompute(arch, "Custodian C")
    assert {c["record_id"] for c in res["records"]} == {rid(ids["c0"]), rid(ids["c1"])}
    assert record(arch, rid(ids["c0"])).disposition_date == removed_at + timedelta(days=30)
    assert recompute(arch, "Custodian C")["changed"] == 0
    # audited per record, with the actor
    assigned = audits(arch, "retention.assigned")
    assert {a.subject for a in assigned} >= {rid(ids["p0"]), rid(ids["c0"])}
    assert all(a.actor == "Custodian A" for a in assigned)
    assert [a.actor for a in audits(arch, "retention.case_closed")] == ["Custodian B"]
    assert {a.actor for a in audits(arch, "retention.recomputed")} == {"Custodian C"}


def test_restored_item_under_removal_series_is_not_eligible(arch, fb, clock) -> None:
    ids = seed(fb, clock)
    harvest(arch)
    assign_series(arch, "t-removal", [rid(ids["c0"])], "Custodian A")
    fb.delete_comment(ids["c0"])
    clock.advance(hours=1)
    harvest(arch)
    assert standing(arch, rid(ids["c0"])).disposition_date is not None
    # A hand edit that clears removed_at leaves nothing to count from.
    from sqlalchemy import update

    from archiver.db.models import Record

    with arch.db.write() as s:
        s.execute(update(Record).where(Record.id == rid(ids["c0"])).values(removed_at=None))
    assert standing(arch, rid(ids["c0"])).disposition_date is None


def test_changed_schedule_recomputes_dates(tmp_path, db_url, clock, registry, fb, arch, monkeypatch) -> None:
    ids = seed(fb, clock)
    harvest(arch)
    assign_series(arch, "t-capture", [rid(ids["c0"])], "Custodian A")
    before = record(arch, rid(ids["c0"])).disposition_date
    # The agency lengthens the series in its file; a new process sees the change.
    (tmp_path / "schedules" / "agency.yaml").write_text(
        AGENCY_YAML.replace("retention: 30d\n    trigger: capture\n    action: destroy",
                            "retention: 90d\n    trigger: capture\n    action: destroy"), encoding="utf-8")
    arch2 = open_archive(tmp_path, db_url, clock, registry, fb, init=False)
    locks: list[tuple[str, datetime]] = []
    monkeypatch.setattr(arch2.blobs, "enforces_locks", lambda: True)  # as an Object Lock bucket does
    monkeypatch.setattr(arch2.blobs, "protect", lambda sha, until: locks.append((sha, until)))
    try:
        rep = report(arch2)
        assert rep["stale_dates"] == 1
        res = recompute(arch2, "Custodian A")
        # the store's retention (S3 Object Lock) is extended to the later date, for the record's blobs
        with arch2.db.read() as s:
            assert {sha for sha, _ in locks} == record_blobs(s, [rid(ids["c0"])])
        assert {until for _, until in locks} == {before + timedelta(days=60)}
        assert res["changed"] == 1 and res["records"][0]["previous"] is not None
        assert record(arch2, rid(ids["c0"])).disposition_date == before + timedelta(days=60)
        summary = [a for a in audits(arch2, "retention.recomputed") if a.subject is None]
        assert summary and '"retention":"90d"' in summary[-1].details
    finally:
        arch2.close()


def test_account_series_change_applies_to_its_records(tmp_path, db_url, clock, registry, fb, arch) -> None:
    ids = seed(fb, clock)
    harvest(arch)
    assign_series(arch, "t-capture", [rid(ids["c0"])], "Custodian A")  # an override survives
    arch2 = open_archive(tmp_path, db_url, clock, registry, fb, series="social-media-content-wa", init=False)
    try:
        recompute(arch2, "Custodian A")
        assert record(arch2, rid(ids["p0"])).series == "social-media-content-wa"
        assert record(arch2, rid(ids["p0"])).disposition_date is None  # still online
        assert record(arch2, rid(ids["c0"])).series == "t-capture"
    finally:
        arch2.close()


def test_assign_refuses_unknown_series_and_missing_records(arch, fb, clock) -> None:
    seed(fb, clock)
    harvest(arch)
    with pytest.raises(UsageError, match="unknown retention series 'nope'"):
        assign_series(arch, "nope", [rid("x")], "A")


def test_an_account_series_no_schedule_defines_is_a_config_error(tmp_path, db_url, clock, registry, fb,
                                                                 arch) -> None:
    seed(fb, clock)
    harvest(arch)
    bad = open_archive(tmp_path, db_url, clock, registry, fb, series="no-such-series", init=False)
    try:  # not records quietly without a date: a recompute would clear the account's dates
        with pytest.raises(ConfigError, match=r"accounts\[apd-facebook\]\.series: unknown retention series"):
            report(bad)
        with pytest.raises(ConfigError, match="no-such-series"):
            recompute(bad, "A")
    finally:
        bad.close()
