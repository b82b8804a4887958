"""Search: query language, results against a brute-force oracle, edits, statuses, reindex, crash repair,
concurrent writers, and the CLI contract. Archives are filled directly through CaptureSession."""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text, update
from whoosh.analysis import StemmingAnalyzer

from archiver.archive import Archive
from archiver.capture import CaptureSession
from archiver.cli import main
from archiver.clock import FakeClock
from archiver.config import AccountConfig
from archiver.connectors.base import Exchange, Item, Probe, Scope, WalkComplete
from archiver.db.models import Record
from archiver.errors import UsageError
from archiver.harvest import ensure_account
from archiver.ids import record_id
from archiver.search import indexer
from archiver.search.query import And, DateRange, Not, Or, QuerySyntaxError, Term, parse
from archiver.search.schema import analyze, terms_positions
from archiver.search.searcher import close_all, search
from tests.conftest import PG_URL, _pg_schema_url, make_settings

TZ = ZoneInfo("America/Chicago")  # the default agency time zone
WORDS = "crash road closed officer dog park missing found snow ice parade burglary burglar stolen bike".split()
AUTHORS = ["Andover PD", "Jane Doe", "John Smith", "jane roe"]
FEED = Scope("feed")


# --- building archives -------------------------------------------------------------------------
def _session(arch: Archive, name: str, platform: str) -> CaptureSession:
    acc = AccountConfig(name=name, connector="facebook")
    aid = ensure_account(arch, acc)
    return CaptureSession(arch.db, arch.blobs, arch.clock, account_id=aid, account_name=name, platform=platform,
                          run_id=None, series=arch.series_for(acc))


def _ex(arch: Archive) -> Exchange:
    return Exchange("GET", "http://platform/feed", 200, {}, b"{}", arch.clock.now())


def _item(nid: str, kind: str, words: str, author: str, created: datetime, hidden: bool = False,
          parent: str | None = None, extra: dict[str, Any] | None = None) -> Item:
    return Item(native_id=nid, kind=kind, raw={"id": nid, "text": words, "hidden": hidden}, text=words,  # type: ignore[arg-type]
                author=author, created_at=created, hidden=hidden, parent_native_id=parent, extra=extra or {})


def fill(arch: Archive, n: int = 40, seed: int = 7) -> None:
    """n records over two accounts: posts and comments, some hidden, edited and removed, tags, mentions."""
    rng = random.Random(seed)
    sessions = {"apd-facebook": _session(arch, "apd-facebook", "facebook"),
                "apd-mastodon": _session(arch, "apd-mastodon", "mastodon")}
    items: dict[str, list[Item]] = {k: [] for k in sessions}
    t0 = datetime(2025, 1, 1, 3, tzinfo=UTC)  # 03:00 UTC is the evening before in Chicago
    for i in range(n):
        acc = "apd-facebook" if i % 3 else "apd-mastodon"
        kind = "post" if i % 5 == 0 else "comment"
        created = t0 + timedelta(days=rng.randrange(540), hours=rng.choice([0, 2, 12]))
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
        extra = {"hashtags": ["#SafetyFirst"]} if i % 7 == 0 else {"mentions": ["@Mayor"]} if i % 11 == 0 else {}
        parent = None if kind == "post" else f"{acc}-p"
        items[acc].append(_item(f"n{i}", kind, words, AUTHORS[i % 4], created, hidden=i % 9 == 4,
                                parent=parent, extra=extra))
    for acc, cs in sessions.items():
        cs.store_page(FEED, _ex(arch), items[acc])
    arch.clock.advance(hours=1)  # type: ignore[attr-defined]
    # Edits: three records get new text; their old words stay searchable.
    cs = sessions["apd-facebook"]
    edited = [it for it in items["apd-facebook"]][:3]
    cs.store_page(FEED, _ex(arch), [_item(it.native_id, it.kind, "edited parade wording", it.author or "",
                                          it.created_at or t0, parent=it.parent_native_id) for it in edited])
    # A later complete feed walk misses one mastodon post, which the platform confirms is gone.
    m = sessions["apd-mastodon"]
    posts = [it for it in items["apd-mastodon"] if it.kind == "post"]
    m2 = _session(arch, "apd-mastodon", "mastodon")
    m2.store_page(FEED, _ex(arch), posts[1:])
    m2.conclude(WalkComplete(FEED), lambda kind, nid: Probe(nid, gone=(nid == posts[0].native_id)))
    del m


# --- a brute-force oracle over the DB state ---------------------------------------------------
_STOCK = StemmingAnalyzer()


def _stock_terms(value: str) -> list[tuple[str, int]]:
    return [(t.text, t.pos) for t in _STOCK(value, positions=True)]


def _records(arch: Archive) -> list[dict[str, Any]]:
    from archiver.records import list_records, show_record

    with arch.db.read() as s:
        out = []
        for row in list_records(s):
            doc = show_record(s, row["record_id"])
            texts = [v["text"] or "" for v in doc["versions"]]
            out.append({**row, "texts": texts, "latest": texts[-1], "earlier": [t for t in texts[:-1] if t != texts[-1]],
                        "created": doc["created_at"]})
    return out


def _words_match(term: Term, value: str) -> bool:
    toks = _stock_terms(value)
    if term.prefix:
        p = term.text.lower()
        from whoosh.lang.porter import stem

        return any(t.startswith(p) or t.startswith(stem(p)) for t, _ in toks)
    want = [t for t, _ in _stock_terms(term.text)]
    pos = {}
    for t, p in toks:
        pos.setdefault(t, set()).add(p)
    starts = pos.get(want[0], set())
    for k, w in enumerate(want[1:], 1):
        starts = {s for s in starts if s + k in pos.get(w, set())}
    return bool(starts)


def _oracle(node: Any, r: dict[str, Any], extra: dict[str, dict[str, list[str]]]) -> bool:
    if isinstance(node, And):
        return all(_oracle(i, r, extra) for i in node.items)
    if isinstance(node, Or):
        return any(_oracle(i, r, extra) for i in node.items)
    if isinstance(node, Not):
        return not _oracle(node.item, r, extra)
    if isinstance(node, DateRange):
        day = datetime.fromisoformat(r["created"].replace("Z", "+00:00")).astimezone(TZ).date()
        return (node.start is None or node.start <= day) and (node.end is None or day <= node.end)
    f = node.field
    if f is None:
        return _words_match(node, r["latest"]) or any(_words_match(node, e) for e in r["earlier"])
    if f == "text":
        return _words_match(node, r["latest"])
    if f == "earlier":
        return any(_words_match(node, e) for e in r["earlier"])
    if f == "author":
        a = r["author"] or ""
        if node.phrase and " ".join(a.casefold().split()) == node.text.casefold():
            return True
        toks = [w.lower() for w in a.replace(".", " ").split()]
        want = [w.lower() for w in node.text.split()]
        return any(toks[i:i + len(want)] == want for i in range(len(toks)))
    if f in ("hashtags", "mentions"):
        return node.text.lower().lstrip("#@") in extra[r["record_id"]].get(f, [])
    return str(r[{"record_id": "record_id"}.get(f, f)]).lower() == node.text.lower()


ORACLE_QUERIES = [
    "crash", "crash road", "crash OR parade", "crash -road", "NOT crash", '"road closed"', "burgl*",
    "platform:mastodon", "account:apd-facebook kind:comment", "author:jane", 'author:"Jane Doe"', "status:hidden",
    "status:removed", "status:(hidden OR removed)", "status:edited", "created:2025", "created:2025-03",
    "created:[2025-02-10 TO 2025-05-03]", "created:[2026-01 TO *]", "created:[* TO 2025-01-31] OR dog",
    "dog created:2025 platform:facebook", "(dog OR bike) AND NOT stolen", "hashtag:safetyfirst", "mention:mayor",
    "text:parade", "earlier:snow", "kind:post", "created:2025-01-01", "created:2024", "id:" + record_id("apd-x", "n1"),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    """One archive per database, filled and indexed once for the read-only tests."""
    tmp = tmp_path_factory.mktemp("search")
    url, admin, schema = f"sqlite:///{tmp / 'archive.db'}", None, None
    if request.param == "postgresql":
        if not PG_URL:
            pytest.skip("ARCHIVER_TEST_DATABASE_URL not set: PostgreSQL tests skipped")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = _pg_schema_url(PG_URL, schema)
    arch = Archive(make_settings(tmp, url), clock=FakeClock())
    arch.init()
    fill(arch)
    indexer.catch_up(arch)
    yield arch
    close_all()
    arch.close()
    if admin is not None:
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _extras(arch: Archive) -> dict[str, dict[str, list[str]]]:
    from archiver.db.models import Version

    out: dict[str, dict[str, list[str]]] = {}
    with arch.db.read() as s:
        for rid, extra in s.execute(select(Version.record_id, Version.extra)):
            for k, vals in json.loads(extra).items():
                out.setdefault(rid, {}).setdefault(k, []).extend(v.lower().lstrip("#@") for v in vals)
    return out


@pytest.mark.parametrize("q", ORACLE_QUERIES)
def test_results_equal_a_brute_force_oracle(filled: Archive, q: str) -> None:
    recs, extra = _records(filled), _extras(filled)
    extra = {r["record_id"]: extra.get(r["record_id"], {}) for r in recs}
    want = {r["record_id"] for r in recs if _oracle(parse(q), r, extra)}
    got = search(filled, q, limit=None)
    assert {h["record_id"] for h in got["hits"]} == want
    assert got["total"] == len(want)
    # Newest first and oldest first are the oracle's created order.
    by_time = sorted((r for r in recs if r["record_id"] in want), key=lambda r: r["created"])
    newest = search(filled, q, limit=5, sort="newest")["hits"]
    assert [h["created_at"] for h in newest] == [r["created"] for r in reversed(by_time)][:5]
    oldest = search(filled, q, limit=5, offset=1, sort="oldest")["hits"]
    assert [h["created_at"] for h in oldest] == [r["created"] for r in by_time][1:6]


# --- parsing ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("q, tree", [
    ("police car", And((Term(None, "police", 1), Term(None, "car", 8)))),
    ('"road closed"', Term(None, "road closed", 1, phrase=True)),
    ("a OR b c", Or((Term(None, "a", 1), And((Term(None, "b", 6), Term(None, "c", 8)))))),
    ("a AND b", And((Term(None, "a", 1), Term(None, "b", 7)))),
    ("NOT a", Not(Term(None, "a", 5), 1)),
    ("-status:removed", Not(Term("status", "removed", 9), 1)),
    ("burgl*", Term(None, "burgl", 1, prefix=True)),
    ("platform:Facebook", Term("platform", "Facebook", 10)),
    ("account:apd-x", Term("account", "apd-x", 9)),
    ("kind:reply", Term("kind", "reply", 6)),
    ('author:"Jane Doe"', Term("author", "Jane Doe", 8, phrase=True)),
    ("status:(hidden OR removed)", Or((Term("status", "hidden", 9), Term("status", "removed", 19)))),
    ("created:2026", DateRange(date(2026, 1, 1), date(2026, 12, 31), 9)),
    ("created:2026-02", DateRange(date(2026, 2, 1), date(2026, 2, 28), 9)),
    ("created:2026-03-15", DateRange(date(2026, 3, 15), date(2026, 3, 15), 9)),
    ("created:[2026-01-01 TO 2026-03-31]", DateRange(date(2026, 1, 1), date(2026, 3, 31), 9)),
    ("created:[2025-06 TO *]", DateRange(date(2025, 6, 1), None, 9)),
    ("created:[* TO 2025]", DateRange(None, date(2025, 12, 31), 9)),
    ("(a OR b) c", And((Or((Term(None, "a", 2), Term(None, "b", 7))), Term(None, "c", 10)))),
])
def test_each_syntax_form_parses(q: str, tree: Any) -> None:
    assert parse(q) == tree


@pytest.mark.parametrize("q, pos, words", [
    ("created:[2026-01-01 TO 2026-03-31", 34, "expected ']' to close the date range"),
    ("(crash road", 12, "expected ')'"),
    ("crash)", 6, "unexpected ')'"),
    ('"road closed', 1, "close the phrase"),
    ("crash AND", 10, "expected a word"),
    ("OR crash", 1, "OR needs a word"),
    ("NOT", 4, "expected a word"),
    ("bogus:x", 1, "unknown field 'bogus:'"),
    ("created:2026-13", 9, "bad date '2026-13'"),
    ("created:[2026-05 TO 2026-01]", 9, "ends before it starts"),
    ("created:[2026 2027]", 9, "a date range looks like"),
    ("status:deleted", 8, "status must be one of"),
    ("kind:posts", 6, "kind must be one of"),
    ("po*ice", 3, "'*' is only allowed at the end"),
    ("crash [x]", 7, "only allowed after created:"),
    ("", 1, "empty"),
])
def test_malformed_queries_name_the_position(q: str, pos: int, words: str) -> None:
    with pytest.raises(QuerySyntaxError) as ei:
        parse(q)
    assert isinstance(ei.value, UsageError) and ei.value.pos == pos
    assert str(ei.value).startswith(f"bad query at position {pos}: ") and words in str(ei.value)
    assert "\n" not in str(ei.value)


def test_fast_analysis_equals_whoosh_stemming_analyzer() -> None:
    samples = ["The Police Department said officers were running to the scene of a crash.",
               "it's İstanbul ÉCOLE naïve x.y.z 3.14 e-mail 10:30 U.S.A. don't",
               "emoji \U0001f694 nul \x00 lone \ud800 surrogate <script>alert(1)</script>", "a an the", ""]
    for s in samples:
        stock = [(t.text, t.pos, t.startchar, t.endchar) for t in _STOCK(s, positions=True, chars=True)]
        assert analyze(s) == stock
        want: dict[str, list[int]] = {}
        for term, p, _, _ in stock:
            want.setdefault(term, []).append(p)
        assert terms_positions(s) == want


# --- behaviour over changing archives ---------------------------------------------------------------
def _ids(arch: Archive, q: str, **kw: Any) -> set[str]:
    return {h["record_id"] for h in search(arch, q, limit=None, **kw)["hits"]}


def test_edits_are_found_by_old_and_new_words(archive: Archive) -> None:
    cs = _session(archive, "acct", "facebook")
    t = datetime(2026, 3, 1, 12, tzinfo=UTC)
    cs.store_page(FEED, _ex(archive), [_item("c1", "comment", "the chief is a liar", "Resident", t)])
    indexer.catch_up(archive)
    cs.store_page(FEED, _ex(archive), [_item("c1", "comment", "the chief was wrong", "Resident", t)])
    indexer.catch_up(archive)
    rid = record_id("acct", "c1")
    assert _ids(archive, "liar") == {rid} == _ids(archive, "wrong") == _ids(archive, "earlier:liar")
    assert _ids(archive, "text:liar") == set() and _ids(archive, "text:wrong") == {rid}
    hit = search(archive, "liar")["hits"][0]
    assert hit["status"] == "edited" and hit["snippet"] == "(earlier version) the chief is a «liar»"


def test_hidden_and_removed_records_are_found_by_status(archive: Archive) -> None:
    cs = _session(archive, "acct", "facebook")
    t = datetime(2026, 3, 1, 12, tzinfo=UTC)
    cs.store_page(FEED, _ex(archive), [_item("p1", "post", "road closed", "PD", t),
                                       _item("p2", "post", "road open", "PD", t),
                                       _item("p3", "post", "road works", "PD", t, hidden=True)])
    cs2 = _session(archive, "acct", "facebook")
    cs2.store_page(FEED, _ex(archive), [_item("p2", "post", "road open", "PD", t),
                                        _item("p3", "post", "road works", "PD", t, hidden=True)])
    cs2.conclude(WalkComplete(FEED), lambda kind, nid: Probe(nid, gone=True))
    indexer.catch_up(archive)
    assert _ids(archive, "status:removed") == {record_id("acct", "p1")}
    assert _ids(archive, "road status:hidden") == {record_id("acct", "p3")}
    assert _ids(archive, "road -status:(hidden OR removed)") == {record_id("acct", "p2")}
    assert {h["status"] for h in search(archive, "road")["hits"]} == {"removed", "live", "hidden"}


def test_reindex_gives_the_same_results_as_the_incremental_index(archive: Archive) -> None:
    fill(archive, n=60, seed=3)  # catch-ups between the steps below make the index incremental
    indexer.catch_up(archive)
    cs = _session(archive, "apd-facebook", "facebook")
    cs.store_page(FEED, _ex(archive), [_item("n1", "comment", "snow ice storm", "Jane Doe",
                                             datetime(2025, 5, 5, tzinfo=UTC), parent="apd-facebook-p")])
    indexer.catch_up(archive)
    queries = ORACLE_QUERIES + ["storm", "snow OR ice"]
    before = {(q, s): search(archive, q, limit=None, sort=s) for q in queries for s in ("relevance", "newest")}
    assert indexer.rebuild(archive, procs=2) == 60  # the worker processes a large archive gets
    for (q, s), want in before.items():
        got = search(archive, q, limit=None, sort=s)
        assert got["total"] == want["total"], q
        if s == "newest":
            assert [h["created_at"] for h in got["hits"]] == [h["created_at"] for h in want["hits"]], q
        assert sorted(json.dumps(h, sort_keys=True) for h in got["hits"]) == \
            sorted(json.dumps(h, sort_keys=True) for h in want["hits"]), q


def test_records_committed_but_never_indexed_are_caught_up(archive: Archive) -> None:
    cs = _session(archive, "acct", "facebook")
    t = datetime(2026, 3, 1, 12, tzinfo=UTC)
    cs.store_page(FEED, _ex(archive), [_item("p1", "post", "parade route", "PD", t)])
    assert indexer.catch_up(archive) == 1
    # The process dies after the DB commit of the next page, before any index work.
    cs.store_page(FEED, _ex(archive), [_item("p2", "post", "parade cancelled", "PD", t)])
    assert _ids(archive, "parade") == {record_id("acct", "p1")}
    assert indexer.catch_up(archive) == 1
    assert _ids(archive, "parade") == {record_id("acct", "p1"), record_id("acct", "p2")}
    assert indexer.catch_up(archive) == 0


def test_crash_between_index_commit_and_mark_only_reindexes(archive: Archive,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cs = _session(archive, "acct", "facebook")
    t = datetime(2026, 3, 1, 12, tzinfo=UTC)
    indexer.catch_up(archive)
    cs.store_page(FEED, _ex(archive), [_item("p1", "post", "parade route", "PD", t)])

    def crash(*a: Any) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(indexer, "_store_hwm", crash)
    with pytest.raises(RuntimeError):
        indexer.catch_up(archive)
    monkeypatch.undo()
    assert indexer.catch_up(archive) == 1  # the same record again: an update, not a duplicate
    assert search(archive, "parade")["total"] == 1


def test_disposed_or_missing_records_are_not_shown(archive: Archive) -> None:
    cs = _session(archive, "acct", "facebook")
    t = datetime(2026, 3, 1, 12, tzinfo=UTC)
    cs.store_page(FEED, _ex(archive), [_item(f"p{i}", "post", "parade", "PD", t) for i in range(3)])
    indexer.catch_up(archive)
    with archive.db.write() as s:  # no audit entry: the index does not know yet
        s.execute(update(Record).where(Record.id == record_id("acct", "p1")).values(status="disposed"))
    got = search(archive, "parade")
    assert got["total"] == 2 and record_id("acct", "p1") not in {h["record_id"] for h in got["hits"]}


def test_incompatible_or_missing_index_is_rebuilt(archive: Archive, caplog: pytest.LogCaptureFixture) -> None:
    cs = _session(archive, "acct", "facebook")
    cs.store_page(FEED, _ex(archive), [_item("p1", "post", "parade", "PD", datetime(2026, 3, 1, tzinfo=UTC))])
    indexer.catch_up(archive)
    d = archive.settings.storage.index_dir
    mark = json.loads((d / indexer.MARKER).read_text())
    (d / indexer.MARKER).write_text(json.dumps({**mark, "schema": 0}))
    assert indexer.catch_up(archive) == 1
    assert "built by schema version 0" in caplog.text
    assert search(archive, "parade")["total"] == 1


def test_two_concurrent_writers_lose_nothing(archive: Archive) -> None:
    """Two threads (separate Archive objects, as two processes would have) capture and catch up at once."""
    indexer.catch_up(archive)
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            with Archive(archive.settings, clock=FakeClock(), registry=archive.registry) as arch:
                cs = _session(arch, name, "facebook")
                for page in range(6):
                    cs.store_page(FEED, _ex(arch), [_item(f"{page}-{i}", "comment", f"parade {name}", "X",
                                                          datetime(2026, 3, 1, tzinfo=UTC)) for i in range(5)])
                    indexer.catch_up(arch)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("alpha", "bravo")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    indexer.catch_up(archive)
    assert search(archive, "parade")["total"] == 60
    assert search(archive, "alpha")["total"] == 30 == search(archive, "bravo")["total"]
    from whoosh import index

    with index.open_dir(str(archive.settings.storage.index_dir)).searcher() as s:
        assert s.doc_count() == 60


def test_a_held_lock_makes_writers_wait_then_give_up(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    d = archive.settings.storage.index_dir
    indexer.catch_up(archive)
    monkeypatch.setattr(indexer, "LOCK_TIMEOUT", 0.3)
    with indexer.index_lock(d):
        with pytest.raises(indexer.IndexBusy, match="locked by another process"):
            with indexer.index_lock(d, timeout=0.3):
                pass
    with indexer.index_lock(d, timeout=0.3):
        pass


# --- snippets and the command line -------------------------------------------------------------
def test_snippets_mark_words_and_keep_text_as_data(archive: Archive) -> None:
    cs = _session(archive, "acct", "facebook")
    hostile = "<script>alert('crash')</script> & a crash on Main\u202e"
    cs.store_page(FEED, _ex(archive), [_item("p1", "post", hostile, "PD", datetime(2026, 3, 1, tzinfo=UTC))])
    indexer.catch_up(archive)
    snip = search(archive, "crash")["hits"][0]["snippet"]
    assert snip == "<script>alert('«crash»')</script> & a «crash» on Main\u202e"


@pytest.fixture
def cli_cfg(archive: Archive) -> Path:
    from archiver.cli import search_cmds

    if "search" not in main.commands:
        search_cmds.attach(main)
    cs = _session(archive, "acct", "facebook")
    cs.store_page(FEED, _ex(archive), [_item(f"p{i}", "post", f"parade number {i}", "PD",
                                             datetime(2026, 3, 1 + i, tzinfo=UTC)) for i in range(3)])
    cfg = archive.settings.base_dir / "archiver.toml"
    cfg.write_text(f'[storage]\ndatabase_url = "{archive.settings.storage.database_url}"\n'
                   f'index_dir = "{archive.settings.storage.index_dir}"\n')
    return cfg


def _run(cfg: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, ["--config", str(cfg), *args], catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def test_cli_search_reindex_and_errors(cli_cfg: Path) -> None:
    code, out, _ = _run(cli_cfg, "search", "parade", "--json", "--sort", "newest", "--limit", "2")
    doc = json.loads(out)
    assert code == 0 and doc["total"] == 3 and len(doc["hits"]) == 2
    assert set(doc["hits"][0]) == {"record_id", "platform", "account", "kind", "author", "created_at", "status",
                                   "snippet"}
    assert doc["hits"][0]["created_at"] == "2026-03-03T00:00:00Z" and "«parade»" in doc["hits"][0]["snippet"]
    code, out, _ = _run(cli_cfg, "search", "parade", "--records-only", "--sort", "oldest", "--offset", "1")
    assert code == 0 and out.split() == [record_id("acct", "p1"), record_id("acct", "p2")]
    code, out, _ = _run(cli_cfg, "reindex", "--json")
    assert code == 0 and json.loads(out) == {"indexed": 3}
    code, out, err = _run(cli_cfg, "search", "created:[2026-01-01 TO 2026-03-31")
    assert code == 2 and out == ""
    assert err == "error: bad query at position 34: expected ']' to close the date range opened at position 9\n"
    code, out, _ = _run(cli_cfg, "search", "parade number")
    assert code == 0 and out.startswith("1-3 of 3 matching records\n")
    for cmd in ("search", "reindex"):
        code, out, _ = _run(cli_cfg, cmd, "--help")
        assert code == 0 and "Example:" in out


def test_raw_posting_reader_agrees_with_whoosh(filled: Archive) -> None:
    from whoosh import index

    from archiver.search.postings import open_segments

    ix = index.open_dir(str(filled.settings.storage.index_dir))
    with ix.reader() as reader:
        for seg in open_segments(reader, set()):
            for fieldname in ("text", "earlier", "author", "status", "created_month", "record_id"):
                for bterm in list(seg.reader.lexicon(fieldname))[:40]:
                    term = bterm.decode()
                    want = {m for m in seg.reader.postings(fieldname, bterm).all_ids()}
                    assert seg.postings(fieldname, term).ids() - seg.deleted == want, (fieldname, term)


def test_phrases_with_words_repeated_past_the_stored_positions(archive: Archive) -> None:
    cs = _session(archive, "acct", "facebook")
    t = datetime(2026, 3, 1, 12, tzinfo=UTC)
    text = "go go go go go go team go team"  # 'go' more than four times: positions not kept in the index
    cs.store_page(FEED, _ex(archive), [_item("p1", "post", text, "PD", t), _item("p2", "post", "team go", "PD", t)])
    indexer.catch_up(archive)
    assert _ids(archive, '"go team"') == {record_id("acct", "p1")}
    assert _ids(archive, '"team go"') == {record_id("acct", "p1"), record_id("acct", "p2")}
    assert _ids(archive, '"team team"') == set()


def test_one_word_fast_path_equals_the_full_evaluation(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    """Common words are counted from posting-list lengths and ranked block by block: same answers."""
    from archiver.search import engine

    fill(archive, n=60, seed=5)
    indexer.catch_up(archive)  # a rebuild: one segment in created order
    cs = _session(archive, "apd-facebook", "facebook")  # edits after it: deletions in that segment
    cs.store_page(FEED, _ex(archive), [_item(f"n{i}", "comment", "snow crash parade", "X",
                                             datetime(2025, 6, 1, tzinfo=UTC), parent="apd-facebook-p")
                                       for i in (1, 2, 4, 5)])
    indexer.catch_up(archive)
    used: list[str] = []
    for name in ("scores", "ends"):
        real = getattr(engine._Lazy, name)
        monkeypatch.setattr(engine._Lazy, name, lambda self, *a, _r=real, _n=name: used.append(_n) or _r(self, *a))
    for q in ("crash", "parade", "snow", "burglary", "text:parade", "earlier:snow"):
        for sort in ("relevance", "newest", "oldest"):
            monkeypatch.setattr(engine, "LAZY", 10**9)
            want = search(archive, q, limit=7, offset=2, sort=sort)
            monkeypatch.setattr(engine, "LAZY", 1)
            assert search(archive, q, limit=7, offset=2, sort=sort) == want, (q, sort)
    assert "scores" in used and "ends" in used


def test_empty_archive_and_quiet_catch_up(archive: Archive, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    assert indexer.catch_up(archive) == 0
    assert search(archive, "police") == {"total": 0, "hits": []}
    assert search(archive, "status:removed", sort="newest")["total"] == 0
    with pytest.raises(UsageError, match="only very common words"):
        search(archive, "the and")

    def broken(arch: Archive, progress: Any = None) -> int:
        raise indexer.IndexBusy("locked")

    monkeypatch.setattr(indexer, "catch_up", broken)
    assert indexer.catch_up_quietly(archive) is None and "search index not updated" in caplog.text
