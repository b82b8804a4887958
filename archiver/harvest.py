"""One harvest of one account: plan, walk the connector, store pages, conclude removals, record the run.

``harvest_account`` never raises for a platform, config or storage problem: the outcome is written to
the harvest-run row and returned, so a scheduler can call it unattended.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from .archive import Archive
from .audit import AuditLog
from .capture import SYSTEM_ACTOR, CaptureSession
from .config import AccountConfig
from .connectors.base import Page, SaveState, WalkComplete, WalkFailed, WalkPlan
from .connectors.http import HttpClient
from .db.models import Account, HarvestRun
from .db.types import dumps
from .errors import AccountBusy, ArchiverError, AuthError, BlobError, ConfigError, ConnectorError
from .lease import AccountLease

log = logging.getLogger(__name__)
EVENT_KEYS = ("edited", "hidden", "unhidden", "removed", "restored")


@dataclass
class RunResult:
    """The outcome of one harvest, in the shape `harvest --json` prints."""

    account: str
    status: str
    run_id: int | None = None
    new_records: int = 0
    new_versions: int = 0
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENT_KEYS, 0))
    pages: int = 0
    items_seen: int = 0
    error: str | None = None
    duration_s: float = 0.0
    busy: bool = False  # not run at all: another harvest of the account holds its lease
    changed_records: set[str] = field(default_factory=set, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON keys (plus a few extra)."""
        return {"account": self.account, "status": self.status, "run_id": self.run_id,
                "new_records": self.new_records, "new_versions": self.new_versions, "events": dict(self.events),
                "pages": self.pages, "items_seen": self.items_seen, "error": self.error,
                "duration_s": round(self.duration_s, 3), "busy": self.busy}


def ensure_account(archive: Archive, acc: AccountConfig) -> int:
    """The account's row id, created on first use; a name reused for another platform is refused."""
    with archive.db.write() as s:
        row = s.execute(select(Account).where(Account.name == acc.name)).scalar_one_or_none()
        if row is None:
            row = Account(name=acc.name, platform=acc.connector, created_at=archive.clock.now())
            s.add(row)
            s.flush()
            audit = AuditLog(s)
            audit.append("account.created", f"account:{acc.name}", {"platform": acc.connector}, SYSTEM_ACTOR,
                         archive.clock.now())
            audit.flush()
        elif row.platform != acc.connector:
            raise ConfigError(f"accounts[{acc.name}].connector is {acc.connector!r} but the archive holds this "
                              f"account's records from {row.platform!r}: use a new account name")
        return row.id


STALE_ELSEWHERE = timedelta(hours=12)


def _mark_interrupted(archive: Archive, account_id: int) -> None:
    """Runs left 'running' were interrupted if their process on this host is gone, or, for runs of
    another host (whose processes we cannot see), if they started more than STALE_ELSEWHERE ago."""
    host = socket.gethostname()
    now = archive.clock.now()
    with archive.db.write() as s:
        for run in s.execute(select(HarvestRun).where(HarvestRun.account_id == account_id,
                                                      HarvestRun.status == "running")).scalars():
            if run.host == host:
                if run.pid is not None and _alive(run.pid):
                    continue
            elif run.started_at > now - STALE_ELSEWHERE:
                continue
            run.status = "failed"
            run.finished_at = run.finished_at or archive.clock.now()
            run.error = "interrupted: the process ended before the run finished"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def harvest_account(archive: Archive, acc: AccountConfig, *, trigger: str = "manual",
                    rng: random.Random | None = None,
                    should_stop: Callable[[], bool] | None = None) -> RunResult:
    """Harvest one account now; the outcome is in the returned result and the harvest-run row.

    ``should_stop`` is asked after every stored page: when it says yes the run ends there (status
    partial, nothing concluded about removals), so a shutdown never leaves half a page behind.

    While another harvest of the account runs (any process, any host on the same database) this one
    does nothing: status "failed", ``busy`` true, no harvest-run row (the other run is the record).
    """
    started = time.monotonic()
    result = RunResult(account=acc.name, status="failed")
    try:
        lease = AccountLease(archive.db, acc.name)
    except AccountBusy as exc:
        result.error, result.busy = str(exc), True
        result.duration_s = time.monotonic() - started
        log.warning("harvest %s: %s", acc.name, exc)
        return result
    except Exception as exc:  # noqa: BLE001 - e.g. the database is unreachable; never raise to the scheduler
        result.error = f"cannot take the account's harvest lease: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        log.error("harvest %s: %s", acc.name, result.error)
        return result
    try:
        return _harvest_leased(archive, acc, result, started, trigger, rng, should_stop)
    finally:
        lease.release()


def _harvest_leased(archive: Archive, acc: AccountConfig, result: RunResult, started: float, trigger: str,
                    rng: random.Random | None, should_stop: Callable[[], bool] | None) -> RunResult:
    try:
        account_id = ensure_account(archive, acc)
        series = archive.series_for(acc)
        cls = archive.registry.get(acc.connector)
        _mark_interrupted(archive, account_id)
    except ArchiverError as exc:
        result.error = str(exc)
        log.error("harvest %s: %s", acc.name, exc)
        return result

    now = archive.clock.now()
    with archive.db.read() as s:
        had_ok = s.execute(select(HarvestRun.id).where(HarvestRun.account_id == account_id,
                                                       HarvestRun.status == "ok").limit(1)).first()
        saved = s.get(Account, account_id).connector_state  # type: ignore[union-attr]
    plan = WalkPlan(backfill=had_ok is None, since=None if had_ok is None else now - acc.lookback,
                    state=json.loads(saved) if saved else {})
    new_state: dict[str, str] | None = None
    with archive.db.write() as s:
        run = HarvestRun(account_id=account_id, started_at=now, status="running", trigger=trigger,
                         backfill=plan.backfill, host=socket.gethostname(), pid=os.getpid())
        s.add(run)
        s.flush()
        result.run_id = run.id

    session = CaptureSession(archive.db, archive.blobs, archive.clock, account_id=account_id,
                             account_name=acc.name, platform=acc.connector, run_id=result.run_id,
                             series=series, can_detect_removal=cls.can_detect_removal)
    http: HttpClient | None = None
    try:
        secrets = [v for k in cls.secret_keys if (v := acc.secret(k))]
        http = HttpClient(secrets=secrets, clock=archive.clock, rng=rng or random.Random())
        connector = cls(acc, http, archive.clock)
        for ev in connector.walk(plan):
            if isinstance(ev, Page):
                session.store_page(ev.scope, ev.exchange, ev.items)
                if should_stop is not None and should_stop():
                    session.failed_scopes.append((ev.scope, "stopped: the archiver is shutting down"))
                    break
            elif isinstance(ev, WalkComplete):
                session.conclude(ev, connector.probe)
            elif isinstance(ev, WalkFailed):
                session.store_failure(ev)
            elif isinstance(ev, SaveState):
                new_state = {str(k): str(v) for k, v in ev.values.items()}
        if session.failed_scopes:
            result.status = "partial"
            first = session.failed_scopes[0]
            more = len(session.failed_scopes) - 1
            result.error = f"{first[0].label()}: {first[1]}" + (f" (and {more} more incomplete walks)" if more else "")
        else:
            result.status = "ok"
    except AuthError as exc:
        result.status, result.error = "failed", str(exc)
    except ConnectorError as exc:
        result.status, result.error = "partial", str(exc)
    except (ConfigError, BlobError) as exc:
        result.status, result.error = "failed", str(exc)
    except ArchiverError as exc:
        result.status, result.error = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - a scheduled job must never raise into the scheduler
        log.exception("harvest %s: unexpected error", acc.name)
        result.status, result.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
    if result.error and http is not None:
        result.error = http.scrub(result.error)

    c = session.counts
    result.new_records, result.new_versions = c.new_records, c.new_versions
    result.pages, result.items_seen = c.pages, c.items_seen
    result.changed_records = c.changed_records
    for k in EVENT_KEYS:
        result.events[k] = c.events.get(k, 0)
    result.duration_s = time.monotonic() - started
    _finish_run(archive, result, account_id, new_state if result.status == "ok" else None)
    if result.pages or result.changed_records:
        # One index writer per harvest, after the DB commits; a crash in between is repaired by the
        # high-water mark at the next harvest or search.
        from .search.indexer import catch_up_quietly

        catch_up_quietly(archive)
    if (result.new_records or result.new_versions) and result.run_id is not None:
        _lock_quietly(archive, result.run_id)
    log.info("harvest account=%s status=%s new_records=%d new_versions=%d events=%s duration=%.1fs%s",
             acc.name, result.status, result.new_records, result.new_versions,
             ",".join(f"{k}:{v}" for k, v in result.events.items() if v) or "none", result.duration_s,
             f" error={result.error}" if result.error else "")
    return result


def _lock_quietly(archive: Archive, run_id: int) -> None:
    """Object Lock dates and legal-hold flags for the run's new blobs; a failure is logged, never raised
    (the database still holds the truth disposition checks, and the next recompute or hold retries)."""
    from .blob_holds import lock_new_versions

    try:
        out = lock_new_versions(archive, run_id)
    except Exception as exc:  # noqa: BLE001 - a scheduled job must never raise into the scheduler
        log.warning("harvest run %s: blob locks not updated: %s", run_id, exc)
        return
    for err in out["errors"]:
        log.warning("harvest run %s: blob lock: %s", run_id, err)


def _finish_run(archive: Archive, result: RunResult, account_id: int, state: dict[str, str] | None) -> None:
    now = archive.clock.now()
    with archive.db.write() as s:
        if state is not None:
            s.execute(update(Account).where(Account.id == account_id).values(connector_state=dumps(state)))
        s.execute(update(HarvestRun).where(HarvestRun.id == result.run_id).values(
            finished_at=now, status=result.status, pages=result.pages, items_seen=result.items_seen,
            new_records=result.new_records, new_versions=result.new_versions, error=result.error,
            **{k: result.events[k] for k in EVENT_KEYS}))
        audit = AuditLog(s)
        audit.append("harvest.finished", f"run:{result.run_id}",
                     {"account": result.account, "status": result.status, "new_records": result.new_records,
                      "new_versions": result.new_versions, "events": result.events, "error": result.error},
                     SYSTEM_ACTOR, now)
        audit.flush()
