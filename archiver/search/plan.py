"""Turns a parsed query into index terms: analysis per field, phrases, prefixes, date ranges, NOT.

The result is a small tree of plan nodes that ``engine`` evaluates per segment. Words that analysis
drops (English stop words such as "the") are left out, as Whoosh does; a query with nothing but such
words is an error rather than an empty result.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ..errors import UsageError
from .query import And, DateRange, Node, Not, Or, QuerySyntaxError, Term
from .schema import analyze, norm, stem

MAX_EXPANSIONS = 4096  # words one prefix may stand for
TEXT_DEFAULT = ("text", "earlier")


class PNode:
    """A plan node."""

    def scoring(self) -> Iterator[tuple[str, str]]:
        """The (field, term) pairs that contribute to relevance (none under NOT)."""
        return iter(())


@dataclass(frozen=True)
class PTerm(PNode):
    field: str
    term: str
    score: bool = False

    def scoring(self) -> Iterator[tuple[str, str]]:
        if self.score:
            yield (self.field, self.term)


@dataclass(frozen=True)
class PPhrase(PNode):
    field: str
    terms: tuple[str, ...]
    score: bool = True

    def scoring(self) -> Iterator[tuple[str, str]]:
        if self.score:
            for t in dict.fromkeys(self.terms):
                yield (self.field, t)


@dataclass(frozen=True)
class PPrefix(PNode):
    field: str
    prefixes: tuple[str, ...]
    text: str
    pos: int

    def expanded(self, seg: Any) -> list[str]:
        """The words of this segment that start with one of the prefixes (capped)."""
        out: dict[str, None] = {}
        for p in self.prefixes:
            for bt in seg.reader.expand_prefix(self.field, p):
                out[bt.decode("utf-8", "replace")] = None
                if len(out) > MAX_EXPANSIONS:
                    raise QuerySyntaxError(self.pos, f"'{self.text}*' matches more than {MAX_EXPANSIONS} "
                                                     "different words: make the prefix longer")
        return list(out)


@dataclass(frozen=True)
class PDate(PNode):
    start: date | None
    end: date | None


@dataclass(frozen=True)
class PNot(PNode):
    item: PNode


@dataclass(frozen=True)
class POp(PNode):
    op: str  # and | or
    items: tuple[PNode, ...]

    def scoring(self) -> Iterator[tuple[str, str]]:
        for i in self.items:
            yield from i.scoring()


@dataclass
class Plan:
    """The plan's root, plus what the snippet highlighter needs."""

    root: PNode
    words: set[str] = field(default_factory=set)  # analyzed text terms to highlight
    prefixes: set[str] = field(default_factory=set)


def _any(nodes: list[PNode]) -> PNode:
    return nodes[0] if len(nodes) == 1 else POp("or", tuple(nodes))


class _Compiler:
    def __init__(self) -> None:
        self.words: set[str] = set()
        self.prefixes: set[str] = set()

    def node(self, n: Node) -> PNode | None:
        if isinstance(n, (And, Or)):
            items = [c for c in (self.node(i) for i in n.items) if c is not None]
            if not items:
                return None
            return items[0] if len(items) == 1 else POp("and" if isinstance(n, And) else "or", tuple(items))
        if isinstance(n, Not):
            inner = self.node(n.item)
            return None if inner is None else PNot(inner)
        if isinstance(n, DateRange):
            return PDate(n.start, n.end)
        return self.term(n)

    def term(self, t: Term) -> PNode | None:
        f = t.field
        if f in (None, "text", "earlier"):
            fields = TEXT_DEFAULT if f is None else (f,)
            if t.prefix:
                low = t.text.lower()
                pre = tuple(dict.fromkeys((low, stem(low))))
                self.prefixes.add(low)
                return _any([PPrefix(x, pre, t.text, t.pos) for x in fields])
            terms = [a[0] for a in analyze(t.text)]
            if not terms:
                return None
            self.words.update(terms)
            if len(terms) > 1:  # relevance comes from the latest text; earlier versions only widen the match
                return _any([PPhrase(x, tuple(terms), score=x == "text" or f == "earlier") for x in fields])
            if f is None:  # text OR earlier == text OR earlier_only (disjoint lists: cheap to count)
                return POp("or", (PTerm("text", terms[0], score=True), PTerm("earlier_only", terms[0])))
            return PTerm(f, terms[0], score=True)
        if f == "author":
            if t.prefix:
                return PPrefix("author", (t.text.lower(),), t.text, t.pos)
            words = [a[0] for a in analyze(t.text, stemming=False)]
            exact = PTerm("author_exact", norm(t.text))
            if not words:
                return exact
            loose: PNode = PTerm("author", words[0], score=True) if len(words) == 1 else PPhrase("author", tuple(words))
            return POp("or", (exact, loose)) if t.phrase else loose
        value = norm(t.text)
        if f in ("hashtags", "mentions"):
            value = value.lstrip("#@").replace(" ", "_")
        if not value:
            raise QuerySyntaxError(t.pos, f"empty value for {f}:")
        assert f is not None
        if t.prefix:
            return PPrefix(f, (value,), t.text, t.pos)
        return PTerm(f, value)


def compile_query(tree: Node) -> Plan:
    """The plan of a parsed query (UsageError if nothing searchable is left)."""
    c = _Compiler()
    root = c.node(tree)
    if root is None:
        raise UsageError("the query has only very common words, which are not indexed (such as 'the', 'and')")
    return Plan(root, c.words, c.prefixes)
