"""Two `archiver harvest` processes on one account at once (SQLite and PostgreSQL): one harvests, the
other reports the account busy; nothing is duplicated; a later harvest works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from archiver.archive import Archive
from archiver.config import load_settings
from archiver.db.engine import Database
from archiver.db.models import HarvestRun, Record, Version
from archiver.errors import AccountBusy
from archiver.lease import AccountLease
from archiver.simulated.facebook import SimulatedFacebook

TOKEN = "EAAGleaseTESTtoken-99a1"
NOW = datetime.now(UTC).replace(microsecond=0)
CONFIG = """
[storage]
database_url = "{db_url}"

[[accounts]]
name = "lease-facebook"
connector = "facebook"
page_id = "4000"
access_token = "$env:TEST_FB_TOKEN"
api_base = "{api_base}"
page_size = 2
"""


def harvest_cmd(cfg: Path) -> list[str]:
    return [sys.executable, "-m", "archiver", "--config", str(cfg), "harvest", "--json"]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "ARCHIVER_CONFIG"}
    e["TEST_FB_TOKEN"] = TOKEN
    return e


def counts(db_url: str) -> tuple[int, int, int]:
    db = Database(db_url)
    try:
        with db.read() as s:
            recs = s.execute(select(func.count()).select_from(Record)).scalar_one()
            distinct = s.execute(select(func.count(func.distinct(Record.native_id)))).scalar_one()
            vers = s.execute(select(func.count()).select_from(Version)).scalar_one()
            assert recs == distinct
            return recs, vers, s.execute(select(func.count()).select_from(HarvestRun)).scalar_one()
    finally:
        db.dispose()


def test_second_harvest_of_a_busy_account_is_refused_and_nothing_is_duplicated(db_url: str, tmp_path: Path) -> None:
    with SimulatedFacebook(page_id="4000", token=TOKEN, now=lambda: NOW) as fb:
        for i in range(4):
            post = fb.add_post(f"Post {i}", created_time=NOW - timedelta(days=4 - i))
            for j in range(3):
                fb.add_comment(post, f"comment {j} on {i}", created_time=NOW - timedelta(days=3 - i, hours=-j))
        cfg = tmp_path / "archiver.toml"
        cfg.write_text(CONFIG.format(db_url=db_url, api_base=fb.api_base))
        with Archive(load_settings(cfg)) as arch:
            arch.init()

        # The first harvest stores a page, then waits for the network at request 3 (the gate).
        fb.hold_after(fb.request_count + 2)
        out = tmp_path / "first.out"
        with out.open("wb") as f:
            first = subprocess.Popen(harvest_cmd(cfg), stdout=f, stderr=subprocess.PIPE, env=env())
        try:
            deadline = time.monotonic() + 30
            while not fb.holding.is_set():
                assert first.poll() is None, first.stderr.read() if first.stderr else ""
                assert time.monotonic() < deadline, "the first harvest never reached the gate"
                time.sleep(0.02)
            requests_before = fb.request_count
            second = subprocess.run(harvest_cmd(cfg), capture_output=True, text=True, env=env(), timeout=30)
            assert fb.request_count == requests_before  # the busy run never touched the platform
        finally:
            fb.release()
            first.wait(timeout=60)
        assert second.returncode == 1, second.stderr
        (busy,) = json.loads(second.stdout)["runs"]
        assert busy["status"] == "failed" and busy["busy"] is True and busy["run_id"] is None
        assert busy["error"].startswith("account lease-facebook is busy: another harvest is running (")
        assert f"pid {first.pid}" in busy["error"]
        assert first.returncode == 0
        (ok,) = json.loads(out.read_text())["runs"]
        assert ok["status"] == "ok" and ok["busy"] is False and ok["new_records"] == 16
        assert counts(db_url) == (16, 16, 1)  # the busy attempt left no run row, record or version

        third = subprocess.run(harvest_cmd(cfg), capture_output=True, text=True, env=env(), timeout=60)
        assert third.returncode == 0, third.stderr
        (again,) = json.loads(third.stdout)["runs"]
        assert (again["status"], again["new_records"], again["new_versions"]) == ("ok", 0, 0)
        assert counts(db_url) == (16, 16, 2)


def test_lease_is_exclusive_per_account_and_freed_on_release(db_url: str) -> None:
    db = Database(db_url)
    try:
        with AccountLease(db, "acct-a"):
            with pytest.raises(AccountBusy, match=r"account acct-a is busy: .*pid " + str(os.getpid())):
                AccountLease(db, "acct-a")
            AccountLease(db, "acct-b").release()  # other accounts are not blocked
        AccountLease(db, "acct-a").release()  # free again after release
    finally:
        db.dispose()
