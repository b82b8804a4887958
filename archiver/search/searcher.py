"""``search()``: parse, run over the index, then hydrate the hits from the database.

The index decides which records match and in what order; what a hit shows (status, author, dates,
account) is read from the database, so it always reflects the archive. A record that the index still
holds but the database no longer has, or has disposed, is not shown (and not counted, when seen).

Snippets: up to ~160 characters of the latest text around the best cluster of matched words, each
matched word wrapped in « and » (U+00AB, U+00BB). Snippets are plain text, not HTML: the record's own
characters are left as they are, so whoever renders them must escape them like any other record text.
When only an earlier version matched, the snippet is taken from it and starts with "(earlier version) ".

Relevance is BM25 over the latest text (and author words); records that only an earlier version
matches come after those, newest first. Ties are broken newest first.

The opened index is kept per index directory and reused while its generation is unchanged, so a
long-lived process pays for opening it once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ..archive import Archive
from ..db.models import Account, Record
from ..errors import ArchiverError, UsageError
from .engine import run
from .indexer import MARKER, _marker
from .plan import Plan, compile_query
from .postings import Segment, open_segments
from .query import parse
from .schema import analyze

SORTS = ("relevance", "newest", "oldest")
SNIPPET = 160
SLACK = 10  # extra candidates ranked so that hits dropped by hydration can be replaced


class IndexMissing(ArchiverError):
    """There is no usable search index (``archiver reindex`` builds one)."""


@dataclass
class _Handle:
    ix: Any
    reader: Any
    generation: int
    index_id: str | None
    ordered: set[str]


_handles: dict[str, _Handle] = {}


def _reader(archive: Archive) -> tuple[Any, set[str]]:
    """A reader of the current index generation (reused while nothing changed), and the ids of its
    segments that a rebuild wrote in created order."""
    from whoosh import index
    from whoosh.index import EmptyIndexError

    d = archive.settings.storage.index_dir
    key = str(d)
    mark = _marker(d) or {}
    h = _handles.get(key)
    try:
        if h is not None and h.index_id == mark.get("index_id") and h.ix.latest_generation() == h.generation:
            return h.reader, h.ordered
        ix = index.open_dir(key)
        reader = ix.reader()
    except (EmptyIndexError, OSError) as exc:
        raise IndexMissing(f"no search index in {d} ({MARKER} or index files missing): run `archiver reindex`") \
            from exc
    if h is not None:
        h.reader.close()
    h = _handles[key] = _Handle(ix, reader, reader.generation(), mark.get("index_id"), set(mark.get("ordered", ())))
    return h.reader, h.ordered


def close_all() -> None:
    """Close every cached index reader (tests; before deleting an index directory)."""
    for h in _handles.values():
        h.reader.close()
    _handles.clear()


class _Stats:
    """Collection statistics for BM25: live documents, document frequencies, average field lengths."""

    def __init__(self, segs: list[Segment], reader: Any):
        self.reader = reader
        self.docs = max(1, sum(s.count - len(s.deleted) for s in segs))
        self._df: dict[tuple[str, str], int] = {}

    def df(self, fieldname: str, term: str) -> int:
        k = (fieldname, term)
        if k not in self._df:
            try:
                self._df[k] = int(self.reader.doc_frequency(fieldname, term))
            except Exception:  # noqa: BLE001 - a term the index does not have
                self._df[k] = 0
        return self._df[k]

    def avglen(self, fieldname: str) -> float:
        return float(self.reader.field_length(fieldname)) / max(1, self.reader.doc_count_all())


def search(archive: Archive, query: str, *, limit: int | None = 20, offset: int = 0, sort: str = "relevance",
           snippets: bool = True) -> dict[str, Any]:
    """Run a query: {"total", "hits": [{"record_id", "platform", "account", "kind", "author", "created_at",
    "status", "snippet"}]}. ``limit=None`` returns every match. Bad queries raise UsageError."""
    if sort not in SORTS:
        raise UsageError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    if (limit is not None and limit < 1) or offset < 0:
        raise UsageError("limit must be at least 1 and offset at least 0")
    plan = compile_query(parse(query))
    try:
        return _search(archive, plan, limit, offset, sort, snippets)
    except OSError:
        # A concurrent commit merged away a segment this process still had open: read the new one.
        _handles.pop(str(archive.settings.storage.index_dir), None)
        return _search(archive, plan, limit, offset, sort, snippets)


def _search(archive: Archive, plan: Plan, limit: int | None, offset: int, sort: str,
            snippets: bool) -> dict[str, Any]:
    reader, ordered = _reader(archive)
    segs = open_segments(reader, ordered)
    want = 1 << 62 if limit is None else offset + limit + SLACK
    ranked = run(plan.root, segs, _Stats(segs, reader), want=want, sort=sort)
    hits: list[dict[str, Any]] = []
    dropped, pos, top = 0, offset, ranked.top
    while pos < len(top) and (limit is None or len(hits) < limit):
        chunk = top[pos:pos + (1000 if limit is None else limit - len(hits))]
        pos += len(chunk)
        stored = [seg.reader.stored_fields(d) for seg, d in chunk]
        rows = _hydrate(archive, [st["record_id"] for st in stored])
        for st in stored:
            row = rows.get(st["record_id"])
            if row is None:
                dropped += 1
                continue
            if snippets:
                row["snippet"] = snippet(plan, st.get("text") or "", st.get("earlier") or "")
            hits.append(row)
    return {"total": max(0, ranked.total - dropped), "hits": hits[:limit]}


def _iso(dt: Any) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def _hydrate(archive: Archive, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The current DB view of these records (missing and disposed ones left out)."""
    out: dict[str, dict[str, Any]] = {}
    with archive.db.read() as s:
        for start in range(0, len(ids), 1000):
            q = (select(Record.id, Record.platform, Account.name, Record.kind, Record.author, Record.created_at,
                        Record.status).join(Account, Account.id == Record.account_id)
                 .where(Record.id.in_(ids[start:start + 1000]), Record.status != "disposed"))
            for rid, platform, account, kind, author, created, status in s.execute(q):
                out[rid] = {"record_id": rid, "platform": platform, "account": account, "kind": kind,
                            "author": author, "created_at": _iso(created), "status": status, "snippet": ""}
    return out


_WS = re.compile(r"\s+")


def _marks(plan: Plan, text: str) -> list[tuple[int, int]]:
    out = []
    for term, _, sc, ec in analyze(text):
        raw = text[sc:ec].lower()
        if term in plan.words or any(raw.startswith(p) or term.startswith(p) for p in plan.prefixes):
            out.append((sc, ec))
    return out


def snippet(plan: Plan, text: str, earlier: str = "") -> str:
    """A short extract of the text with the matched words in «»; plain text (see the module docstring)."""
    marks = _marks(plan, text) if plan.words or plan.prefixes else []
    label = ""
    if not marks and earlier and (plan.words or plan.prefixes):
        em = _marks(plan, earlier)
        if em:
            text, marks, label = earlier, em, "(earlier version) "
    if not marks:
        flat = _WS.sub(" ", text).strip()
        return label + (flat if len(flat) <= SNIPPET else flat[:SNIPPET].rsplit(" ", 1)[0] + "…")
    # The window (starting a little before a match, at a word boundary) that holds the most matches.
    best, best_n = 0, -1
    for sc, _ in marks:
        start = max(0, sc - 30)
        n = sum(1 for s2, e2 in marks if s2 >= start and e2 <= start + SNIPPET)
        if n > best_n:
            best, best_n = start, n
    if best > 0:
        space = text.rfind(" ", 0, best + 1)
        best = space + 1 if best - space <= 20 else best
    end = min(len(text), best + SNIPPET)
    if end < len(text):
        space = text.rfind(" ", best, end)
        end = space if space > best + SNIPPET // 2 else end
    parts, cur = [], best
    for sc, ec in marks:
        if sc >= best and ec <= end:
            parts += [text[cur:sc], "«", text[sc:ec], "»"]
            cur = ec
    parts.append(text[cur:end])
    body = _WS.sub(" ", "".join(parts)).strip()
    return label + ("…" if best > 0 else "") + body + ("…" if end < len(text) else "")
