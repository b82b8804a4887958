"""The search query language, parsed into a small tree; every mistake is a one-line error with its position.

    words and "exact phrases"          police "road closed"
    AND, OR, NOT (upper case), -word   crash AND (snow OR ice) NOT drill      -drill
    grouping with parentheses          (dog OR cat) found
    prefix                             burgl*
    fields                             platform:facebook account:apd-x kind:comment author:"Jane Doe"
                                       status:removed hashtag:safetyfirst mention:mayor text: earlier:
                                       id:rec_0123... permalink:"https://..."
    a field on a group                 status:(hidden OR removed)
    dates (agency time zone)           created:2026  created:2026-03  created:2026-03-15
                                       created:[2026-01-01 TO 2026-03-31]  created:[2025-06 TO *]

Words are AND-ed; AND binds tighter than OR; NOT applies to the next word or group. Bare words search
the latest text and the text of earlier versions. Positions in errors count characters from 1.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

from ..errors import UsageError

KINDS = ("post", "comment", "reply")
STATUSES = ("live", "edited", "hidden", "removed")
FIELD_ALIASES = {
    "platform": "platform", "account": "account", "kind": "kind", "status": "status", "author": "author",
    "created": "created", "text": "text", "earlier": "earlier", "hashtag": "hashtags", "hashtags": "hashtags",
    "mention": "mentions", "mentions": "mentions", "permalink": "permalink", "id": "record_id",
    "record": "record_id",
}


class QuerySyntaxError(UsageError):
    """A search query that cannot be parsed; the message names the position (from 1)."""

    def __init__(self, pos: int, message: str):
        self.pos = pos
        super().__init__(f"bad query at position {pos}: {message}")


@dataclass(frozen=True)
class Term:
    """A word, a prefix (``prefix``) or a quoted phrase (``phrase``) in one field (None: the text)."""

    field: str | None
    text: str
    pos: int
    prefix: bool = False
    phrase: bool = False


@dataclass(frozen=True)
class DateRange:
    """Records created on the days from ``start`` to ``end`` inclusive (None: open)."""

    start: date | None
    end: date | None
    pos: int


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node
    pos: int


Node = Term | DateRange | And | Or | Not

_TOKEN = re.compile(r"""\s*(?:(?P<field>[A-Za-z_]+):(?=\S)|(?P<punct>[()\[\]])|(?P<quote>")|(?P<word>[^\s()\[\]"]+))""")
_DATE = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")


@dataclass
class _Tok:
    kind: str  # field, punct, quote, word, end
    text: str
    pos: int  # 1-based


def _tokens(q: str) -> list[_Tok]:
    out, i = [], 0
    while i < len(q):
        if q[i].isspace():
            i += 1
            continue
        if q[i] == "-" and i + 1 < len(q) and not q[i + 1].isspace() and (i == 0 or q[i - 1] in " \t\n("):
            out.append(_Tok("minus", "-", i + 1))
            i += 1
            continue
        if q[i] == '"':
            end = q.find('"', i + 1)
            if end < 0:
                raise QuerySyntaxError(i + 1, "expected '\"' to close the phrase")
            out.append(_Tok("phrase", q[i + 1:end], i + 1))
            i = end + 1
            continue
        m = _TOKEN.match(q, i)
        assert m is not None and m.lastgroup is not None
        kind = m.lastgroup
        text = m.group(kind)
        out.append(_Tok(kind, text, m.start(kind) + 1))
        i = m.end()
    out.append(_Tok("end", "", len(q) + 1))
    return out


class _Parser:
    def __init__(self, q: str):
        self.toks = _tokens(q)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def is_op(self, t: _Tok, *ops: str) -> bool:
        return t.kind == "word" and t.text in ops

    def parse_or(self, field: str | None) -> Node:
        items = [self.parse_and(field)]
        while self.is_op(self.peek(), "OR"):
            self.take()
            items.append(self.parse_and(field))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self, field: str | None) -> Node:
        items = [self.parse_unary(field)]
        while True:
            t = self.peek()
            if t.kind == "end" or (t.kind == "punct" and t.text in ")]") or self.is_op(t, "OR"):
                break
            if self.is_op(t, "AND"):
                self.take()
            items.append(self.parse_unary(field))
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_unary(self, field: str | None) -> Node:
        t = self.peek()
        if self.is_op(t, "NOT"):
            self.take()
            return Not(self.parse_unary(field), t.pos)
        if t.kind == "minus":
            self.take()
            return Not(self.parse_unary(field), t.pos)
        return self.parse_primary(field)

    def parse_primary(self, field: str | None) -> Node:
        t = self.take()
        if t.kind == "end":
            raise QuerySyntaxError(t.pos, "expected a word, phrase or group at the end of the query")
        if t.kind == "punct":
            if t.text == "(":
                inner = self.parse_or(field)
                close = self.take()
                if close.kind != "punct" or close.text != ")":
                    raise QuerySyntaxError(close.pos, f"expected ')' to close the group opened at position {t.pos}")
                return inner
            if t.text == "[" and field == "created":
                return self.parse_range(t)
            if t.text == "[":
                raise QuerySyntaxError(t.pos, "a [range] is only allowed after created:")
            raise QuerySyntaxError(t.pos, f"unexpected '{t.text}'")
        if t.kind == "field":
            name = FIELD_ALIASES.get(t.text.lower())
            if name is None:
                raise QuerySyntaxError(t.pos, f"unknown field '{t.text}:' (fields: {', '.join(_field_names())}); "
                                              'put the words in quotes to search for them')
            if field is not None:
                raise QuerySyntaxError(t.pos, f"field '{t.text}:' inside a group that already has a field")
            return self.parse_primary(name)
        if self.is_op(t, "AND", "OR"):
            raise QuerySyntaxError(t.pos, f"{t.text} needs a word or group on each side")
        if t.kind == "phrase":
            if not t.text.strip():
                raise QuerySyntaxError(t.pos, "empty phrase")
            return self.value(field, t.text, t.pos, phrase=True)
        return self.value(field, t.text, t.pos)

    def value(self, field: str | None, text: str, pos: int, phrase: bool = False) -> Node:
        if field == "created":
            if phrase:
                text = text.strip()
            start, end = _period(text, pos)
            return DateRange(start, end, pos)
        prefix = False
        if not phrase and "*" in text:
            if text.index("*") != len(text) - 1 or len(text) < 2:
                raise QuerySyntaxError(pos + text.index("*"), "'*' is only allowed at the end of a word (prefix*)")
            text, prefix = text[:-1], True
        if field == "kind" and text.lower() not in KINDS and not prefix:
            raise QuerySyntaxError(pos, f"kind must be one of {', '.join(KINDS)}, not '{text}'")
        if field == "status" and text.lower() not in STATUSES and not prefix:
            raise QuerySyntaxError(pos, f"status must be one of {', '.join(STATUSES)}, not '{text}'")
        return Term(field, text, pos, prefix=prefix, phrase=phrase)

    def parse_range(self, open_tok: _Tok) -> Node:
        parts: list[_Tok] = []
        while True:
            t = self.take()
            if t.kind == "punct" and t.text == "]":
                break
            if t.kind == "end" or t.kind == "punct":
                raise QuerySyntaxError(t.pos, "expected ']' to close the date range "
                                              f"opened at position {open_tok.pos}")
            parts.append(t)
        words = [p.text for p in parts]
        to = [k for k, w in enumerate(words) if w.upper() == "TO"]
        if len(to) != 1 or len(parts) > 3:
            raise QuerySyntaxError(open_tok.pos, "a date range looks like [2026-01-01 TO 2026-03-31] "
                                                 "(either end may be *)")
        lo, hi = parts[: to[0]], parts[to[0] + 1:]
        start = None if not lo or lo[0].text == "*" else _period(lo[0].text, lo[0].pos)[0]
        end = None if not hi or hi[0].text == "*" else _period(hi[0].text, hi[0].pos)[1]
        if start and end and end < start:
            raise QuerySyntaxError(open_tok.pos, "the date range ends before it starts")
        return DateRange(start, end, open_tok.pos)


def _field_names() -> list[str]:
    return ["platform", "account", "kind", "status", "author", "created", "text", "earlier", "hashtag",
            "mention", "permalink", "id"]


def _period(text: str, pos: int) -> tuple[date, date]:
    """The first and last day of YYYY, YYYY-MM or YYYY-MM-DD."""
    m = _DATE.match(text)
    try:
        if not m:
            raise ValueError
        y, mo, d = int(m.group(1)), m.group(2), m.group(3)
        if mo is None:
            return date(y, 1, 1), date(y, 12, 31)
        if d is None:
            return date(y, int(mo), 1), date(y, int(mo), calendar.monthrange(y, int(mo))[1])
        day = date(y, int(mo), int(d))
        return day, day
    except ValueError:
        raise QuerySyntaxError(pos, f"bad date '{text}': use YYYY, YYYY-MM or YYYY-MM-DD") from None


def parse(q: str) -> Node:
    """The query as a tree (QuerySyntaxError, a UsageError, when it is malformed)."""
    if not q.strip():
        raise QuerySyntaxError(1, "the query is empty")
    p = _Parser(q)
    node = p.parse_or(None)
    t = p.peek()
    if t.kind != "end":
        raise QuerySyntaxError(t.pos, f"unexpected '{t.text}'" + (" (no group to close)" if t.text == ")" else ""))
    return node
