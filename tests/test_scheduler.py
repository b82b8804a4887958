"""`archiver run`: scheduled harvests, backoff, persisted next-run times, reload, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from archiver.config import load_settings
from archiver.db.models import Account, HarvestRun
from archiver.scheduler import (
    FIXITY_JOB,
    INDEX_JOB,
    Runner,
    account_status,
    backoff_delay,
    job_id,
    next_run_times,
)
from archiver.simulated.facebook import SimulatedFacebook, seed_demo

TOKEN = "EAAGschedTOKEN-55e1"


def write_config(path: Path, db_url: str, accounts: list[tuple[str, str, str]], extra: str = "") -> Path:
    """accounts: (name, api_base, every)."""
    text = f'[storage]\ndatabase_url = "{db_url}"\n[scheduler]\nbackoff_max = "4s"\n{extra}\n'
    for name, api_base, every in accounts:
        text += (f'[[accounts]]\nname = "{name}"\nconnector = "facebook"\npage_id = "1000"\n'
                 f'access_token = "$env:SCHED_TOKEN"\napi_base = "{api_base}"\nevery = "{every}"\n')
    path.write_text(text)
    return path


@pytest.fixture
def pages(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SimulatedFacebook, SimulatedFacebook]]:
    monkeypatch.setenv("SCHED_TOKEN", TOKEN)
    with SimulatedFacebook(token=TOKEN) as good, SimulatedFacebook(token=TOKEN) as bad:
        seed_demo(good)
        bad.add_post("hello")
        bad.expire_token()
        yield good, bad


def runs_of(runner: Runner, name: str) -> list[HarvestRun]:
    with runner.archive.db.read() as s:
        return list(s.execute(select(HarvestRun).join(Account, Account.id == HarvestRun.account_id)
                              .where(Account.name == name).order_by(HarvestRun.id)).scalars())


def init(cfg: Path) -> None:
    subprocess.run([sys.executable, "-m", "archiver", "--config", str(cfg), "init"], check=True,
                   capture_output=True)


def test_two_accounts_one_failing_backs_off_and_the_other_keeps_going(tmp_path, db_url, pages) -> None:
    good, bad = pages
    cfg = write_config(tmp_path / "archiver.toml", db_url,
                       [("good-page", good.api_base, "1s"), ("bad-page", bad.api_base, "1s")])
    init(cfg)
    runner = Runner(lambda: load_settings(cfg))
    runner.start()
    try:
        time.sleep(7.5)
    finally:
        runner.stop()
    runner = Runner(lambda: load_settings(cfg))  # a fresh view of the database
    ok_runs, bad_runs = runs_of(runner, "good-page"), runs_of(runner, "bad-page")
    assert len(ok_runs) >= 3 and all(r.status == "ok" for r in ok_runs[:-1]), [r.status for r in ok_runs]
    # The last one may have been cut short by runner.stop(): then it says so.
    assert ok_runs[-1].status == "ok" or "shutting down" in (ok_runs[-1].error or "")
    assert all(r.trigger == "schedule" for r in ok_runs + bad_runs)
    assert 2 <= len(bad_runs) <= 4  # 1 s interval, but 2 s then 4 s apart after failures
    assert all(r.status == "failed" and "access token" in r.error for r in bad_runs)
    starts = [r.started_at for r in bad_runs]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps[0] >= 1.5  # backed off (2 s after one failure) instead of the 1 s interval
    if len(gaps) > 1:
        assert gaps[1] >= 3.5  # doubled, and capped by backoff_max = 4s
    status = {r["account"]: r for r in account_status(runner.archive)}
    assert status["bad-page"]["backing_off"] and status["bad-page"]["consecutive_failures"] == len(bad_runs)
    assert status["good-page"]["records"] > 50 and not status["good-page"]["backing_off"]
    runner.archive.close()


def test_backoff_is_capped() -> None:
    from datetime import timedelta

    from archiver.config import AccountConfig

    acc = AccountConfig(name="a", connector="facebook", every=timedelta(minutes=15))
    assert backoff_delay(acc, 1, timedelta(hours=6)) == timedelta(minutes=30)
    assert backoff_delay(acc, 10, timedelta(hours=6)) == timedelta(hours=6)


def test_restart_keeps_next_run_times_and_does_not_double_run(tmp_path, db_url, pages) -> None:
    good, _ = pages
    cfg = write_config(tmp_path / "archiver.toml", db_url, [("good-page", good.api_base, "1h")])
    init(cfg)
    runner = Runner(lambda: load_settings(cfg))
    runner.start()
    deadline = time.time() + 20
    while time.time() < deadline and not [r for r in runs_of(runner, "good-page") if r.status != "running"]:
        time.sleep(0.2)
    runner.stop()
    runner = Runner(lambda: load_settings(cfg))
    first = next_run_times(runner.archive)[job_id("good-page")]
    assert len(runs_of(runner, "good-page")) == 1
    runner.start()
    assert runner.sync_jobs()[job_id("good-page")] == "kept"
    assert runner.scheduler.get_job(FIXITY_JOB) is not None and runner.scheduler.get_job(INDEX_JOB) is not None
    runner.index_catch_up()  # nothing new since the harvest indexed: a no-op that must not raise
    time.sleep(2)
    runner.stop()
    runner = Runner(lambda: load_settings(cfg))
    assert len(runs_of(runner, "good-page")) == 1
    assert next_run_times(runner.archive)[job_id("good-page")] == first
    runner.archive.close()


def test_reload_adds_changes_and_removes_jobs(tmp_path, db_url, pages) -> None:
    good, bad = pages
    cfg = write_config(tmp_path / "archiver.toml", db_url, [("good-page", good.api_base, "1h")])
    init(cfg)
    runner = Runner(lambda: load_settings(cfg))
    runner.scheduler.start(paused=True)
    try:
        assert runner.sync_jobs() == {job_id("good-page"): "added"}
        write_config(cfg, db_url, [("good-page", good.api_base, "2h"), ("other-page", bad.api_base, "1h")])
        runner.reload()
        assert {j.id for j in runner.scheduler.get_jobs()} == {job_id("good-page"), job_id("other-page"),
                                                              FIXITY_JOB, INDEX_JOB}
        assert "2:00:00" in str(runner.scheduler.get_job(job_id("good-page")).trigger)
        write_config(cfg, db_url, [("other-page", bad.api_base, "1h")])
        assert runner.reload() == {job_id("good-page"): "removed", job_id("other-page"): "kept"}
    finally:
        runner.stop(wait=False)


def test_sigterm_during_a_harvest_finishes_the_page_and_restart_resumes(tmp_path, db_url, pages) -> None:
    good, _ = pages
    cfg = write_config(tmp_path / "archiver.toml", db_url, [("good-page", good.api_base, "1h")])
    init(cfg)
    env = {**os.environ, "SCHED_TOKEN": TOKEN}
    good.hold_after(good.request_count + 4)
    proc = subprocess.Popen([sys.executable, "-m", "archiver", "--config", str(cfg), "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert good.holding.wait(30), "the scheduled harvest never reached the gate"
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        good.release()
        out, err = proc.communicate(timeout=60)
    finally:
        good.release()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "archiver stopped" in err
    runner = Runner(lambda: load_settings(cfg))
    (run,) = runs_of(runner, "good-page")
    assert run.status == "partial" and "shutting down" in run.error
    assert run.pages >= 4
    runner.archive.close()
    verify = subprocess.run([sys.executable, "-m", "archiver", "--config", str(cfg), "verify", "--json"],
                            env=env, capture_output=True, text=True)
    assert verify.returncode == 0 and json.loads(verify.stdout)["audit_ok"]
    # The interrupted harvest is rerun by hand and completes the archive.
    h = subprocess.run([sys.executable, "-m", "archiver", "--config", str(cfg), "harvest", "--json"], env=env,
                       capture_output=True, text=True)
    assert json.loads(h.stdout)["runs"][0]["status"] == "ok"
