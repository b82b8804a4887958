"""DESIGN invariant 3: killing a harvest (SIGKILL) at any point and harvesting again leaves exactly the
archive of one clean run: no duplicate record, version or event, nothing lost, `verify` still passes.

A reference archive (SQLite, built once per module by clean `archiver init` / `harvest` processes) is
compared, on its logical content, with an archive on the database under test whose `archiver harvest`
processes were killed again and again before one was allowed to finish. Three kinds of kill:

- gated: the simulated Graph API holds request n+1, so the child has stored what it read so far and is
  waiting for the network;
- in a transaction: a hook in the child (a sitecustomize this file writes, loaded only for these runs)
  stops it just before a chosen SQL statement, inside an open write transaction;
- timed: a seeded random delay after letting a held request through, wherever that lands.

After every kill the archive must hold only whole pages (nothing a clean run would not have, every record
with its versions and events); after the rerun it must equal the reference.

Both archives read the same page: the simulator runs on a fixed clock and is seeded identically, so its
items (and their SHA-256) are byte-identical on every instance.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from archiver.archive import Archive
from archiver.config import load_settings
from archiver.db.models import Blob, Event, HarvestRun, Record, Version
from archiver.harvest import harvest_account
from archiver.simulated.facebook import SimulatedFacebook

TOKEN = "EAAGcrashSAFETYtoken-4c2e91"
TOKEN_ENV = "TEST_FB_TOKEN"
PAGE_ID = "3000"
# The simulator's clock: fixed, so every instance serves byte-identical items (edit times included).
NOW = datetime.now(UTC).replace(microsecond=0)
WAIT_TIMEOUT = 30.0  # for a child to reach its kill point
SIGKILLED = -signal.SIGKILL

CONFIG = """
[agency]
name = "Crash Test Police Department"
bates_prefix = "CTP"
state = "KS"

[storage]
database_url = "{db_url}"
blobs = "data/blobs"
index_dir = "data/index"
exports_dir = "data/exports"

[[accounts]]
name = "ctpd-facebook"
connector = "facebook"
page_id = "{page_id}"
access_token = "$env:{token_env}"
api_base = "{api_base}"
page_size = 2
lookback = "30d"
"""

# Loaded by the child (through PYTHONPATH) only for in-transaction kills: before the NTH SQL statement
# matching PATTERN is executed, write MARKER and wait to be killed.
PAUSE_HOOK = """
import os

if os.environ.get("CRASH_TEST_PAUSE_PATTERN"):
    import re
    import time

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    _pattern = re.compile(os.environ["CRASH_TEST_PAUSE_PATTERN"])
    _nth = int(os.environ["CRASH_TEST_PAUSE_NTH"])
    _marker = os.environ["CRASH_TEST_PAUSE_MARKER"]
    _matches = [0]

    @event.listens_for(Engine, "before_cursor_execute")
    def _pause(conn, cursor, statement, parameters, context, executemany):
        if _pattern.search(statement):
            _matches[0] += 1
            if _matches[0] == _nth:
                with open(_marker, "w") as f:
                    f.write(statement)
                while True:
                    time.sleep(60)
"""


# -- the simulated page ------------------------------------------------------------------------------
def seed_page(fb: SimulatedFacebook) -> dict[str, str]:
    """7 posts (4 feed pages of 2), 20 comments and replies, 17 API pages in all; one comment hidden."""
    ids: dict[str, str] = {}
    # Older than the 30-day lookback: only a backfill reads it (and so a rerun after a killed backfill
    # must be a backfill again).
    ids["old"] = fb.add_post("An old post, outside the lookback window", created_time=NOW - timedelta(days=60))
    ids["c_old"] = fb.add_comment(ids["old"], "an old comment", author=("u80", "Old Timer"),
                                  created_time=NOW - timedelta(days=59))
    for i in range(6):
        ids[f"p{i}"] = fb.add_post(f"Post {i}: notice from the department", created_time=NOW - timedelta(days=6 - i))

    def comments(post: int, n: int) -> None:
        for j in range(n):
            ids[f"c{post}{j}"] = fb.add_comment(
                ids[f"p{post}"], f"comment {j} on post {post}", author=(f"u{post}{j}", f"Resident {post}-{j}"),
                created_time=NOW - timedelta(days=6 - post, hours=-1 - j))

    comments(5, 5)
    ids["r51a"] = fb.add_comment(ids["p5"], "a reply", author=("u90", "Replier"), parent_id=ids["c51"],
                                 created_time=NOW - timedelta(hours=2))
    ids["r51b"] = fb.add_comment(ids["p5"], "another reply", author=("u91", "Other"), parent_id=ids["c51"],
                                 created_time=NOW - timedelta(hours=1))
    fb.hide_comment(ids["c54"])
    comments(4, 2)
    comments(3, 4)
    ids["r32"] = fb.add_comment(ids["p3"], "reply that goes with its comment", author=("u92", "Third"),
                                parent_id=ids["c32"], created_time=NOW - timedelta(days=2))
    comments(1, 3)
    comments(0, 2)
    return ids


def mutate_page(fb: SimulatedFacebook, ids: dict[str, str]) -> None:
    """Between harvest 1 and 2: 2 edits, a hide, an unhide, a delete (comment + reply), a new comment."""
    fb.edit_post(ids["p4"], "Post 4: notice from the department (corrected: the road reopens at 6 PM)")
    fb.edit_comment(ids["c30"], "comment 0 on post 3, edited by its author")
    fb.hide_comment(ids["c11"])
    fb.unhide_comment(ids["c54"])
    fb.delete_comment(ids["c32"])  # its reply r32 goes with it
    ids["c0new"] = fb.add_comment(ids["p0"], "a late comment on the oldest post", author=("u99", "Latecomer"),
                                  created_time=NOW - timedelta(hours=1))


def simulator() -> SimulatedFacebook:
    """A simulated page on the fixed clock (not started)."""
    return SimulatedFacebook(page_id=PAGE_ID, token=TOKEN, now=lambda: NOW)


# -- running the archiver as a separate process -------------------------------------------------------
def write_config(directory: Path, db_url: str, fb: SimulatedFacebook) -> Path:
    cfg = directory / "archiver.toml"
    cfg.write_text(CONFIG.format(db_url=db_url, page_id=PAGE_ID, token_env=TOKEN_ENV, api_base=fb.api_base))
    return cfg


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ARCHIVER_CONFIG" and not k.startswith("CRASH_TEST_")}
    env[TOKEN_ENV] = TOKEN
    return env


def command(cfg: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "archiver", "--config", str(cfg), *args]


def cli(cfg: Path, *args: str) -> tuple[int, str, str]:
    res = subprocess.run(command(cfg, *args), env=child_env(), capture_output=True, text=True, timeout=120)
    return res.returncode, res.stdout, res.stderr


def clean_harvest(cfg: Path) -> dict[str, Any]:
    """`archiver harvest --json` run to its end: the one run's JSON, which must be ok."""
    code, out, err = cli(cfg, "harvest", "--json")
    assert code == 0, err
    (run,) = json.loads(out)["runs"]
    assert run["status"] == "ok" and run["error"] is None, run
    return run  # type: ignore[no-any-return]


def init_in_process(cfg: Path) -> None:
    with Archive(load_settings(cfg)) as arch:
        arch.init()


@dataclass
class Kill:
    """One `archiver harvest` process killed with SIGKILL."""

    kind: str  # "gated" | "in-transaction" | "timed"
    point: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def certain(self) -> bool:
        """Killed at a point where its run cannot have finished."""
        return self.kind != "timed"

    @property
    def killed_mid_run(self) -> bool:
        """Killed, and before it printed its result (so before its harvest ended)."""
        return self.returncode == SIGKILLED and not self.stdout


def harvest_killed(fb: SimulatedFacebook, cfg: Path, *, gate: int | None = None, delay: float = 0.0,
                   before_sql: tuple[str, int] | None = None) -> Kill:
    """Start `archiver harvest` and SIGKILL it:

    - ``gate=n``: once request n+1 is held at the simulated API (it has stored what it read so far);
      with ``delay``, that long after letting the held request through;
    - ``before_sql=(regex, n)``: once it is about to execute the n-th SQL statement matching regex.
    """
    logs = cfg.parent / "logs"
    logs.mkdir(exist_ok=True)
    name = f"harvest-{len(list(logs.glob('*.out'))):02d}"
    out_path, err_path, marker = logs / f"{name}.out", logs / f"{name}.err", logs / f"{name}.paused"
    env = child_env()
    if before_sql is not None:
        hooks = cfg.parent / "hooks"
        hooks.mkdir(exist_ok=True)
        (hooks / "sitecustomize.py").write_text(PAUSE_HOOK)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(hooks), env.get("PYTHONPATH")) if p)
        env.update(CRASH_TEST_PAUSE_PATTERN=before_sql[0], CRASH_TEST_PAUSE_NTH=str(before_sql[1]),
                   CRASH_TEST_PAUSE_MARKER=str(marker))
        kind, point = "in-transaction", f"before SQL #{before_sql[1]} matching {before_sql[0]!r}"
        reached = marker.exists
    else:
        assert gate is not None
        fb.hold_after(fb.request_count + gate)
        kind, point = ("timed", f"{delay:.3f} s after request {gate + 1}") if delay else \
            ("gated", f"request {gate + 1} held")
        reached = fb.holding.is_set
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(command(cfg, "harvest", "--json"), stdout=out, stderr=err, env=env)
        try:
            deadline = time.monotonic() + WAIT_TIMEOUT
            while not reached():
                if proc.poll() is not None:
                    pytest.fail(f"the harvest ended (exit {proc.returncode}) before its kill point ({point}), "
                                "so it did less than a clean run would have (or failed): "
                                f"{err_path.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"the harvest did not reach its kill point ({point}) in {WAIT_TIMEOUT:.0f} s")
                time.sleep(0.01)
            if delay:
                fb.release()
                time.sleep(delay)
            proc.send_signal(signal.SIGKILL)  # a no-op if it already ended
            proc.wait(timeout=30)
        finally:
            fb.release()
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    return Kill(kind, point, proc.returncode, out_path.read_text(), err_path.read_text())


# -- what an archive holds -----------------------------------------------------------------------------
class Rec(NamedTuple):
    id: str
    native_id: str
    kind: str
    status: str
    hidden: bool
    parent_id: str | None
    thread_native_id: str | None
    latest_seq: int
    latest_fingerprint: str
    live: bool  # removed_at IS NULL


@dataclass(frozen=True)
class Snapshot:
    """The logical content of an archive, as multisets (a duplicate row counts twice)."""

    records: Counter[Rec] = field(default_factory=Counter)
    versions: Counter[tuple[str, int, str, str, str | None]] = field(default_factory=Counter)  # id, seq, sha, fp, text
    events: Counter[tuple[str, str, int | None]] = field(default_factory=Counter)  # record id, type, version seq
    item_blobs: Counter[str] = field(default_factory=Counter)

    def record_ids(self) -> Counter[str]:
        return Counter(r.id for r in self.records.elements())

    def within(self, other: Snapshot) -> bool:
        """Everything here is also in ``other`` (records by id: their state may still change)."""
        return (self.record_ids() <= other.record_ids() and self.versions <= other.versions
                and self.events <= other.events and self.item_blobs <= other.item_blobs)

    def differences(self, other: Snapshot) -> dict[str, dict[str, list[Any]]]:
        out = {}
        for part in ("records", "versions", "events", "item_blobs"):
            mine, theirs = getattr(self, part), getattr(other, part)
            if mine != theirs:
                out[part] = {"extra": sorted((mine - theirs).elements(), key=repr),
                             "missing": sorted((theirs - mine).elements(), key=repr)}
        return out


def snapshot(db_url: str) -> Snapshot:
    engine = create_engine(db_url)
    try:
        with Session(engine) as s:
            records = Counter(
                Rec(r.id, r.native_id, r.kind, r.status, bool(r.hidden), r.parent_id, r.thread_native_id,
                    r.latest_seq, r.latest_fingerprint, r.removed_at is None)
                for r in s.execute(select(Record)).scalars())
            versions = Counter(tuple(row) for row in s.execute(select(
                Version.record_id, Version.seq, Version.sha256, Version.fingerprint, Version.text)))
            events = Counter(tuple(row) for row in s.execute(select(Event.record_id, Event.type,
                                                                    Event.version_seq)))
            blobs = Counter(s.execute(select(Blob.sha256).where(Blob.kind == "item")).scalars())
    finally:
        engine.dispose()
    return Snapshot(records, versions, events, blobs)  # type: ignore[arg-type]


def assert_same(got: Snapshot, want: Snapshot) -> None:
    diff = got.differences(want)
    assert not diff, f"the archive differs from the clean run's: {json.dumps(diff, indent=1, default=str)}"


def assert_whole(snap: Snapshot) -> None:
    """Only whole pages: no duplicates; every record has versions 1..latest_seq, a 'captured' event, an
    'edited' event per later version, a 'removed' event if removed; every version's blob is recorded."""
    problems: list[str] = []
    dups = [x for part in (snap.records, snap.versions, snap.events) for x, n in part.items() if n > 1]
    if dups:
        problems.append(f"duplicates: {dups}")
    seqs: dict[str, list[int]] = defaultdict(list)
    for rid, seq, *_ in snap.versions.elements():
        seqs[rid].append(seq)
    types: dict[str, Counter[str]] = defaultdict(Counter)
    for rid, typ, _ in snap.events.elements():
        types[rid][typ] += 1
    for rec in snap.records:
        if sorted(seqs.pop(rec.id, [])) != list(range(1, rec.latest_seq + 1)):
            problems.append(f"{rec.native_id}: latest_seq {rec.latest_seq}, versions {sorted(seqs.get(rec.id, []))}")
        t = types.pop(rec.id, Counter())
        if t["captured"] != 1 or t["edited"] != rec.latest_seq - 1 or t["removed"] != (not rec.live):
            problems.append(f"{rec.native_id} ({rec.status}): events {dict(t)}")
    if seqs or types:
        problems.append(f"versions or events of no record: {dict(seqs)} {dict(types)}")
    missing = {sha for _, _, sha, _, _ in snap.versions} - set(snap.item_blobs)
    if missing:
        problems.append(f"versions whose blob is not recorded: {sorted(missing)}")
    assert not problems, "a killed harvest left a torn archive: " + "; ".join(problems)


def check_after_kill(kill: Kill, db_url: str, floor: Snapshot, ceiling: Snapshot) -> Snapshot:
    """The child died before its harvest ended, leaving whole pages: at least ``floor``, within ``ceiling``."""
    assert kill.killed_mid_run, kill
    snap = snapshot(db_url)
    assert_whole(snap)
    assert floor.within(snap), floor.differences(snap)
    assert snap.within(ceiling), snap.differences(ceiling)
    return snap


def check_runs(db_url: str, kills: list[Kill], clean_runs: int) -> None:
    """Every killed run is marked interrupted (none left 'running'); the others are ok."""
    engine = create_engine(db_url)
    try:
        with Session(engine) as s:
            runs = [tuple(row) for row in s.execute(select(
                HarvestRun.status, HarvestRun.error, HarvestRun.finished_at).order_by(HarvestRun.id))]
    finally:
        engine.dispose()
    assert len(runs) == len(kills) + clean_runs
    assert [r for r in runs if r[0] not in ("ok", "failed")] == []  # nothing left 'running'
    failed = [r for r in runs if r[0] == "failed"]
    assert all(err and err.startswith("interrupted") and fin is not None for _, err, fin in failed), failed
    assert runs[-1][0] == "ok"
    # A gated or in-transaction kill always interrupts its run; a timed one does unless the run had ended.
    assert sum(k.certain for k in kills) <= len(failed) <= sum(k.returncode == SIGKILLED for k in kills)


def check_verify(cfg: Path) -> None:
    code, out, err = cli(cfg, "verify", "--json")
    assert code == 0, out + err
    rep = json.loads(out)
    assert rep["audit_ok"] is True and rep["blobs_bad"] == [] and rep["blobs_checked"] > 0, rep


# -- the reference: clean runs only ---------------------------------------------------------------------
@dataclass
class Reference:
    first: Snapshot  # after harvest 1 (the backfill) of the seeded page
    second: Snapshot  # after the page changed (mutate_page) and harvest 2
    requests_first: int  # API requests harvest 1 made
    requests_second: int
    probes_second: list[int]  # which of harvest 2's requests (0-based) were removal probes


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """A SQLite archive built by clean `archiver init` / `harvest` / `harvest` processes."""
    root = tmp_path_factory.mktemp("reference")
    db_url = f"sqlite:///{root / 'archive.db'}"
    with simulator() as fb:
        ids = seed_page(fb)
        cfg = write_config(root, db_url, fb)
        code, _, err = cli(cfg, "init", "--json")
        assert code == 0, err
        before = fb.request_count
        run1 = clean_harvest(cfg)
        requests_first = fb.request_count - before
        first = snapshot(db_url)
        mutate_page(fb, ids)
        before = fb.request_count
        run2 = clean_harvest(cfg)
        requests_second = fb.request_count - before
        probes = [i for i, path in enumerate(fb.requests_seen[before:])
                  if "/comments?" not in path and "/feed?" not in path]
        second = snapshot(db_url)
    # The page is what the tests think it is: many API pages, and harvest 2 has something to do.
    assert (run1["new_records"], run1["pages"], requests_first) == (27, 17, 17), run1
    assert run2["events"] == {"edited": 2, "hidden": 1, "unhidden": 1, "removed": 2, "restored": 0}, run2
    assert (run2["new_records"], run2["new_versions"], requests_second) == (1, 2, 18), run2
    assert len(probes) == 2 and probes[-1] < requests_second - 2, probes  # the deleted comment and its reply
    assert first.within(second) and first != second
    assert_whole(first)
    assert_whole(second)
    return Reference(first, second, requests_first, requests_second, probes)


# -- the tests -----------------------------------------------------------------------------------------
@pytest.fixture
def page() -> Iterator[tuple[SimulatedFacebook, dict[str, str]]]:
    with simulator() as fb:
        yield fb, seed_page(fb)


def test_killed_backfill_then_rerun_equals_one_clean_harvest(
        db_url: str, tmp_path: Path, page: tuple[SimulatedFacebook, dict[str, str]],
        reference: Reference) -> None:
    fb, _ = page
    cfg = write_config(tmp_path, db_url, fb)
    init_in_process(cfg)
    rng = random.Random(3001)
    total = reference.requests_first
    empty, kills = Snapshot(), []

    # Inside the 5th page's transaction: its records and versions are written, its events not yet.
    kill = harvest_killed(fb, cfg, before_sql=(r"^INSERT INTO events\b", 5))
    partial = check_after_kill(kill, db_url, empty, reference.first)
    assert 0 < len(partial.records) < len(reference.first.records)
    kills.append(kill)
    # Waiting for the first feed page's successor; then for the last comment page (the old post's thread,
    # which only a backfill reads: the rerun after a killed backfill must be a backfill too).
    for gate in (1, total - 1):
        kill = harvest_killed(fb, cfg, gate=gate)
        partial = check_after_kill(kill, db_url, partial, reference.first)
        assert partial.versions < reference.first.versions  # really interrupted: the rerun has work to do
        kills.append(kill)
    # Wherever a random delay lands.
    kill = harvest_killed(fb, cfg, gate=rng.randint(1, total - 6), delay=rng.uniform(0.0, 0.02))
    check_after_kill(kill, db_url, partial, reference.first)
    kills.append(kill)

    clean_harvest(cfg)
    assert_same(snapshot(db_url), reference.first)
    check_runs(db_url, kills, clean_runs=1)
    check_verify(cfg)


def test_killed_incremental_harvest_then_rerun_equals_one_clean_harvest(
        db_url: str, tmp_path: Path, page: tuple[SimulatedFacebook, dict[str, str]],
        reference: Reference, monkeypatch: pytest.MonkeyPatch) -> None:
    fb, ids = page
    cfg = write_config(tmp_path, db_url, fb)
    init_in_process(cfg)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with Archive(load_settings(cfg)) as arch:
        r = harvest_account(arch, arch.settings.accounts[0])
    assert r.status == "ok", r.error
    assert_same(snapshot(db_url), reference.first)  # the same starting point as the reference

    mutate_page(fb, ids)
    rng = random.Random(3002)
    total = reference.requests_second
    kills: list[Kill] = []

    # Inside the transaction of the first page with a change (the edited post): the new version is
    # written, its event not yet. Nothing of it may survive.
    kill = harvest_killed(fb, cfg, before_sql=(r"^INSERT INTO events\b", 1))
    partial = check_after_kill(kill, db_url, reference.first, reference.second)
    assert_same(partial, reference.first)
    kills.append(kill)
    # Waiting for the feed's second page; then holding the second removal probe (the thread walked and
    # one of its two removals concluded, the other not).
    for gate in (1, reference.probes_second[-1]):
        kill = harvest_killed(fb, cfg, gate=gate)
        partial = check_after_kill(kill, db_url, partial, reference.second)
        assert partial.events < reference.second.events  # really interrupted: the rerun has work to do
        kills.append(kill)
    assert sum(t == "removed" for _, t, _ in partial.events.elements()) == 1
    # Inside the transaction that marks the other removal: nothing of it may survive.
    kill = harvest_killed(fb, cfg, before_sql=(r"^UPDATE records SET .*removed_at=", 1))
    assert_same(check_after_kill(kill, db_url, partial, reference.second), partial)
    kills.append(kill)
    # Holding the last comment page (the new comment on the oldest post); this run probes only the one
    # item not yet concluded removed, so it makes total - 1 requests.
    kill = harvest_killed(fb, cfg, gate=total - 2)
    partial = check_after_kill(kill, db_url, partial, reference.second)
    assert partial.events < reference.second.events
    assert sum(t == "removed" for _, t, _ in partial.events.elements()) == 2
    kills.append(kill)
    # Wherever a random delay lands.
    kill = harvest_killed(fb, cfg, gate=rng.randint(1, total - 6), delay=rng.uniform(0.0, 0.02))
    check_after_kill(kill, db_url, partial, reference.second)
    kills.append(kill)

    clean_harvest(cfg)
    assert_same(snapshot(db_url), reference.second)
    check_runs(db_url, kills, clean_runs=2)
    check_verify(cfg)
