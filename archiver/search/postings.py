"""Low-level access to the index's segments: posting lists block by block, cached term sets, columns.

A term's posting list is read with one file read; its block headers (last docnum, count) are parsed
at once and block data (the W3 codec's pickled ids, weights and 8-byte position values) only when a
query needs that block. Full term sets are cached per segment (segments never change once written;
deletions are kept apart), within a budget of docnums, least recently used first out. This reads the
W3 codec's documented block layout directly; tests/test_search.py checks it against Whoosh's matchers.
"""

from __future__ import annotations

import io
import pickle
import struct
import sys
import zlib
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

CACHE_BUDGET = 3_000_000  # cached docnums across all segments (some 200 MB at most)
_INT = struct.Struct("!i")
DocSet = set[int] | frozenset[int]


class SegmentCache:
    """Term sets and columns of one immutable segment, kept between queries (LRU by size)."""

    def __init__(self) -> None:
        self.sets: OrderedDict[tuple[str, str], frozenset[int]] = OrderedDict()
        self.size = 0
        self.columns: dict[str, Any] = {}


_caches: OrderedDict[str, SegmentCache] = OrderedDict()


def _cache_for(segid: str) -> SegmentCache:
    c = _caches.pop(segid, None) or SegmentCache()
    _caches[segid] = c
    while len(_caches) > 64:
        _caches.popitem(last=False)
    return c


def _evict() -> None:
    total = sum(c.size for c in _caches.values())
    for c in list(_caches.values()):
        while total > CACHE_BUDGET and c.sets:
            _, s = c.sets.popitem(last=False)
            c.size -= len(s) + 1
            total -= len(s) + 1


class Postings:
    """One term's posting list in one segment: headers parsed at once, block data decoded on demand."""

    def __init__(self, seg: Segment, fieldname: str, term: str):
        # (last id, count, data start, data end, zlib?, max weight, shortest document's length byte)
        self.blocks: list[tuple[int, int, int, int, bool, float, int]] = []
        self.data: dict[int, tuple[list[int], Any, bytes | None]] = {}
        r = seg.reader
        try:
            info = r._terms.term_info(fieldname, term.encode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 - TermNotFound / KeyError: no postings
            self.df = 0
            return
        self.df = info.doc_frequency()
        if info.is_inlined():
            ids, ws, vs = info.inlined_postings()
            self.blocks.append((ids[-1], len(ids), 0, 0, False, max(ws or [1.0]), 0))
            self.data[0] = (list(ids), ws, b"".join(vs) if vs and isinstance(vs[0], bytes) else None)
            return
        offset, length = info.extent()
        length = length[0] if isinstance(length, tuple) else length
        self.buf = buf = r._terms._postfile.get(offset, length)
        bio, pos = io.BytesIO(buf), 4  # after the posting list's magic number
        while True:
            (n,) = _INT.unpack_from(buf, pos)
            bio.seek(pos + 4)
            count, last, maxw, comp, minlen, _ = pickle.load(bio)
            end = pos + 4 + abs(n)
            self.blocks.append((last, count, bio.tell(), end, bool(comp), maxw, minlen))
            if n < 0:
                break
            pos = end

    def block(self, i: int) -> tuple[list[int], Any, bytes | None]:
        got = self.data.get(i)
        if got is None:
            start, end, comp = self.blocks[i][2:5]
            raw = self.buf[start:end]
            ids, ws, vs = pickle.loads(zlib.decompress(raw) if comp else raw)
            got = self.data[i] = (list(accumulate(ids)), ws, vs)
        return got

    def ids(self) -> set[int]:
        out: set[int] = set()
        for i in range(len(self.blocks)):
            out.update(self.block(i)[0])
        return out

    def blocks_for(self, docs: DocSet) -> Iterator[tuple[list[int], Any, bytes | None]]:
        """The decoded blocks that can hold any of these documents (all of them when docs are many)."""
        if len(docs) * 4 >= self.df:
            for i in range(len(self.blocks)):
                yield self.block(i)
            return
        srt = sorted(docs)
        lo = 0
        for i, blk in enumerate(self.blocks):
            last = blk[0]
            k = bisect_left(srt, lo)
            if k < len(srt) and srt[k] <= last:
                yield self.block(i)
            lo = last + 1

    def within(self, cands: DocSet) -> set[int]:
        """The candidates that have this term, decoding only the blocks that can hold them."""
        out: set[int] = set()
        for ids, _, _ in self.blocks_for(cands):
            out.update(cands.intersection(ids))
        return out

    def values(self, docs: DocSet) -> dict[int, bytes]:
        """The 8-byte position value of each of these documents that has the term."""
        out: dict[int, bytes] = {}
        for ids, _, vs in self.blocks_for(docs):
            if vs is None:
                continue
            for d in docs.intersection(ids):
                k = 8 * bisect_left(ids, d)
                out[d] = vs[k:k + 8]
        return out


@dataclass
class Segment:
    """One leaf reader with its global docnum offset and deletions; ``ordered``: docnum order is date order."""

    reader: Any
    offset: int
    cache: SegmentCache
    deleted: frozenset[int]
    count: int
    ordered: bool = False
    memo: dict[tuple[str, str], Postings] = field(default_factory=dict)
    scratch: dict[Any, Any] = field(default_factory=dict)  # per-query results (date sets ...)

    def postings(self, fieldname: str, term: str) -> Postings:
        key = (fieldname, term)
        p = self.memo.get(key)
        if p is None:
            p = self.memo[key] = Postings(self, fieldname, term)
        return p

    def term_set(self, fieldname: str, term: str) -> frozenset[int]:
        key = (fieldname, term)
        got = self.cache.sets.get(key)
        if got is None:
            got = self.cache.sets[key] = frozenset(self.postings(fieldname, term).ids())
            self.cache.size += len(got) + 1
        else:
            self.cache.sets.move_to_end(key)
        return got

    def term_docs(self, fieldname: str, term: str, within: DocSet | None) -> DocSet:
        if within is None or (fieldname, term) in self.cache.sets:
            got = self.term_set(fieldname, term)
            return got if within is None else got & within
        return self.postings(fieldname, term).within(within)

    def all(self) -> frozenset[int]:
        got = self.cache.columns.get("all")
        if got is None:
            got = self.cache.columns["all"] = frozenset(range(self.count))
        return got  # type: ignore[no-any-return]

    def lengths(self, fieldname: str) -> bytes:
        """The field-length byte of every document (BM25's document length)."""
        got = self.cache.columns.get("len:" + fieldname)
        if got is None:
            from whoosh.codec.whoosh3 import LENGTHS_COLUMN, _lenfield

            cr = self.reader._perdoc._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
            got = b"" if cr is None else cr._dbfile.get(cr._basepos, cr._count)
            got = self.cache.columns["len:" + fieldname] = got + bytes(self.count - len(got))
        return got  # type: ignore[no-any-return]

    def created(self) -> array[int]:
        """The ``created`` sort column (microseconds since 1970, UTC) of every document."""
        got = self.cache.columns.get("created")
        if got is None:
            got = array("Q")
            pdr = self.reader._perdoc
            if pdr.has_column("created"):
                cr = pdr.column_reader("created", self.reader.schema["created"].column_type)
                got.frombytes(cr._dbfile.get(cr._basepos, cr._count * 8))
                if sys.byteorder == "little":
                    got.byteswap()
            got.extend([0] * (self.count - len(got)))
            self.cache.columns["created"] = got
        return got  # type: ignore[no-any-return]


def open_segments(reader: Any, ordered: set[str]) -> list[Segment]:
    """The leaf segments of a whoosh reader (``ordered``: ids of segments written in created order)."""
    segs = []
    for r, off in reader.leaf_readers():
        if r.segment() is None:  # an empty index
            continue
        segid = r.segment().segment_id()
        deleted = r.deleted_docs_set if r.has_deletions() else frozenset()
        segs.append(Segment(r, off, _cache_for(segid), deleted, r.doc_count_all(), segid in ordered))
    return segs
