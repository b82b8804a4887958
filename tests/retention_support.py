"""Helpers shared by the retention, hold and disposition tests: an archive that knows its account."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from archiver.archive import Archive
from archiver.clock import FakeClock
from archiver.db.models import Record
from archiver.db.request_models import Request, RequestRecord
from archiver.harvest import harvest_account
from archiver.ids import record_id
from archiver.plugins import ConnectorRegistry
from archiver.simulated.facebook import SimulatedFacebook
from tests.conftest import make_settings

TOKEN = "EAAGretentionTOKEN-5c2d"
ACCOUNT = "apd-facebook"

# Short agency series, one per trigger, so every trigger can be exercised in one archive.
AGENCY_YAML = """\
series:
  - id: t-capture
    title: Test capture
    jurisdiction: agency
    retention: 30d
    trigger: capture
    action: destroy
    citation: "Test citation capture"
  - id: t-creation
    title: Test creation
    jurisdiction: agency
    retention: 1m
    trigger: creation
    action: destroy
    citation: "Test citation creation"
  - id: t-removal
    title: Test removal
    jurisdiction: agency
    retention: 30d
    trigger: removal
    action: destroy
    citation: "Test citation removal"
  - id: t-request
    title: Test request closed
    jurisdiction: agency
    retention: 30d
    trigger: request-closed
    action: destroy
    citation: "Test citation request"
  - id: t-case
    title: Test case closed
    jurisdiction: agency
    retention: 1y
    trigger: case-closed
    action: destroy
    citation: "Test citation case"
  - id: t-forever
    title: Test permanent
    jurisdiction: agency
    retention: permanent
    trigger: capture
    action: destroy
    citation: "Test citation permanent"
  - id: t-review
    title: Test review
    jurisdiction: agency
    retention: 30d
    trigger: capture
    action: review
    citation: "Test citation review"
"""


@pytest.fixture(name="fb")
def retention_page(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedFacebook]:
    """The simulated page the retention tests harvest (import it as a fixture; it is requested as "fb")."""
    monkeypatch.setenv("RET_FB_TOKEN", TOKEN)
    with SimulatedFacebook(page_id="1000", token=TOKEN, now=clock.now) as sim:
        yield sim


def open_archive(tmp_path: Path, db_url: str, clock: FakeClock, registry: ConnectorRegistry,
                 fb: SimulatedFacebook, series: str = "social-media-content", init: bool = True) -> Archive:
    """An archive whose config has the simulated page as account and the agency's test schedule."""
    sched = tmp_path / "schedules" / "agency.yaml"
    if not sched.exists():
        sched.parent.mkdir(parents=True, exist_ok=True)
        sched.write_text(AGENCY_YAML, encoding="utf-8")
    acc = {"name": ACCOUNT, "connector": "facebook", "page_id": "1000", "access_token": "$env:RET_FB_TOKEN",
           "api_base": fb.api_base, "series": series, "lookback": "30d"}
    settings = make_settings(tmp_path, db_url, [acc], retention={"schedules": ["schedules/*.yaml"]})
    arch = Archive(settings, clock=clock, registry=registry)
    if init:
        arch.init()
    return arch


def seed(fb: SimulatedFacebook, clock: FakeClock) -> dict[str, str]:
    """Two posts, three comments; returns name -> native id."""
    now = clock.now()
    ids = {"p0": fb.add_post("Road closure on Main Street tonight", created_time=now - timedelta(days=3)),
           "p1": fb.add_post("Community meeting Thursday", created_time=now - timedelta(days=1))}
    ids["c0"] = fb.add_comment(ids["p0"], "zanzibar detour is slow", author=("u1", "Alice Resident"),
                               created_time=now - timedelta(days=2))
    ids["c1"] = fb.add_comment(ids["p0"], "thanks for the notice", author=("u2", "Bob"),
                               created_time=now - timedelta(hours=30))
    ids["c2"] = fb.add_comment(ids["p1"], "what time does it start", author=("u3", "Carol"),
                               created_time=now - timedelta(hours=5))
    return ids


def harvest(arch: Archive) -> None:
    """One harvest of the test account; it must succeed."""
    r = harvest_account(arch, arch.settings.account(ACCOUNT))
    assert r.status == "ok", r.error


def rid(native: str) -> str:
    """The archive id of a native id of the test account."""
    return record_id(ACCOUNT, native)


def record(arch: Archive, rec_id: str) -> Record:
    """One record row as stored now."""
    with arch.db.read() as s:
        rec = s.execute(select(Record).where(Record.id == rec_id)).scalar_one()
        s.expunge(rec)
        return rec


def add_request(arch: Archive, req_id: str, ids: list[str], *, closed_at: datetime | None = None) -> None:
    """An open-records request containing these records (closed when closed_at is given)."""
    now = arch.clock.now()
    with arch.db.write() as s:
        s.add(Request(id=req_id, law="kora", requester="A Reporter", description="road closure comments",
                      received=date(2026, 11, 1), due=date(2026, 11, 4), status="closed" if closed_at else "open",
                      created_at=now, created_by="test", closed_at=closed_at))
        s.flush()
        s.add_all([RequestRecord(request_id=req_id, record_id=r, decision="release", added_at=now) for r in ids])


def close_request(arch: Archive, req_id: str, at: datetime) -> None:
    """Close a request (as the requests work does)."""
    with arch.db.write() as s:
        req = s.get(Request, req_id)
        assert req is not None
        req.status, req.closed_at = "closed", at

