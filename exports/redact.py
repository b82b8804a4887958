"""Redaction: the words are removed from every string before anything is rendered (DESIGN invariant 7).

A redaction replaces each occurrence of its exact text with a label that names only the exemption, so the
label is as wide for a two-letter initial as for a paragraph and does not reveal the removed length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .model import Exemption, RecordIn, Redaction

LABEL_OPEN = "\u2588 REDACTED "
LABEL_CLOSE = " \u2588"
# A label in already-escaped text: the citation never contains '█', so the match cannot run across labels.
LABEL_RE = re.compile(re.escape(LABEL_OPEN) + "([^\u2588]{1,120})" + re.escape(LABEL_CLOSE))


def redaction_label(exemption: Exemption) -> str:
    """The fixed text that stands in for redacted words: '█ REDACTED K.S.A. 45-221(a)(30) █'."""
    return f"{LABEL_OPEN}{exemption.citation}{LABEL_CLOSE}"


@dataclass(frozen=True)
class Redactor:
    """Applies a set of redactions to strings; a longer phrase wins over a part of it at the same place."""

    rules: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, redactions: Iterable[Redaction]) -> Redactor:
        """A redactor for these redactions (empty texts are ignored: they would match everywhere)."""
        seen: dict[str, str] = {}
        for r in redactions:
            if r.text and r.text not in seen:
                seen[r.text] = redaction_label(r.exemption)
        return cls(tuple(sorted(seen.items(), key=lambda kv: (-len(kv[0]), kv[0]))))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(self, value: str | None) -> str | None:
        """The value with every occurrence of every redacted text replaced by its label (None stays None).

        Occurrences are found independently and overlapping ones merged into one label, so two
        redactions that overlap ("John Smi" and "Smith Jr") cannot leave a fragment of either behind.
        """
        if not value or not self.rules:
            return value
        spans: list[tuple[int, int, str]] = []
        for text, label in self.rules:
            at = value.find(text)
            while at != -1:
                spans.append((at, at + len(text), label))
                at = value.find(text, at + 1)
        if not spans:
            return value
        spans.sort(key=lambda s: (s[0], -s[1]))
        out: list[str] = []
        pos = 0
        cur_start, cur_end, cur_label = spans[0]
        for start, end, label in spans[1:]:
            if start < cur_end:
                cur_end = max(cur_end, end)
                continue
            out += [value[pos:cur_start], cur_label]
            pos, (cur_start, cur_end, cur_label) = cur_end, (start, end, label)
        out += [value[pos:cur_start], cur_label, value[cur_end:]]
        return "".join(out)

    def citations(self) -> list[str]:
        """The distinct citations this redactor's labels carry, in order of first appearance."""
        out: list[str] = []
        for _, label in self.rules:
            cite = label[len(LABEL_OPEN):-len(LABEL_CLOSE)]
            if cite not in out:
                out.append(cite)
        return out


def record_strings(rec: RecordIn) -> list[str]:
    """Every string of a record that a packet may render, so a redaction can be checked against all."""
    return rendered_strings(rec.author, rec.permalink, rec.native_id, rec.account, rec.platform,
                            [v.text for v in rec.versions])


def rendered_strings(author: str | None, permalink: str | None, native_id: str | None, account: str | None,
                     platform: str | None, texts: Sequence[str | None]) -> list[str]:
    """The strings of a record a packet renders (the one list both the packet and `request redact` use)."""
    return [v for v in (author, permalink, native_id, account, platform, *texts) if v]


def effective_redactions(records: Sequence[RecordIn]) -> dict[str, list[Redaction]]:
    """Per released record id: its own redactions plus any other record's redaction whose text it contains.

    A redacted name quoted in a neighbour's reply would otherwise leak through that reply; invariant 7
    speaks of the packet, not of one record.
    """
    first: dict[str, Redaction] = {}
    for rec in records:
        if rec.decision == "redact":
            for r in rec.redactions:
                if r.text:
                    first.setdefault(r.text, r)
    # One alternation, longest first, scans each record once instead of once per redaction.
    finder = re.compile("|".join(re.escape(t) for t in sorted(first, key=len, reverse=True))) if first else None
    out: dict[str, list[Redaction]] = {}
    for rec in records:
        if rec.decision == "withhold":
            continue
        own = list(rec.redactions) if rec.decision == "redact" else []
        if finder is not None:
            own_texts = {r.text for r in own}
            for text in dict.fromkeys(finder.findall("\x00".join(record_strings(rec)))):
                if text not in own_texts:
                    own.append(first[text])
                    own_texts.add(text)
        out[rec.record_id] = own
    return out


def packet_redactor(records: Sequence[RecordIn]) -> Redactor:
    """Every redaction of the request, for request-level text (description, requester, extension reason)."""
    return Redactor.of(r for rec in records if rec.decision == "redact" for r in rec.redactions)
