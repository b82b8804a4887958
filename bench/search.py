"""Search benchmark: synthetic corpus -> archive DB -> full reindex, incremental add, query latency vs FTS5.

Run: ``python -m bench.search [--sizes 100000,1000000]`` (a quick run: ``--sizes 20000``).

The corpus is deterministic (seeded): four accounts (Facebook, X, Instagram, Mastodon) over ten years,
threads of a post with comments and replies, words drawn from a zipfian vocabulary (police and
community words first, then a long tail of made-up names and places), a few edited, hidden and removed
records, hashtags and mentions. The records are bulk-inserted into a SQLite archive (Core executemany),
so the reindex measured is the real ``archiver reindex`` path (DB read included) and one-shot searches
hydrate from a real database.

Queries (the same words for both engines), N of each kind:
  term      one word, uniform over the 2,000 most frequent non-stop words (so rarely the very top ones)
  two       two such words (AND)
  phrase    two adjacent non-stop words taken from a random record (so frequent pairs are frequent)
  filtered  a word + a date range of 1-6 whole months + platform
  newest    a word, sorted newest first
Every query returns the total count and the top 20, as ``archiver search --json`` does.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SEED = 20260101
ACCOUNTS = [("apd-facebook", "facebook", 0.40), ("apd-x", "x", 0.25), ("apd-instagram", "instagram", 0.20),
            ("apd-mastodon", "mastodon", 0.15)]
START = datetime(2016, 1, 1, tzinfo=UTC)
SPAN_S = 10 * 365 * 86400
FUNCTION = ("the and to a of is in for on this we you our it was be with at are please not that have "
            "they if will from your all can about just my so an there what who when".split())
POLICE = """police officer officers department traffic crash road closed street avenue community safety thank
thanks share missing found dog park school zone speeding neighbors neighborhood suspect arrested arrest
vehicle car truck driver accident injured fire emergency ambulance call report reported tip information help
identify video photo camera footage stolen theft burglary robbery assault shooting shots weapon gun drugs
overdose dui patrol chief sergeant detective deputy sheriff k9 unit lights sirens alert warning scam fraud
phone elderly residents city county downtown main highway interstate exit lane detour construction weather
snow ice storm flood power outage parade festival event coffee citizens academy volunteer donation food
drive toys holiday fireworks noise complaint parking ticket court jail charges investigation scene witness
family kids children teen students bus crossing pedestrian bike helmet seatbelt great job awesome love
terrible corrupt body cam transparency accountability mayor council meeting budget taxes response slow
today tonight yesterday morning evening night weekend north south east west block intersection signal
stop sign speed limit radar enforcement citation license plate insurance wanted warrant description male
female wearing black white hoodie last seen heading fled chase pursuit located safe reunited owner lost
wallet keys recovered property damage vandalism graffiti trespassing loud party fight disturbance domestic
mental health crisis shelter outreach program training hiring career apply recruit sworn ceremony badge
retirement congratulations welcome memorial honor prayers support blue line""".split()
FIRST = "james mary robert patricia john jennifer michael linda david elizabeth william barbara maria jose".split()
LAST = "smith johnson williams brown jones garcia miller davis rodriguez martinez lopez wilson anderson".split()
TAGS = "SafetyFirst APD TrafficAlert MissingPerson CoffeeWithACop BackTheBlue Andover NightOut".split()


def _vocabulary(rng: random.Random, size: int = 40_000) -> tuple[list[str], list[float]]:
    """Words by rank: English function words first (they are stop words, as in real text), a few
    signature words among them (police, thank, ...), the other police/community words, then made-up
    names and places; zipfian weights (s = 1) over the ranks."""
    sy = ["ka", "lo", "mi", "ten", "var", "sul", "dro", "pe", "nix", "or", "bel", "qua", "ti", "zen", "ru", "hol"]
    tail = sorted({"".join(rng.choice(sy) for _ in range(rng.randint(2, 4))) for _ in range(size * 2)})
    rng.shuffle(tail)
    police = POLICE[:]
    head, rest = police[:8], police[8:]
    rng.shuffle(rest)
    top = FUNCTION[:]
    for k, w in enumerate(head):
        top.insert(6 + 4 * k, w)
    words = top + rest + [w for w in tail if w not in set(top + rest)][: size - len(top) - len(rest)]
    cum = list(itertools.accumulate(1.0 / (r + 1) ** 1.0 for r in range(len(words))))
    return words, cum


class Corpus:
    """Deterministic records, generated in the same order every time (so any prefix is a sample)."""

    def __init__(self, seed: int = SEED):
        self.seed = seed
        self.words, self.cum = _vocabulary(random.Random(seed))
        self.names = [f"{a.title()} {b.title()}{i or ''}" for i in range(60) for a in FIRST for b in LAST]

    def _text(self, rng: random.Random, lo: int, hi: int) -> str:
        n = min(hi, lo + int(rng.expovariate(1 / max(1, (hi - lo) / 3))))
        return " ".join(rng.choices(self.words, cum_weights=self.cum, k=n)).capitalize() + "."

    def records(self, n: int) -> Iterator[dict[str, Any]]:
        """The first n records: posts, then their comments and replies, thread by thread."""
        rng = random.Random(self.seed + 1)
        from archiver.ids import record_id

        made, thread = 0, 0
        acc_w = list(itertools.accumulate(a[2] for a in ACCOUNTS))
        while made < n:
            acc, platform, _ = ACCOUNTS[bisect.bisect(acc_w, rng.random() * acc_w[-1])]
            t0 = START + timedelta(seconds=int(SPAN_S * rng.random() ** 0.8))
            size = min(n - made, 1 + int(rng.expovariate(1 / 18)))
            post_nid = f"{thread}"
            for j in range(size):
                kind = "post" if j == 0 else ("reply" if j > 2 and rng.random() < 0.35 else "comment")
                nid = post_nid if j == 0 else f"{thread}_{j}"
                parent = None if j == 0 else (post_nid if kind == "comment" else f"{thread}_{rng.randint(1, j - 1)}")
                lo, hi = {"post": (15, 80), "comment": (3, 40), "reply": (2, 25)}[kind]
                text = self._text(rng, lo, hi)
                created = t0 + timedelta(seconds=0 if j == 0 else int(rng.expovariate(1 / 21600)))
                author = "Andover Police Department" if kind == "post" else rng.choice(self.names)
                extra: dict[str, list[str]] = {}
                if kind == "post" and rng.random() < 0.5:
                    extra["hashtags"] = rng.sample(TAGS, rng.randint(1, 3))
                if kind == "reply" and rng.random() < 0.5:
                    extra["mentions"] = [rng.choice(self.names).replace(" ", "")]
                if extra.get("hashtags"):
                    text += " " + " ".join("#" + t for t in extra["hashtags"])
                r = rng.random()
                texts = [text]
                status = "live"
                if r < 0.04:
                    words = text.split()
                    words[rng.randrange(len(words))] = rng.choice(self.words)
                    texts = [text, " ".join(words) + " (edited)"]
                    status = "edited"
                elif r < 0.07 and kind != "post":
                    status = "hidden"
                elif r < 0.09:
                    status = "removed"
                yield {"id": record_id(acc, nid), "account": acc, "platform": platform, "native_id": nid,
                       "kind": kind, "parent_native_id": parent, "thread": post_nid, "author": author,
                       "created_at": created, "status": status, "texts": texts, "extra": json.dumps(extra),
                       "permalink": f"https://{platform}.example/{acc}/{nid}"}
                made += 1
            thread += 1


# --- the archive: bulk rows into a real (SQLite) archive database -------------------------------
def build_archive(root: Path, corpus: Corpus, n: int) -> tuple[Any, Path]:
    """An initialised archive under root holding the first n corpus records (Core executemany)."""
    from sqlalchemy import create_engine

    from archiver.archive import Archive
    from archiver.config import settings_from_dict
    from archiver.db.models import Account, Record, Version, table
    from archiver.ids import record_id

    cfg = root / "archiver.toml"
    cfg.write_text('[storage]\ndatabase_url = "sqlite:///archive.db"\nblobs = "blobs"\nindex_dir = "index"\n')
    settings = settings_from_dict({"storage": {"database_url": f"sqlite:///{root}/archive.db", "blobs": "blobs",
                                               "index_dir": "index"}}, cfg)
    Archive(settings).init()
    eng = create_engine(f"sqlite:///{root}/archive.db")
    now = datetime(2026, 1, 2, tzinfo=UTC)
    ids = {name: i + 1 for i, (name, _, _) in enumerate(ACCOUNTS)}
    recs: list[dict[str, Any]] = []
    vers: list[dict[str, Any]] = []
    with eng.begin() as c:
        c.execute(table(Account).insert(), [dict(id=i, name=a, platform=p, created_at=now)
                                            for a, i in ids.items() for (a2, p, _) in ACCOUNTS if a2 == a])

        def flush() -> None:
            c.execute(table(Record).insert(), recs)
            c.execute(table(Version).insert(), vers)
            recs.clear()
            vers.clear()

        for r in corpus.records(n):
            parent = record_id(r["account"], r["parent_native_id"]) if r["parent_native_id"] else None
            recs.append(dict(id=r["id"], account_id=ids[r["account"]], platform=r["platform"],
                             native_id=r["native_id"], kind=r["kind"], parent_id=parent,
                             parent_native_id=r["parent_native_id"], thread_native_id=r["thread"],
                             author=r["author"], author_id=None, created_at=r["created_at"], permalink=r["permalink"],
                             status=r["status"], hidden=r["status"] == "hidden", removed_at=None,
                             first_captured_at=now, last_seen_at=now, latest_seq=len(r["texts"]),
                             latest_fingerprint="0" * 64, series="social-media-content", disposition_date=None))
            for seq, t in enumerate(r["texts"], 1):
                vers.append(dict(record_id=r["id"], seq=seq, sha256="0" * 64, fingerprint="0" * 64, text=t,
                                 content="{}", extra=r["extra"], edited_at=None, captured_at=now, capture_id=None,
                                 harvest_run_id=None))
            if len(recs) >= 20_000:
                flush()
        if recs:
            flush()
    eng.dispose()
    return settings, cfg


# --- queries ------------------------------------------------------------------------------------
def make_queries(corpus: Corpus, n: int, count: int) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """count queries of each kind: (our query string, the same query's parts for FTS5)."""
    from archiver.search.schema import analyze

    rng = random.Random(SEED + 2)
    common = [w for w in corpus.words if analyze(w) and w.isalpha()][:2000]
    sample = [r["texts"][-1] for i, r in enumerate(corpus.records(n)) if i % max(1, n // (count * 3)) == 0]
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {k: [] for k in ("term", "two", "phrase", "filtered",
                                                                         "newest")}
    for _ in range(count):
        w, w2 = rng.choice(common), rng.choice(common)
        out["term"].append((w, {"match": w}))
        out["two"].append((f"{w} {w2}", {"match": f"{w} AND {w2}"}))
        while True:
            words = [x.strip(".,").lower() for x in rng.choice(sample).split()]
            pairs = [(a, b) for a, b in zip(words, words[1:], strict=False) if analyze(a) and analyze(b) and a.isalnum()
                     and b.isalnum()]
            if pairs:
                a, b = rng.choice(pairs)
                break
        out["phrase"].append((f'"{a} {b}"', {"match": f'"{a} {b}"'}))
        y, m, k = rng.randint(2016, 2025), rng.randint(1, 12), rng.randint(1, 6)
        end_m = m + k - 1
        ey, em = y + (end_m - 1) // 12, (end_m - 1) % 12 + 1
        plat = rng.choice(ACCOUNTS)[1]
        out["filtered"].append((f"{w} created:[{y}-{m:02d} TO {ey}-{em:02d}] platform:{plat}",
                                {"match": w, "platform": plat, "from": (y, m), "to": (ey, em)}))
        out["newest"].append((w, {"match": w, "sort": "newest"}))
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# --- SQLite FTS5, same corpus and queries, same process ---------------------------------------------
def build_fts(path: Path, corpus: Corpus, n: int) -> float:
    """Seconds spent inserting the first n records into an FTS5 table (porter) plus a metadata table."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript("""
        CREATE TABLE meta (rowid INTEGER PRIMARY KEY, record_id TEXT, platform TEXT, created INTEGER, status TEXT);
        CREATE INDEX meta_created ON meta (created);
        CREATE VIRTUAL TABLE fts USING fts5(text, earlier, author UNINDEXED, tokenize='porter unicode61');
    """)
    spent, chunk = 0.0, []
    recs = corpus.records(n)
    for i, r in enumerate(itertools.chain(recs, [None])):
        if r is not None:
            chunk.append((i + 1, r))
        if len(chunk) >= 20_000 or (r is None and chunk):
            t = time.perf_counter()
            con.execute("BEGIN")
            con.executemany("INSERT INTO meta VALUES (?,?,?,?,?)", [
                (k, x["id"], x["platform"], int(x["created_at"].timestamp()), x["status"]) for k, x in chunk])
            con.executemany("INSERT INTO fts (rowid, text, earlier, author) VALUES (?,?,?,?)", [
                (k, x["texts"][-1], "\n".join(x["texts"][:-1]), x["author"]) for k, x in chunk])
            con.execute("COMMIT")
            spent += time.perf_counter() - t
            chunk = []
    con.close()
    return spent


def fts_search(con: sqlite3.Connection, parts: dict[str, Any]) -> tuple[int, list[str]]:
    """Total and top 20 (bm25 or newest) the FTS5 way, with the text match driving the plan."""
    from zoneinfo import ZoneInfo

    where, args = "fts MATCH ?", [parts["match"]]
    if "platform" in parts:
        tz = ZoneInfo("America/Chicago")
        (y, m), (ey, em) = parts["from"], parts["to"]
        lo = datetime(y, m, 1, tzinfo=tz)
        hi = datetime(ey + em // 12, em % 12 + 1, 1, tzinfo=tz)
        where += " AND m.platform = ? AND m.created >= ? AND m.created < ?"
        args += [parts["platform"], int(lo.timestamp()), int(hi.timestamp())]
    frm = "fts CROSS JOIN meta m ON m.rowid = fts.rowid"
    total = con.execute(f"SELECT count(*) FROM {frm} WHERE {where}", args).fetchone()[0]
    order = "m.created DESC" if parts.get("sort") == "newest" else "rank"
    top = [r[0] for r in con.execute(f"SELECT m.record_id FROM {frm} WHERE {where} ORDER BY {order} LIMIT 20", args)]
    return total, top


ONESHOT = ("from archiver.cli import main\n"
           "if 'search' not in main.commands:\n"
           "    from archiver.cli import search_cmds; search_cmds.attach(main)\n"
           "main()")


def bench_size(corpus: Corpus, n: int, args: argparse.Namespace) -> None:
    from archiver.archive import Archive
    from archiver.capture import CaptureSession
    from archiver.config import AccountConfig
    from archiver.connectors.base import Exchange, Item, Scope
    from archiver.harvest import ensure_account
    from archiver.search.indexer import catch_up, rebuild
    from archiver.search.searcher import search

    root = Path(tempfile.mkdtemp(prefix=f"archiver-search-{n}-", dir=args.dir))
    print(f"\n== {n} records  ({root})", flush=True)
    settings, cfg = build_archive(root, corpus, n)
    print(f"archive DB (bulk insert): {du(root) / 1e6:.0f} MB", flush=True)
    arch = Archive(settings)
    reindex = timed(lambda: rebuild(arch))
    ix = settings.storage.index_dir
    size = du(ix)
    print(f"full reindex: {n / reindex:.0f} records/s ({reindex:.1f} s)   index size: {size / 1e6:.0f} MB "
          f"({size / n:.0f} B/record)", flush=True)
    queries = make_queries(corpus, n, args.queries)
    first = timed(lambda: search(arch, "police", limit=20))
    print(f"warm process (searcher reused; includes DB hydration + snippets); first query {first * 1e3:.0f} ms")
    ours: dict[str, list[float]] = {}
    for kind, qs in queries.items():
        ours[kind] = [timed(lambda q=q, p=p: search(arch, q, limit=20, sort=p.get("sort", "relevance")))  # type: ignore[misc]
                      for q, p in qs]
        print(f"  {kind:<9} p50 {pct(ours[kind], 50) * 1e3:7.1f} ms   p95 {pct(ours[kind], 95) * 1e3:7.1f} ms   "
              f"max {max(ours[kind]) * 1e3:7.1f} ms", flush=True)
    print(f"one-shot `archiver search --json` (wall, new process each; {args.oneshot} of each kind)")
    # As installed: byte-code cached (this repo's environment sets PYTHONDONTWRITEBYTECODE; the cache
    # goes to a temporary prefix instead of the source tree), after one warm-up run.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "archiver-bench-pycache")

    def oneshot(q: str, sort: str) -> None:
        cmd = [sys.executable, "-c", ONESHOT, "--config", str(cfg), "search", q, "--json", "--sort", sort]
        subprocess.run(cmd, check=True, capture_output=True, env=env)

    oneshot("police", "relevance")
    for kind, qs in queries.items():
        walls = [timed(lambda q=q, p=p: oneshot(q, p.get("sort", "relevance"))) for q, p in qs[: args.oneshot]]  # type: ignore[misc]
        print(f"  {kind:<9} p50 {pct(walls, 50):6.2f} s   p95 {pct(walls, 95):6.2f} s", flush=True)
    acc = AccountConfig(name="apd-facebook", connector="facebook")
    cs = CaptureSession(arch.db, arch.blobs, arch.clock, account_id=ensure_account(arch, acc),
                        account_name=acc.name, platform="facebook", run_id=None, series=arch.series_for(acc))
    extra = list(Corpus(SEED + 9).records(1000))
    for k in range(0, 1000, 100):
        cs.store_page(Scope("feed"), Exchange("GET", "http://bench", 200, {}, b"{}", arch.clock.now()), [
            Item(native_id=f"new-{r['native_id']}", kind="post", raw={"i": r["id"]}, text=r["texts"][-1],
                 author=r["author"], created_at=r["created_at"]) for r in extra[k:k + 100]])
    secs = timed(lambda: catch_up(arch))
    print(f"incremental catch_up of 1000 new records into the {n} index: {secs:.2f} s ({1000 / secs:.0f} records/s)")
    fts_path = root / "fts.db"
    fsecs = build_fts(fts_path, corpus, n)
    fsize = fts_path.stat().st_size
    print(f"SQLite FTS5: build {n / fsecs:.0f} records/s ({fsecs:.1f} s)   size {fsize / 1e6:.0f} MB")
    con = sqlite3.connect(fts_path)
    fts_search(con, {"match": "police"})
    print("FTS5 same queries (total + top 20), and ours/FTS5:")
    for kind, qs in queries.items():
        ts = [timed(lambda p=p: fts_search(con, p)) for _, p in qs]  # type: ignore[misc]
        print(f"  {kind:<9} p50 {pct(ts, 50) * 1e3:7.1f} ms   p95 {pct(ts, 95) * 1e3:7.1f} ms   "
              f"ratio p50 {pct(ours[kind], 50) / pct(ts, 50):5.2f}  p95 {pct(ours[kind], 95) / pct(ts, 95):5.2f}",
              flush=True)
    print(f"  build throughput ours/FTS5 {fsecs / reindex:.2f}   index size ours/FTS5 {size / fsize:.2f}")
    con.close()
    arch.close()
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    """Print the numbers for each size."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated record counts")
    ap.add_argument("--queries", type=int, default=200, help="queries of each kind (warm and FTS5)")
    ap.add_argument("--oneshot", type=int, default=40, help="one-shot CLI runs of each kind")
    ap.add_argument("--dir", default=None, help="where to put the temporary archives")
    ap.add_argument("--keep", action="store_true", help="keep the archives, index and FTS5 database")
    args = ap.parse_args()
    corpus = Corpus()
    for n in (int(x) for x in args.sizes.split(",")):
        bench_size(corpus, n, args)


if __name__ == "__main__":
    main()
