"""The search index's fields, its text analysis, and the one function that turns a record into a document.

Text analysis is Whoosh's ``StemmingAnalyzer`` (its default word pattern, lower-casing, its English stop
words, Porter stemming), re-implemented as one tight loop: the stock analyzer is a chain of generators
per token and was the largest single cost of indexing. ``tests/test_search.py`` checks that both give
the same terms and positions.

Dates: ``created`` is a DATETIME column (exact UTC time, used to sort) that is not indexed as terms;
date queries use ``created_month`` (``2026-03``) and ``created_day`` (``2026-03-15``) terms in the
agency's time zone, so a range expands to a few whole months plus the odd days at its ends. Records
without a platform time are dated by their first capture.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from whoosh import fields, formats
from whoosh.analysis import STOP_WORDS, Token, Tokenizer
from whoosh.codec import whoosh3
from whoosh.lang.porter import stem as porter_stem

# Bump when fields or analysis change: an index built by another version is rebuilt.
SCHEMA_VERSION = 1

WORD = re.compile(r"\w+(?:\.?\w+)*")  # whoosh.analysis.RegexTokenizer's default pattern
STOP = frozenset(STOP_WORDS)
_stems: dict[str, str] = {}


def stem(word: str) -> str:
    """Porter stem of a lower-case word (cached)."""
    s = _stems.get(word)
    if s is None:
        if len(_stems) > 200_000:
            _stems.clear()
        s = _stems[word] = porter_stem(word)
    return s


def analyze(text: str, stemming: bool = True) -> list[tuple[str, int, int, int]]:
    """(term, position, start char, end char) of each indexed word, as StemmingAnalyzer numbers them."""
    out = []
    pos = first = -1
    for i, m in enumerate(WORD.finditer(text)):
        w = m.group().lower()
        if stemming:
            if len(w) < 2 or w in STOP:
                continue
            w = stem(w)
        pos = i if first < 0 else pos + 1
        first = 0
        out.append((w, pos, m.start(), m.end()))
    return out


def terms_positions(text: str, stemming: bool = True) -> dict[str, list[int]]:
    """Each term of a text with its positions (the indexing fast path)."""
    poses: dict[str, list[int]] = {}
    words = [w.lower() for w in WORD.findall(text)]
    if stemming:
        kept = [(i, w) for i, w in enumerate(words) if len(w) > 1 and w not in STOP]
        base = kept[0][0] if kept else 0
        for k, (_, w) in enumerate(kept):
            s = _stems.get(w) or stem(w)
            lst = poses.get(s)
            if lst is None:
                poses[s] = [base + k]
            else:
                lst.append(base + k)
    else:
        for i, w in enumerate(words):
            poses.setdefault(w, []).append(i)
    return poses


class StemTokenizer(Tokenizer):  # type: ignore[misc]
    """A whoosh analyzer equal to StemmingAnalyzer() (or, stemming=False, to a lower-casing tokenizer)."""

    def __init__(self, stemming: bool = True):
        self.stemming = stemming

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.stemming == self.stemming  # type: ignore[attr-defined]

    def __call__(self, value: str, positions: bool = False, chars: bool = False, keeporiginal: bool = False,
                 removestops: bool = True, start_pos: int = 0, start_char: int = 0, tokenize: bool = True,
                 mode: str = "", **kwargs: Any) -> Iterator[Token]:
        t = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        spans = analyze(value, self.stemming) if tokenize else [(value.lower(), 0, 0, len(value))]
        for term, pos, sc, ec in spans:
            t.text, t.boost, t.stopped = term, 1.0, False
            if keeporiginal:
                t.original = value[sc:ec]
            if positions:
                t.pos = start_pos + pos
            if chars:
                t.startchar, t.endchar = start_char + sc, start_char + ec
            yield t


_POS = struct.Struct("<4H")
OVERFLOW = b"\xfe\xff" * 4


class CompactPositions(formats.Positions):  # type: ignore[misc]
    """Term positions in a fixed 8 bytes per posting: up to four positions below 65534, unused slots
    0xFFFF; a term that occurs more often (or further in) is marked OVERFLOW and phrase checks re-read the
    stored text. Fixed-size values make the codec store a block's values as one bytes object, which
    decodes ~5x faster than Whoosh's per-posting pickles (and is smaller)."""

    def fixed_value_size(self) -> int:
        return 8

    def encode(self, poslist: Sequence[int]) -> bytes:
        if len(poslist) <= 4 and poslist[-1] < 0xFFFE:
            return _POS.pack(*poslist, *(0xFFFF,) * (4 - len(poslist)))
        return OVERFLOW

    def decode_positions(self, value: bytes) -> list[int] | None:
        """The positions, or None when they were too many to store (OVERFLOW)."""
        if value == OVERFLOW:
            return None
        return [p for p in _POS.unpack(value) if p != 0xFFFF]

    def decode_frequency(self, value: bytes) -> int:
        got = self.decode_positions(value)
        return 5 if got is None else len(got)


class FastText(fields.TEXT):  # type: ignore[misc]
    """TEXT with positions (CompactPositions) whose indexing skips the per-token generator chain."""

    def __init__(self, stemming: bool = True, stored: bool = False):
        super().__init__(analyzer=StemTokenizer(stemming), stored=stored, phrase=True)
        self.format = CompactPositions(field_boost=1.0)
        self.stemming = stemming

    def index(self, value: str, **kwargs: Any) -> Iterator[tuple[bytes, int, float, bytes]]:
        encode = self.format.encode
        for term, poslist in terms_positions(value, self.stemming).items():
            yield _bytes(term), len(poslist), float(len(poslist)), encode(poslist)


class Exact(fields.ID):  # type: ignore[misc]
    """An exact, untokenized value (callers lower-case it); ``multi`` splits on spaces (hashtags)."""

    def __init__(self, stored: bool = False, unique: bool = False, multi: bool = False):
        super().__init__(stored=stored, unique=unique)
        self.multi = multi

    def index(self, value: str, **kwargs: Any) -> Iterator[tuple[bytes, int, float, bytes]]:
        for v in (dict.fromkeys(value.split()) if self.multi else (value,)):
            yield _bytes(v), 1, 1.0, b""


def _bytes(term: str) -> bytes:
    return term.encode("utf-8", "replace") if not term.isascii() else term.encode("ascii")


def make_schema() -> fields.Schema:
    """The index schema (query.py lists how queries name these fields)."""
    created = fields.DATETIME(sortable=True)
    created.indexed = False  # sort column only; date terms are in created_month / created_day
    return fields.Schema(
        record_id=Exact(stored=True, unique=True), platform=Exact(), account=Exact(), kind=Exact(),
        status=Exact(), author=FastText(stemming=False, stored=True), author_exact=Exact(), created=created,
        created_month=Exact(), created_day=Exact(), text=FastText(stored=True), earlier=FastText(stored=True),
        earlier_only=Exact(multi=True), hashtags=Exact(multi=True), mentions=Exact(multi=True), permalink=Exact(),
    )


@dataclass
class RecordDoc:
    """What the index needs of a record: its row plus the text and extras of each version, oldest first."""

    record_id: str
    platform: str
    account: str
    kind: str
    status: str
    author: str | None
    created_at: datetime | None
    first_captured_at: datetime | None
    permalink: str | None
    texts: Sequence[str | None]
    extras: Sequence[str | None]


def norm(value: str) -> str:
    """How exact values are compared: case-folded, inner whitespace collapsed, valid UTF-8."""
    v = " ".join(value.casefold().split())
    return v if v.isascii() else v.encode("utf-8", "replace").decode("utf-8")


def _tags(extras: Iterable[str | None], key: str) -> str | None:
    seen: dict[str, None] = {}
    for raw in extras:
        try:
            vals = json.loads(raw).get(key) if raw else None
        except (ValueError, AttributeError):
            vals = None
        for v in vals or ():
            if isinstance(v, str) and (t := norm(v).lstrip("#@").replace(" ", "_")):
                seen[t] = None
    return " ".join(seen) or None


def build_document(rec: RecordDoc, tz: tzinfo) -> dict[str, Any]:
    """The index document of one record (the single place that decides what is searchable)."""
    latest = rec.texts[-1] if rec.texts else None
    earlier = [t for t in dict.fromkeys(x for x in rec.texts[:-1] if x) if t != latest]
    when = rec.created_at or rec.first_captured_at
    doc: dict[str, Any] = {
        "record_id": rec.record_id, "platform": norm(rec.platform), "account": norm(rec.account),
        "kind": rec.kind, "status": rec.status, "text": latest or "",
        "hashtags": _tags(rec.extras, "hashtags"), "mentions": _tags(rec.extras, "mentions"),
    }
    if earlier:
        doc["earlier"] = "\n".join(earlier)
        # The words only earlier versions have: a word query matches text OR earlier_only, two disjoint
        # posting lists, so it is counted and ranked without comparing them.
        gone = set(terms_positions(doc["earlier"])) - set(terms_positions(doc["text"]))
        if gone:
            doc["earlier_only"] = " ".join(sorted(gone))
    if rec.author:
        doc["author"], doc["author_exact"] = rec.author, norm(rec.author)
    if rec.permalink:
        doc["permalink"] = norm(rec.permalink)
    if when is not None:
        local = when.astimezone(tz)
        doc["created"] = when.astimezone(UTC).replace(tzinfo=None)
        doc["created_month"] = f"{local.year:04d}-{local.month:02d}"
        doc["created_day"] = f"{doc['created_month']}-{local.day:02d}"
    return {k: v for k, v in doc.items() if v is not None}


def _cached_reader(self: Any, fieldname: str, column: Any) -> Any:
    # Whoosh looks up each posting's field length while writing a segment; for fields without a
    # length column (every ID field) the stock method stats the file system each time. Same result,
    # cached. (A segment's files never change once written.)
    try:
        return self._readers[fieldname]
    except KeyError:
        reader = self.column_reader(fieldname, column) if self.has_column(fieldname) else None
        self._readers[fieldname] = reader
        return reader


whoosh3.W3PerDocReader._cached_reader = _cached_reader
