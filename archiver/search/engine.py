"""Evaluates a query plan over each segment with set algebra, then counts and ranks the matches.

Whoosh's own search loop visits every matching posting through several Python generator layers and
re-derives filters for every query; at a million records a word + date range + platform query took
seconds. Here an AND evaluates its most selective part first and probes the others only in the
posting blocks that can hold those candidates; filters come from cached per-segment sets; the count
is ``len()`` of the final set. Ranking picks only the top ``want``: BM25 (k1 1.2, b 0.75) over the
query's words (ties: newer first), or newest/oldest from the ``created`` column. Segments written by a
rebuild are in created order, so there the newest matches are simply the highest document numbers.
"""

from __future__ import annotations

import heapq
import math
import struct
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter
from typing import Any

from whoosh.util.numeric import byte_to_length

from .plan import PDate, PNode, PNot, POp, PPhrase, PPrefix, PTerm
from .postings import DocSet, Postings, Segment, _evict
from .schema import OVERFLOW, analyze

K1, B = 1.2, 0.75
_B2L = [byte_to_length(i) for i in range(256)]
_POS = struct.Struct("<4H")


def estimate(node: PNode, seg: Segment) -> int:
    """Roughly how many documents of the segment a node matches (to evaluate the smallest first)."""
    if isinstance(node, PTerm):
        got = seg.cache.sets.get((node.field, node.term))
        return len(got) if got is not None else seg.postings(node.field, node.term).df
    if isinstance(node, PPhrase):
        return min(seg.postings(node.field, t).df for t in node.terms)
    if isinstance(node, PDate):
        return len(_dates(node, seg))
    if isinstance(node, PPrefix):
        return sum(seg.postings(node.field, t).df for t in node.expanded(seg))
    if isinstance(node, POp):
        sizes = [estimate(i, seg) for i in node.items if not isinstance(i, PNot)]
        return (min(sizes) if node.op == "and" else sum(sizes)) if sizes else seg.count
    return seg.count


def evaluate(node: PNode, seg: Segment, within: DocSet | None = None) -> DocSet:
    """The segment-local docnums a node matches, restricted to ``within`` when given."""
    if isinstance(node, PTerm):
        return seg.term_docs(node.field, node.term, within)
    if isinstance(node, PPrefix):
        out: set[int] = set()
        for t in node.expanded(seg):
            out |= seg.term_docs(node.field, t, within)
        return out
    if isinstance(node, PDate):
        got = _dates(node, seg)
        return got if within is None else got & within
    if isinstance(node, PPhrase):
        return _phrase(node, seg, within)
    if isinstance(node, PNot):
        base = seg.all() if within is None else within
        return base - evaluate(node.item, seg, base)
    assert isinstance(node, POp)
    if node.op == "or":
        return set().union(*(evaluate(i, seg, within) for i in node.items))
    pos = sorted((i for i in node.items if not isinstance(i, PNot)), key=lambda i: estimate(i, seg))
    res: DocSet | None = within
    for item in pos:
        res = evaluate(item, seg, res)
        if not res:
            return set()
    if res is None:
        res = seg.all()
    for item in node.items:
        if isinstance(item, PNot) and res:
            res = res - evaluate(item.item, seg, res)
    return res


def _dates(node: PDate, seg: Segment) -> DocSet:
    """Whole months inside the range as month terms, the days at its ends as day terms (cached sets)."""
    got = seg.scratch.get(node)
    if got is not None:
        return got  # type: ignore[no-any-return]
    parts: list[frozenset[int]] = []
    lo = node.start.isoformat() if node.start else ""
    hi = node.end.isoformat() if node.end else "9999-12-31"
    for bt in seg.reader.lexicon("created_month"):
        month = bt.decode()
        if month + "-31" < lo or month + "-01" > hi:
            continue
        if month + "-01" >= lo and _month_end(month) <= hi:
            parts.append(seg.term_set("created_month", month))
        else:
            parts.extend(seg.term_set("created_day", d.decode())
                         for d in seg.reader.expand_prefix("created_day", month + "-") if lo <= d.decode() <= hi)
    got = parts[0] if len(parts) == 1 else frozenset().union(*parts)
    seg.scratch[node] = got
    return got


def _month_end(month: str) -> str:
    y, m = int(month[:4]), int(month[5:7])
    return date.fromordinal(date(y + m // 12, m % 12 + 1, 1).toordinal() - 1).isoformat()


def _phrase(node: PPhrase, seg: Segment, within: DocSet | None) -> DocSet:
    """Documents with the terms at consecutive positions (stop words are already left out by analysis)."""
    cand: DocSet | None = within
    for t in sorted(node.terms, key=lambda t: seg.postings(node.field, t).df):
        cand = seg.term_docs(node.field, t, cand)
        if not cand:
            return set()
    assert cand is not None
    vals = [seg.postings(node.field, t).values(cand) for t in node.terms]
    out = set()
    first, rest = vals[0], list(enumerate(vals[1:], 1))
    for d in cand:
        v0 = first.get(d)
        if v0 is None:
            continue
        vs = [(k, v.get(d)) for k, v in rest]
        if v0 == OVERFLOW or any(v == OVERFLOW for _, v in vs):
            if _phrase_in_stored(node, seg, d):
                out.add(d)
            continue
        p = _POS.unpack(v0)
        starts = {p[0]} if p[1] == 0xFFFF else {x for x in p if x != 0xFFFF}
        for k, v in vs:
            if v is None:
                starts = set()
                break
            q = _POS.unpack(v)
            starts &= {q[0] - k} if q[1] == 0xFFFF else {x - k for x in q if x != 0xFFFF}
            if not starts:
                break
        if starts:
            out.add(d)
    return out


def _phrase_in_stored(node: PPhrase, seg: Segment, d: int) -> bool:
    """The phrase check from the stored text, for terms too frequent in the document to keep positions."""
    text = seg.reader.stored_fields(d).get(node.field) or ""
    pos: dict[str, set[int]] = {}
    for term, p, _, _ in analyze(text, stemming=node.field != "author"):
        pos.setdefault(term, set()).add(p)
    starts = pos.get(node.terms[0], set())
    for k, t in enumerate(node.terms[1:], 1):
        starts = {s for s in starts if s + k in pos.get(t, ())}
    return bool(starts)


@dataclass
class Ranked:
    """How many documents match, and the first ``want`` of them in order."""

    total: int
    top: list[tuple[Segment, int]] = field(default_factory=list)  # (segment, local docnum), first first


LAZY = 20_000  # a single word in more documents than this is counted and ranked without listing them
LAZY_WANT = 10_000  # ... when at most this many hits are wanted


@dataclass
class _Lazy:
    """A one-word query's matches in a segment: the word's posting list in the latest text (counted from
    its length, ranked block by block) plus the few documents only an earlier version matches."""

    leaves: list[PTerm]
    big: PTerm
    postings: Postings
    small: DocSet  # documents of the other leaves (live), scored exactly
    dead: DocSet
    count: int

    def scores(self, seg: Segment, stats: Any, want: int) -> dict[int, float]:
        """Exact BM25 of at least the best ``want`` documents: blocks in order of their best possible
        score (max weight, shortest document), stopping when no unread block can beat the kth score."""
        out = dict.fromkeys(self.small, 0.0)  # earlier-version-only matches rank after the text's
        heap = heapq.nlargest(want, out.values())
        heapq.heapify(heap)
        k, norm = _params(self.big.field, self.big.term, stats)
        lens = seg.lengths(self.big.field)
        bounds = sorted(((k * b[5] / (b[5] + norm[b[6]]), i) for i, b in enumerate(self.postings.blocks)),
                        reverse=True)
        skip = self.small | self.dead if self.dead else self.small
        for ub, i in bounds:
            if len(heap) >= want and ub < heap[0]:
                break
            ids, ws, _ = self.postings.block(i)
            if ws is None or isinstance(ws, float):
                ws = [ws or 1.0] * len(ids)
            for d, w in zip(ids, ws, strict=True):
                if d in skip:
                    continue
                sc = out[d] = k * w / (w + norm[lens[d]])
                if len(heap) < want:
                    heapq.heappush(heap, sc)
                elif sc > heap[0]:
                    heapq.heapreplace(heap, sc)
        return out

    def ends(self, want: int, oldest: bool) -> DocSet:
        """At least the ``want`` first (oldest) or last (newest) live documents of a date-ordered segment."""
        got = set(self.small)
        n = len(self.postings.blocks)
        for i in (range(n) if oldest else range(n - 1, -1, -1)):
            got.update(d for d in self.postings.block(i)[0] if d not in self.dead)
            if len(got) >= want + len(self.small):
                break
        return got


def _one_word(node: PNode) -> list[PTerm] | None:
    """The leaves of a query that is one word: a scored term, or text OR earlier_only."""
    if isinstance(node, PTerm) and node.score:
        return [node]
    if (isinstance(node, POp) and node.op == "or" and len(node.items) == 2 and isinstance(node.items[0], PTerm)
            and isinstance(node.items[1], PTerm) and node.items[1].field == "earlier_only"):
        return [node.items[0], node.items[1]]
    return None


def _lazy(leaves: list[PTerm], seg: Segment, sort: str) -> _Lazy | None:
    if sort != "relevance" and not seg.ordered:
        return None
    big = leaves[0]
    bigp = seg.postings(big.field, big.term)
    if bigp.df < LAZY:
        return None
    # Documents that only an earlier version matches: disjoint from the latest text's postings.
    small: DocSet = seg.term_set(leaves[1].field, leaves[1].term) - seg.deleted if len(leaves) > 1 else set()
    dead_big = bigp.within(seg.deleted) if seg.deleted else set()
    return _Lazy(leaves, big, bigp, small, seg.deleted, bigp.df - len(dead_big) + len(small))


def run(plan: PNode, segs: list[Segment], stats: Any, *, want: int, sort: str) -> Ranked:
    """Count every match and rank the first ``want`` by relevance, newest or oldest."""
    leaves = _one_word(plan)
    parts: list[DocSet | _Lazy] = []
    for seg in segs:
        lazy = _lazy(leaves, seg, sort) if leaves and want <= LAZY_WANT else None
        if lazy is not None:
            parts.append(lazy)
            continue
        m = evaluate(plan, seg)
        parts.append(m - seg.deleted if seg.deleted and m else m)
    _evict()
    total = sum(p.count if isinstance(p, _Lazy) else len(p) for p in parts)
    if not total or want <= 0:
        return Ranked(total)
    scored = list(dict.fromkeys(plan.scoring())) if sort == "relevance" else []
    oldest = sort == "oldest"
    cands: list[tuple[tuple[Any, ...], Segment, int]] = []
    for seg, part in zip(segs, parts, strict=True):
        created = seg.created()
        if scored:
            sc = part.scores(seg, stats, want) if isinstance(part, _Lazy) else _bm25(scored, seg, part, stats)
            best = heapq.nlargest(want, sc.items(), key=itemgetter(1))
            cands += [((round(s, 9), created[d], seg.offset + d), seg, d) for d, s in best]
            continue
        m = part.ends(want, oldest) if isinstance(part, _Lazy) else part
        pick = heapq.nsmallest if oldest else heapq.nlargest
        docs = pick(want, m) if seg.ordered else pick(want, m, key=created.__getitem__)
        cands += [((created[d], seg.offset + d), seg, d) for d in docs]
    top = (heapq.nsmallest if oldest and not scored else heapq.nlargest)(want, cands, key=itemgetter(0))
    return Ranked(total, [(seg, d) for _, seg, d in top])


def _params(fieldname: str, term: str, stats: Any) -> tuple[float, list[float]]:
    """BM25's idf * (k1 + 1) for a term, and the length normalisation for each length byte."""
    df = stats.df(fieldname, term)
    idf = math.log(1 + (stats.docs - df + 0.5) / (df + 0.5))
    avg = stats.avglen(fieldname) or 1.0
    return idf * (K1 + 1), [K1 * (1 - B + B * _B2L[i] / avg) for i in range(256)]


def _bm25(leaves: list[tuple[str, str]], seg: Segment, m: DocSet, stats: Any) -> dict[int, float]:
    """BM25 of each matching document over the query's (field, term) pairs."""
    scores: dict[int, float] = dict.fromkeys(m, 0.0)
    for fieldname, term in leaves:
        if not stats.df(fieldname, term):
            continue
        k, norm = _params(fieldname, term, stats)
        lens = seg.lengths(fieldname)
        for ids, ws, _ in seg.postings(fieldname, term).blocks_for(m):
            hit = m.intersection(ids)
            if ws is None or isinstance(ws, float):
                w = ws or 1.0
                for d in hit:
                    scores[d] += k * w / (w + norm[lens[d]])
            else:
                for d in hit:
                    w = ws[bisect_left(ids, d)]
                    scores[d] += k * w / (w + norm[lens[d]])
    return scores
