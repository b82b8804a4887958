"""`archiver demo`: a simulated police Facebook page harvested twice, with edits, a hide and a removal.

Needs no network and no credentials: the platform is a local server this package ships.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from .archive import Archive
from .config import load_settings
from .db.models import Record
from .harvest import RunResult, harvest_account
from .records import list_records, show_record
from .simulated.facebook import SimulatedFacebook, seed_demo
from .verify import verify_archive

MARKER = ".archiver-demo"
TOKEN_ENV = "ARCHIVER_DEMO_FB_TOKEN"

CONFIG = """# Written by `archiver demo`: an archive of a simulated police Facebook page.
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

[[accounts]]
name = "dpd-facebook"
connector = "facebook"
page_id = "{page_id}"
access_token = "$env:{token_env}"
api_base = "{api_base}"
every = "15m"
lookback = "30d"
"""


def prepare_dir(path: Path) -> None:
    """Start from an empty demo directory; never delete a directory the demo did not make."""
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).exists():
            from .errors import UsageError

            raise UsageError(f"{path} exists and was not made by `archiver demo`: choose another --dir")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("made by archiver demo; safe to delete\n")


def _summary(r: RunResult) -> str:
    ev = ", ".join(f"{k} {v}" for k, v in r.events.items() if v) or "no changes"
    return (f"  run {r.run_id}: {r.status}; {r.pages} API pages, {r.items_seen} items seen, "
            f"{r.new_records} new records, {r.new_versions} new versions; events: {ev}")


def run_demo(directory: Path, say: Callable[[str], None] = print) -> int:
    """Run the whole demo; returns a process exit status."""
    directory = directory.resolve()
    prepare_dir(directory)
    token = "demo-page-token-" + os.urandom(6).hex()
    os.environ[TOKEN_ENV] = token
    with SimulatedFacebook(page_id="104729", token=token) as fb:
        seed_demo(fb)
        cfg = directory / "archiver.toml"
        cfg.write_text(CONFIG.format(page_id="104729", token_env=TOKEN_ENV, api_base=fb.api_base))
        settings = load_settings(cfg)
        with Archive(settings) as arch:
            arch.init()
            acc = settings.account("dpd-facebook")
            say(f"Simulated Facebook page at {fb.api_base}; archive in {directory}")
            say("\n1. First harvest (backfill of the whole page):")
            r1 = harvest_account(arch, acc)
            say(_summary(r1))
            with arch.db.read() as s:
                rows = list(list_records(s))
            counts = {k: sum(1 for r in rows if r["kind"] == k) for k in ("post", "comment", "reply")}
            say(f"  archived: {counts['post']} posts, {counts['comment']} comments, {counts['reply']} replies")

            say("\n2. On the page: a post is edited, a comment edited, one hidden by a moderator, one deleted,")
            say("   and a resident adds a new comment.")
            changed = _change_page(fb, say)

            say("\n3. Second harvest (re-walks the 30-day lookback window):")
            r2 = harvest_account(arch, acc)
            say(_summary(r2))
            say("\n4. What the archive now shows for the changed items:")
            with arch.db.read() as s:
                for native_id in changed:
                    rid = s.execute(select(Record.id).where(Record.native_id == native_id)).scalar_one()
                    doc = show_record(s, rid)
                    say(f"  {doc['record_id']} {doc['kind']} by {doc['author']}: status {doc['status']}, "
                        f"events {', '.join(e['type'] for e in doc['events'])}")
                    for v in doc["versions"]:
                        text = (v["text"] or "").replace("\n", " ")
                        shown = text if len(text) <= 110 else text[:40] + " ... " + text[-65:]
                        say(f"      v{v['seq']} sha256 {v['sha256'][:16]}...  {shown!r}")
            rep = verify_archive(arch)
            say(f"\n5. verify: {rep.blobs_checked} blobs re-hashed, {len(rep.blobs_bad)} bad; "
                f"audit chain of {rep.audit_entries} entries {'intact' if rep.audit_ok else 'BROKEN'}")
    say("\nExplore it yourself (the simulated page has stopped; the archive stays):")
    say(f"  .venv/bin/archiver --config {cfg} list --status removed")
    say(f"  .venv/bin/archiver --config {cfg} show <record_id> --json")
    say(f"  .venv/bin/archiver --config {cfg} verify")
    ok = r1.status == "ok" and r2.status == "ok" and rep.ok
    return 0 if ok else 1


def _change_page(fb: SimulatedFacebook, say: Callable[[str], None]) -> list[str]:
    """Make the changes the second harvest must find; returns the native ids to show."""
    post = fb.demo_ids["edited_post"]
    fb.edit_post(post, (fb.post_message(post) or "") + "\n\nUPDATE: All lanes of Main St. have reopened.")
    edited = fb.demo_ids["edited_comment"]
    fb.edit_comment(edited, "Thank you officers (edited: and the fire department too!)")
    hidden = fb.demo_ids["hidden_comment"]
    fb.hide_comment(hidden)
    deleted = fb.demo_ids["deleted_comment"]
    fb.delete_comment(deleted)
    new = fb.add_comment(post, "Glad everyone is OK.", author=("u-new", "Pat Resident"))
    return [post, edited, hidden, deleted, new]
