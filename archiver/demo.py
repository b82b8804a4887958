"""`archiver demo`: the scheduler archiving three simulated platforms while they change.

A police Facebook page, a Mastodon account and a Nixle-style alerts feed run as local servers this
package ships; `archiver run`'s scheduler harvests them every few seconds while residents comment, the
department edits, a moderator hides a comment, and a comment and a reply are deleted. No network, no
credentials.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from .archive import Archive
from .config import load_settings
from .db.models import Account, Event, HarvestRun, Record, Version
from .errors import UsageError
from .records import show_record
from .scheduler import Runner
from .simulated.facebook import SimulatedFacebook
from .simulated.facebook import seed_demo as seed_facebook
from .simulated.feeds import FeedServer
from .simulated.feeds import seed_demo as seed_feeds
from .simulated.mastodon import SimulatedMastodon
from .simulated.mastodon import seed_demo as seed_mastodon
from .verify import verify_archive

MARKER = ".archiver-demo"
TOKEN_ENV = "ARCHIVER_DEMO_FB_TOKEN"

CONFIG = """# Written by `archiver demo`: an archive of three simulated platforms.
[agency]
name = "Demo Police Department"
bates_prefix = "DPD"
state = "KS"
timezone = "America/Chicago"

[storage]
database_url = "sqlite:///data/archive.db"
blobs = "data/blobs"
index_dir = "data/index"
exports_dir = "data/exports"

[scheduler]
backoff_max = "30s"

[[accounts]]
name = "dpd-facebook"
connector = "facebook"
page_id = "104729"
access_token = "$env:{token_env}"
api_base = "{fb}"
every = "2s"

[[accounts]]
name = "dpd-mastodon"
connector = "mastodon"
instance = "{masto}"
account_id = "109876"
every = "3s"

[[accounts]]
name = "dpd-alerts"
connector = "rss"
url = "{feed}"
every = "4s"
"""


def prepare_dir(path: Path) -> None:
    """Start from an empty demo directory; never delete a directory the demo did not make."""
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).exists():
            raise UsageError(f"{path} exists and was not made by `archiver demo`: choose another --dir")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("made by archiver demo; safe to delete\n")


class _RunPrinter:
    """Prints each harvest run once it has finished (the scheduler's log, in plain words)."""

    def __init__(self, runner: Runner, say: Callable[[str], None]):
        self.runner, self.say, self.seen = runner, say, set[int]()
        self.t0 = time.monotonic()

    def poll(self) -> None:
        with self.runner.archive.db.read() as s:
            rows = s.execute(select(HarvestRun, Account.name).join(Account, Account.id == HarvestRun.account_id)
                             .where(HarvestRun.status != "running").order_by(HarvestRun.id)).all()
        for run, name in rows:
            if run.id in self.seen:
                continue
            self.seen.add(run.id)
            ev = ", ".join(f"{k} {getattr(run, k)}" for k in ("edited", "hidden", "unhidden", "removed", "restored")
                           if getattr(run, k)) or "no changes"
            self.say(f"  [{time.monotonic() - self.t0:5.1f}s] {name:<13} run {run.id:>2}: {run.status}; "
                     f"{run.new_records} new records, {run.new_versions} new versions; {ev}")

    def wait_for_runs_after(self, moment: datetime, names: list[str], timeout: float = 60) -> None:
        """Poll until every named account has finished a run that started after ``moment``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            with self.runner.archive.db.read() as s:
                done = set(s.execute(select(Account.name).join(HarvestRun, HarvestRun.account_id == Account.id)
                                     .where(HarvestRun.started_at > moment, HarvestRun.status != "running"))
                           .scalars())
            if set(names) <= done:
                return
            time.sleep(0.25)
        raise TimeoutError("the scheduled harvests did not come round in time")


def run_demo(directory: Path, say: Callable[[str], None] = print) -> int:
    """Run the whole demo; returns a process exit status."""
    directory = directory.resolve()
    prepare_dir(directory)
    token = "demo-page-token-" + os.urandom(6).hex()
    os.environ[TOKEN_ENV] = token
    names = ["dpd-facebook", "dpd-mastodon", "dpd-alerts"]
    with ExitStack() as stack:
        fb = stack.enter_context(SimulatedFacebook(page_id="104729", token=token))
        masto = stack.enter_context(SimulatedMastodon(account_id="109876"))
        feeds = stack.enter_context(FeedServer())
        seed_facebook(fb)
        seed_mastodon(masto)
        guids = seed_feeds(feeds)
        cfg = directory / "archiver.toml"
        cfg.write_text(CONFIG.format(token_env=TOKEN_ENV, fb=fb.api_base, masto=masto.instance,
                                     feed=feeds.url_for("alerts")))
        say("Simulated platforms (local servers, no network):")
        say(f"  Facebook page   {fb.api_base}\n  Mastodon        {masto.instance}\n  Nixle-style RSS {feeds.url_for('alerts')}")
        say(f"Archive: {directory}  (SQLite + local blobs)\n")
        with Archive(load_settings(cfg)) as arch:
            arch.init()
        runner = Runner(lambda: load_settings(cfg))
        printer = _RunPrinter(runner, say)
        say("1. The scheduler starts: every account is harvested at once, then every 2-4 seconds.")
        runner.start()
        try:
            printer.wait_for_runs_after(datetime(2000, 1, 1, tzinfo=UTC), names)
            say("\n2. On the platforms: the department edits a Facebook post and a Mastodon status,")
            say("   a resident edits a comment and another adds one, an alert is updated and one added.")
            changed = _first_changes(fb, masto, feeds, guids)
            moment = datetime.now(UTC)
            printer.wait_for_runs_after(moment, names)
            say("\n3. A moderator hides a Facebook comment; a comment and a Mastodon reply are deleted.")
            changed += _second_changes(fb, masto)
            moment = datetime.now(UTC)
            printer.wait_for_runs_after(moment, names)
        finally:
            say("\n4. Stopping the scheduler (running harvests finish their page first).")
            runner.stop()
            printer.poll()

    return _summary(cfg, changed, say)


def _first_changes(fb: SimulatedFacebook, masto: SimulatedMastodon, feeds: FeedServer,
                   guids: list[str]) -> list[tuple[str, str]]:
    post = fb.demo_ids["edited_post"]
    fb.edit_post(post, (fb.post_message(post) or "") + "\n\nUPDATE: All lanes of Main St. have reopened.")
    comment = fb.demo_ids["edited_comment"]
    fb.edit_comment(comment, "Thank you officers (edited: and the fire department too!)")
    new = fb.add_comment(post, "Glad everyone is OK.", author=("u-new", "Pat Resident"))
    status = masto.demo_ids["edited_status"]
    masto.edit_status(status, (masto.status_text(status) or "") + " Update: the event is moved indoors.")
    feeds.edit_item("alerts", guids[0], summary="<p>UPDATE: the road has reopened. Thank you for your patience.</p>")
    feeds.add_item("alerts", guid="nixle-alert-9810499", title="Shelter in place lifted - Andover PD",
                   summary="<p>The shelter-in-place order for the Meadowlark area is lifted.</p>",
                   link="https://local.nixle.com/alert/9810499/", published=feeds.now())
    return [("dpd-facebook", post), ("dpd-facebook", comment), ("dpd-facebook", new),
            ("dpd-mastodon", status), ("dpd-alerts", guids[0])]


def _second_changes(fb: SimulatedFacebook, masto: SimulatedMastodon) -> list[tuple[str, str]]:
    hidden, deleted = fb.demo_ids["hidden_comment"], fb.demo_ids["deleted_comment"]
    fb.hide_comment(hidden)
    fb.delete_comment(deleted)
    reply = masto.demo_ids["deleted_reply"]
    masto.delete_status(reply)
    return [("dpd-facebook", hidden), ("dpd-facebook", deleted), ("dpd-mastodon", reply)]


def _summary(cfg: Path, changed: list[tuple[str, str]], say: Callable[[str], None]) -> int:
    with Archive.open(load_settings(cfg)) as arch:
        say("\n5. Summary")
        with arch.db.read() as s:
            runs = Counter(s.execute(select(Account.name, HarvestRun.status)
                                     .join(HarvestRun, HarvestRun.account_id == Account.id)).all())
            kinds = Counter(s.execute(select(Account.name, Record.kind).join(Record, Record.account_id == Account.id)).all())
            versions = dict(s.execute(select(Account.name, func.count()).join(Record, Record.account_id == Account.id)
                                      .join(Version, Version.record_id == Record.id).group_by(Account.name)).all())
            events = Counter(s.execute(select(Account.name, Event.type).join(Record, Record.account_id == Account.id)
                                       .join(Event, Event.record_id == Record.id)).all())
            for name in ("dpd-facebook", "dpd-mastodon", "dpd-alerts"):
                r = ", ".join(f"{n} {st}" for (a, st), n in sorted(runs.items()) if a == name)
                k = ", ".join(f"{n} {'replies' if kind == 'reply' else kind + 's'}"
                              for (a, kind), n in sorted(kinds.items()) if a == name)
                e = ", ".join(f"{t} {n}" for (a, t), n in sorted(events.items()) if a == name and t != "captured")
                say(f"  {name:<13} runs: {r}\n  {'':<13} records: {k}; versions {versions.get(name, 0)}; "
                    f"events: {e or 'none'}")
            say("\n   The changed items, as the archive now holds them:")
            for account, native_id in changed:
                rid = s.execute(select(Record.id).join(Account, Account.id == Record.account_id)
                                .where(Account.name == account, Record.native_id == native_id)).scalar_one()
                doc = show_record(s, rid)
                say(f"  {doc['record_id']} {account} {doc['kind']} by {doc['author']}: status {doc['status']} "
                    f"(events: {', '.join(e['type'] for e in doc['events'])})")
                for v in doc["versions"]:
                    text = (v["text"] or "").replace("\n", " ")
                    shown = text if len(text) <= 100 else text[:35] + " ... " + text[-60:]
                    say(f"      v{v['seq']} sha256 {v['sha256'][:16]}...  {shown!r}")
        rep = verify_archive(arch)
        say(f"\n6. verify: {rep.blobs_checked} blobs re-hashed, {len(rep.blobs_bad)} bad; "
            f"audit chain of {rep.audit_entries} entries {'intact' if rep.audit_ok else 'BROKEN'}")
        with arch.db.read() as s:
            bad_runs = s.execute(select(func.count()).select_from(HarvestRun)
                                 .where(HarvestRun.status == "failed")).scalar_one()
        packet_ok, request_id = _request_packet(arch, say)
        _retention(arch, say)
    say("\nExplore it yourself (the simulated platforms have stopped; the archive stays):")
    for cmd in ("status", "list --status removed", "show <record_id> --json", "search '\"Main St\"'",
                "request list", f"request show {request_id} --json", "retention report", "verify"):
        say(f"  .venv/bin/archiver --config {cfg} {cmd}")
    return 0 if rep.ok and bad_runs == 0 and packet_ok else 1


def _request_packet(arch: Archive, say: Callable[[str], None]) -> tuple[bool, str]:
    """A KORA request for the Main St. closure thread, answered with a checkable packet."""
    import bagit

    from .request_export import export_request
    from .requests import add_records, create_request, redact, search_record_ids, suggest, withhold

    actor = "Demo Custodian"
    say("\n7. A Kansas Open Records Act request arrives: all comments on the Main St. closure post.")
    today = arch.clock.now().astimezone(ZoneInfo(arch.settings.agency.timezone)).date()
    req = create_request(arch, law="kora", requester="Jordan Reporter, Andover Gazette", received=today,
                         description="All comments on the department's Facebook post about the Main St. closure",
                         actor=actor)
    rid = req["request_id"]
    say(f"   {rid}: received {req['received']}, due {req['due']} (3 business days, K.S.A. 45-218(d))")
    query = '"Main St" account:dpd-facebook kind:post'
    hits = search_record_ids(arch, query)
    with arch.db.read() as s:
        posts = s.execute(select(Record).where(Record.id.in_(hits))).scalars().all()
        members = [r for p in posts for r in s.execute(
            select(Record).where(Record.account_id == p.account_id, Record.thread_native_id == p.native_id)
            .order_by(Record.created_at)).scalars()]
    thread = [r.id for r in members]
    hidden = next((r.id for r in members if r.status == "hidden"), None)
    commenter = next(((r.id, r.author) for r in members
                      if r.kind == "comment" and r.status != "hidden" and r.author), None)
    added = add_records(arch, rid, hits + thread, actor)
    say(f"   search {query} -> {len(hits)} post; with its comment thread {added['total']} records added")
    sug = suggest(arch, rid, accept=False, actor=actor)
    for item in sug["suggestions"]:
        say(f"   suggested redaction (not applied until accepted): {item['kind']} {item['text']!r} in "
            f"{item['record_id']} -> {item['exemption']}")
    if commenter:
        redact(arch, rid, commenter[0], commenter[1], "K.S.A. 45-221(a)(30)", actor)
        say(f"   redacted a resident's name in {commenter[0]} under K.S.A. 45-221(a)(30)")
    if hidden:
        withhold(arch, rid, hidden, "K.S.A. 45-221(a)(30)", actor)
        say(f"   withheld {hidden} (the comment a moderator hid) under K.S.A. 45-221(a)(30)")
    doc = export_request(arch, rid, out_dir=None, bates_start=None, actor=actor)
    bag = bagit.Bag(doc["path"])
    bag.validate()
    say(f"   packet: {doc['path']}")
    say(f"   {doc['pages']} pages, Bates {doc['bates_first']} to {doc['bates_last']}; released {doc['released']}, "
        f"redacted {doc['redacted']}, withheld {doc['withheld']}; BagIt bag valid "
        f"({len(bag.payload_entries())} files, SHA-256 manifest)")
    return bool(bag.is_valid()), rid


def _retention(arch: Archive, say: Callable[[str], None]) -> None:
    """What the retention schedules say about this young archive: nothing is due yet."""
    from .disposition import report

    doc = report(arch)
    say("\n8. Retention: records eligible for disposition now: "
        f"{sum(g.get('count', 0) for g in doc['eligible'])}; held (open request or legal hold): {len(doc['held'])}")
    for nxt in doc["next_eligible"]:
        say(f"   series {nxt['series']}: {nxt['count']} records, first eligible {nxt['date'][:10]}")
