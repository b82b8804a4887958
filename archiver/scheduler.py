"""`archiver run`: APScheduler 3 in the foreground, one job per account plus housekeeping.

Job state lives in the metadata database (APScheduler's SQLAlchemy job store, table ``scheduler_jobs``),
so next-run times survive a restart. Jobs never raise into the scheduler: every harvest writes its
harvest-run row, and consecutive failures push the account's next run further out (capped).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from .archive import Archive
from .clock import Clock, SystemClock
from .config import AccountConfig, Settings
from .db.models import Account, HarvestRun
from .harvest import harvest_account
from .plugins import ConnectorRegistry
from .verify import verify_archive

log = logging.getLogger(__name__)
JOBS_TABLE = "scheduler_jobs"
FIXITY_JOB = "housekeeping:fixity"
INDEX_JOB = "housekeeping:index"

# APScheduler persists a job as a reference to a module-level function plus its arguments, so the
# function needs a way back to the live runner; this is process state (set by Runner.start), not config.
_active: list[Runner] = []


def job_id(account: str) -> str:
    """The stable job id of an account's harvest job."""
    return f"harvest:{account}"


def _run_job(kind: str, name: str) -> None:
    """Entry point APScheduler calls (by reference) for every persisted job."""
    if not _active:
        log.warning("job %s:%s fired with no runner active", kind, name)
        return
    runner = _active[-1]
    if kind == "harvest":
        runner.run_account(name)
    elif kind == "fixity":
        runner.fixity_sweep()
    elif kind == "index":
        runner.index_catch_up()


def trigger_for(acc: AccountConfig, timezone: str) -> BaseTrigger:
    """The account's schedule: its cron expression, or every N."""
    if acc.cron:
        return CronTrigger.from_crontab(acc.cron, timezone=timezone)
    return IntervalTrigger(seconds=int(acc.every.total_seconds()), timezone=timezone)


def consecutive_failures(archive: Archive, account: str, limit: int = 20) -> int:
    """How many of the account's latest finished runs failed in a row."""
    with archive.db.read() as s:
        rows = s.execute(select(HarvestRun.status).join(Account, Account.id == HarvestRun.account_id)
                         .where(Account.name == account, HarvestRun.status != "running")
                         .order_by(HarvestRun.id.desc()).limit(limit)).scalars()
        n = 0
        for status in rows:
            if status != "failed":
                break
            n += 1
        return n


def backoff_delay(acc: AccountConfig, failures: int, cap: timedelta) -> timedelta:
    """Delay before retrying an account that failed ``failures`` times in a row (doubling, capped)."""
    base = acc.every if not acc.cron else timedelta(minutes=15)
    return min(base * (2 ** min(failures, 20)), cap)


class Runner:
    """Owns the archive and the scheduler for one `archiver run` process."""

    def __init__(self, load_settings: Callable[[], Settings], *, registry: ConnectorRegistry | None = None,
                 clock: Clock | None = None, max_workers: int = 4):
        self._load = load_settings
        self.settings = load_settings()
        self.registry = registry or ConnectorRegistry.discover()
        self.clock = clock or SystemClock()
        self.archive = Archive.open(self.settings, clock=self.clock, registry=self.registry)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        tz = self.settings.agency.timezone
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.archive.db.engine, tablename=JOBS_TABLE)},
            executors={"default": ThreadPoolExecutor(max_workers)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": int(self.settings.scheduler.misfire_grace.total_seconds())},
            timezone=tz,
        )

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start paused, bring jobs in line with the config, then let them run."""
        _active.append(self)
        self.scheduler.start(paused=True)
        self.sync_jobs()
        self.scheduler.resume()

    def stop(self, wait: bool = True) -> None:
        """Ask running harvests to stop after their current page, then shut the scheduler down."""
        self.stopping.set()
        if self.scheduler.running:
            self.scheduler.pause()  # no new job starts while the running ones finish their page
            self.scheduler.shutdown(wait=wait)
        if self in _active:
            _active.remove(self)
        self.archive.close()

    def reload(self) -> dict[str, str]:
        """Re-read the config file (SIGHUP) and add, change or remove jobs to match."""
        with self._lock:
            self.settings = self._load()
            self.archive.settings = self.settings
        return self.sync_jobs()

    # --- jobs --------------------------------------------------------------------------------
    def sync_jobs(self) -> dict[str, str]:
        """Make the job store hold exactly one job per enabled account; keeps persisted next-run times."""
        tz = self.settings.agency.timezone
        wanted = {job_id(a.name): a for a in self.settings.accounts if a.enabled}
        actions: dict[str, str] = {}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("harvest:") and job.id not in wanted:
                self.scheduler.remove_job(job.id)
                actions[job.id] = "removed"
        for jid, acc in wanted.items():
            trig = trigger_for(acc, tz)
            job = self.scheduler.get_job(jid)
            if job is not None and str(job.trigger) == str(trig):
                actions[jid] = "kept"
                continue
            self.scheduler.add_job(_run_job, trig, args=["harvest", acc.name], id=jid, name=f"harvest {acc.name}",
                                   replace_existing=True, next_run_time=self._now())
            actions[jid] = "added" if job is None else "changed"
        if self.scheduler.get_job(INDEX_JOB) is None:
            # Harvests keep the index current; this nightly pass repairs it after any crash or outage.
            self.scheduler.add_job(_run_job, CronTrigger(hour=3, minute=17, timezone=tz), args=["index", ""],
                                   id=INDEX_JOB, name="nightly search index catch-up", replace_existing=True)
        if self.scheduler.get_job(FIXITY_JOB) is None:
            self.scheduler.add_job(_run_job, IntervalTrigger(days=1, timezone=tz), args=["fixity", ""],
                                   id=FIXITY_JOB, name="daily fixity sweep", replace_existing=True)
        for jid, what in sorted(actions.items()):
            if what != "kept":
                log.info("scheduler: job %s %s", jid, what)
        return actions

    def run_account(self, name: str) -> None:
        """One scheduled harvest; never raises. Backs the account off after consecutive failures."""
        if self.stopping.is_set():
            return
        try:
            acc = self.settings.account(name)
            result = harvest_account(self.archive, acc, trigger="schedule", should_stop=self.stopping.is_set)
            if result.status == "failed" and not self.stopping.is_set():
                n = consecutive_failures(self.archive, name)
                delay = backoff_delay(acc, n, self.settings.scheduler.backoff_max)
                when = self._now() + delay
                self.scheduler.modify_job(job_id(name), next_run_time=when)
                log.warning("account %s failed %d time(s) in a row; next attempt at %s", name, n, when.isoformat())
        except Exception:  # noqa: BLE001 - a job must never raise into the scheduler
            log.exception("scheduled harvest of %s could not run", name)

    def fixity_sweep(self) -> None:
        """Re-verify blobs not checked for [scheduler] fixity_days; never raises."""
        try:
            older = self.clock.now() - timedelta(days=self.settings.scheduler.fixity_days)
            rep = verify_archive(self.archive, older_than=older)
            level = logging.INFO if rep.ok else logging.ERROR
            log.log(level, "fixity sweep: %d blobs checked, %d bad, audit chain %s", rep.blobs_checked,
                    len(rep.blobs_bad), "intact" if rep.audit_ok else f"broken at entry {rep.first_bad_entry}")
        except Exception:  # noqa: BLE001
            log.exception("fixity sweep could not run")

    def index_catch_up(self) -> None:
        """Bring the search index up to the archive (never raises)."""
        from .search.indexer import catch_up_quietly

        n = catch_up_quietly(self.archive)
        if n is not None:
            log.info("search index: %d records caught up", n)

    def _now(self) -> datetime:
        return self.clock.now()


def next_run_times(archive: Archive) -> dict[str, datetime]:
    """Persisted next-run time of every job (read from the job store's table, no scheduler needed)."""
    from datetime import UTC

    from sqlalchemy import inspect, text

    if JOBS_TABLE not in inspect(archive.db.engine).get_table_names():
        return {}
    with archive.db.engine.connect() as conn:
        rows = conn.execute(text(f"SELECT id, next_run_time FROM {JOBS_TABLE}"))
        return {jid: datetime.fromtimestamp(t, UTC) for jid, t in rows if t is not None}


def account_status(archive: Archive) -> list[dict[str, Any]]:
    """Per account: last run, its status and counts, next run, records archived, failures in a row."""
    from sqlalchemy import func

    from .db.models import Record

    nxt = next_run_times(archive)
    out = []
    with archive.db.read() as s:
        counts = dict(s.execute(select(Record.account_id, func.count()).group_by(Record.account_id)).all())
        accounts = {a.name: a for a in s.execute(select(Account)).scalars()}
    for acc in archive.settings.accounts:
        row = accounts.get(acc.name)
        last = None
        if row is not None:
            with archive.db.read() as s:
                last = s.execute(select(HarvestRun).where(HarvestRun.account_id == row.id)
                                 .order_by(HarvestRun.id.desc()).limit(1)).scalar_one_or_none()
        fails = consecutive_failures(archive, acc.name) if row is not None else 0
        when = nxt.get(job_id(acc.name))
        out.append({
            "account": acc.name, "connector": acc.connector, "enabled": acc.enabled,
            "schedule": acc.cron or f"every {int(acc.every.total_seconds())}s",
            "records": counts.get(row.id, 0) if row else 0,
            "last_run": None if last is None else {
                "run_id": last.id, "status": last.status, "started_at": _iso(last.started_at),
                "finished_at": _iso(last.finished_at), "new_records": last.new_records,
                "new_versions": last.new_versions, "error": last.error},
            "next_run": _iso(when), "consecutive_failures": fails, "backing_off": fails > 0,
        })
    return out


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None
