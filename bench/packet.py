"""Disclosure packet export: wall time, pages and peak memory for 1,000 and 10,000 records.

Each size runs in a fresh child process (so one run's memory does not inflate the next) while this
process samples the resident memory of that child and all its descendants (the PDF workers and their
forkserver) from /proc every 20 ms. "peak total" is the largest sum seen at one moment: what the machine
had to provide. The CPU seconds of all those processes are summed too: on a busy machine (other
jobs running) the wall time grows but the CPU time does not, so CPU / cores is what an idle machine
would take for the parallel part. Run: `make bench` or
`python -m bench.packet [--sizes 1000,10000] [--keep DIR]`.

The packet is deterministic (seeded): posts with 10-60 comments, a third of comments with replies,
comment lengths drawn from a long-tailed distribution (most a sentence or two, a few paragraphs, some
unbroken URLs), 5% edited (2-3 versions), 2% hidden, 1% removed, 1% redacted (a name), 0.3% withheld.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from archiver.exports.model import EventIn, Exemption, PacketIn, RecordIn, Redaction, VersionIn

WORDS = ("officer traffic crash Main St. closed reopened thanks community safety patrol school zone speeding "
         "neighbors please share missing found dog park festival parade detour the a and to of in is for on "
         "was with this that my we our you they were be have are not it at as by from all about when who "
         "why how great job again today tonight morning street avenue corner light signal ambulance fire "
         "department chief sheriff deputy report video footage camera witness insurance tow truck lane").split()
NAMES = ("Jordan Miller", "Casey Nguyen", "Pat Ramirez", "Alex Johnson", "Sam Kowalski", "Riley O'Neil",
         "Morgan Lee", "Taylor Brooks", "Jamie Fischer", "Drew Patel")
PRIVACY = Exemption("K.S.A. 45-221(a)(30)", "Clearly unwarranted invasion of personal privacy")
INVESTIGATION = Exemption("K.S.A. 45-221(a)(10)", "Criminal investigation records")


def _text(rng: random.Random, kind: str) -> str:
    if kind == "post":
        n = rng.randint(30, 120)
    else:
        n = min(int(rng.paretovariate(1.6) * 8), 220)
    words = [rng.choice(WORDS) for _ in range(max(n, 2))]
    if rng.random() < 0.04:
        words.insert(rng.randrange(len(words)), "https://example.org/" + "x" * rng.randint(60, 160))
    if rng.random() < 0.08:
        words.insert(rng.randrange(len(words)), "\n\n")
    return " ".join(words).capitalize()


def make_packet(n_records: int, seed: int = 7) -> PacketIn:
    """A deterministic request of n_records records (posts, comments, replies) with all decision kinds."""
    rng = random.Random(seed)
    t0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
    records: list[RecordIn] = []
    post_i = 0
    while len(records) < n_records:
        post_i += 1
        post_id = f"rec_post{post_i:06d}"
        created = t0 + timedelta(hours=post_i * 3)
        items = [("post", post_id, None, created)]
        for c in range(rng.randint(10, 60)):
            cid = f"rec_c{post_i:06d}_{c:03d}"
            ct = created + timedelta(minutes=rng.randint(1, 600))
            items.append(("comment", cid, post_id, ct))
            if rng.random() < 0.33:
                for r in range(rng.randint(1, 3)):
                    items.append(("reply", f"{cid}_r{r}", cid, ct + timedelta(minutes=rng.randint(1, 90))))
        for kind, rid, parent, ct in items:
            if len(records) >= n_records:
                break
            records.append(_record(rng, kind, rid, parent, post_id if kind != "post" else None, ct))
    return PacketIn(
        request_id="KORA-2026-0042", law="kora", law_name="Kansas Open Records Act",
        law_citation="K.S.A. 45-215 et seq.", requester="Jane Q. Reporter",
        description="All comments on the department's Facebook posts about the Main St. crash, Oct 1-15",
        received=date(2026, 10, 16), due=date(2026, 10, 21), extended_due=None, extension_reason=None,
        agency_name="Topeka Police Department", custodian="R. Custodian", bates_prefix="TPD",
        timezone="America/Chicago", generated_at=datetime(2026, 10, 20, 15, 0, tzinfo=UTC), records=records,
        exemptions=(PRIVACY, INVESTIGATION),
    )


def _record(rng: random.Random, kind: str, rid: str, parent: str | None, thread: str | None,
            created: datetime) -> RecordIn:
    author = "Topeka Police Department" if kind == "post" else rng.choice(NAMES) + f" {rng.randint(1, 999)}"
    text = _text(rng, kind)
    roll = rng.random()
    status = "live"
    versions = [VersionIn(1, created + timedelta(minutes=5), f"{rng.getrandbits(256):064x}", text)]
    events = [EventIn("captured", created + timedelta(minutes=5))]
    if roll < 0.05:
        status = "edited"
        for seq in range(2, rng.randint(3, 4)):
            at = created + timedelta(hours=seq)
            versions.append(VersionIn(seq, at, f"{rng.getrandbits(256):064x}", text + " (edit: " + _text(rng, kind)[:80] + ")", at))
            events.append(EventIn("edited", at))
    elif roll < 0.07:
        status = "hidden"
        events.append(EventIn("hidden", created + timedelta(hours=2)))
    elif roll < 0.08:
        status = "removed"
        events.append(EventIn("removed", created + timedelta(hours=5)))
    decision = "release"
    redactions: tuple[Redaction, ...] = ()
    withhold = None
    d = rng.random()
    if kind != "post" and d < 0.01:
        secret = f"Victim Name {rid[-6:]}"
        versions = [VersionIn(v.seq, v.captured_at, v.sha256, f"{v.text} my neighbor {secret} was hurt", v.edited_at)
                    for v in versions]
        decision, redactions = "redact", (Redaction(secret, PRIVACY),)
    elif kind != "post" and d < 0.013:
        decision, withhold = "withhold", INVESTIGATION
    return RecordIn(
        record_id=rid, platform="facebook", account="tpd-facebook", native_id=f"{rid[4:]}_{rng.randint(1, 10**9)}",
        kind=kind, parent_id=parent, thread_id=thread, author=author, created_at=created,
        permalink=f"https://facebook.example/tpd/posts/{rid[4:]}", status=status,
        first_captured_at=versions[0].captured_at, last_seen_at=created + timedelta(days=3),
        removed_at=created + timedelta(hours=5) if status == "removed" else None, versions=tuple(versions),
        events=tuple(events), decision=decision, redactions=redactions, withhold_exemption=withhold,  # type: ignore[arg-type]
    )


def _tree_sample(root: int, cpu_seen: dict[int, float]) -> tuple[int, int, int]:
    """(sum of RSS of root and all descendants, root's RSS, largest single descendant RSS), in kB;
    records each process's CPU seconds so far (user + system) in cpu_seen."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as fh:
                pages = int(fh.read().split()[1])
        except OSError:
            continue
        pid = int(entry)
        parents[pid] = int(fields[1])
        rss[pid] = pages * page_kb
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
    tree = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    for pid in tree:
        cpu_seen[pid] = max(cpu_seen.get(pid, 0.0), cpu.get(pid, 0.0))
    kids = [rss.get(p, 0) for p in tree if p != root]
    return sum(rss.get(p, 0) for p in tree), rss.get(root, 0), max(kids, default=0)


def run_one(n: int, keep: Path | None) -> dict:
    """Export one synthetic packet of n records in this process; returns timings and counts."""
    from archiver.exports.packet import export_packet

    t = time.perf_counter()
    packet = make_packet(n)
    t_make = time.perf_counter() - t
    out = keep or Path(tempfile.mkdtemp(prefix="bench-packet-"))
    try:
        t = time.perf_counter()
        res = export_packet(packet, out)
        wall = time.perf_counter() - t
        size = (Path(res.path) / "data" / "packet.pdf").stat().st_size
    finally:
        if keep is None:
            shutil.rmtree(out, ignore_errors=True)
    return {"records": n, "wall_s": round(wall, 2), "make_s": round(t_make, 2), "pages": res.pages,
            "released": res.released, "redacted": res.redacted, "withheld": res.withheld,
            "pdf_mb": round(size / 1e6, 1), "path": str(res.path)}


def measure(n: int, keep: Path | None) -> dict:
    """Run one size in a child process and sample its memory tree while it runs."""
    cmd = [sys.executable, "-m", "bench.packet", "--one", str(n)] + (["--keep", str(keep)] if keep else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = [0, 0, 0]
    cpu_seen: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            total, own, kid = _tree_sample(proc.pid, cpu_seen)
            peak[0], peak[1], peak[2] = max(peak[0], total), max(peak[1], own), max(peak[2], kid)
            stop.wait(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, _ = proc.communicate()
    stop.set()
    th.join()
    if proc.returncode:
        raise SystemExit(f"benchmark run for {n} records failed (exit {proc.returncode})")
    doc = json.loads(out.strip().splitlines()[-1])
    doc.update(peak_total_mb=round(peak[0] / 1024), peak_main_mb=round(peak[1] / 1024),
               peak_worker_mb=round(peak[2] / 1024), cpu_s=round(sum(cpu_seen.values()), 1),
               load=round(os.getloadavg()[0], 1))
    return doc


def main() -> None:
    """Print one line per size: wall time, pages, peak memory."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--keep", type=Path, help="write the packets here instead of a temporary directory")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.keep)))
        return
    print("packet export (WeasyPrint in chunks on", len(os.sched_getaffinity(0)), "CPUs; target for 10,000: "
          "< 60 s, < 500 MB)")
    for n in (int(s) for s in args.sizes.split(",")):
        d = measure(n, args.keep)
        print(f"  {d['records']:>6} records: {d['wall_s']:6.1f} s wall, {d['pages']:>5} pages "
              f"({d['pdf_mb']} MB PDF), peak memory {d['peak_total_mb']} MB total "
              f"(main {d['peak_main_mb']} MB, largest worker {d['peak_worker_mb']} MB); "
              f"{d['cpu_s']} s CPU in all processes; load average {d['load']} at the end; "
              f"{d['released']} released, {d['redacted']} redacted, {d['withheld']} withheld")


if __name__ == "__main__":
    main()
