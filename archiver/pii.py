"""Likely personal information in record text, proposed as redactions (nothing is redacted here).

Each finder errs on the side of precision: a custodian reads every suggestion, and a list full of
ordinary dates and numbers would train them to accept without reading. Dates count as a date of
birth only next to words that say so; street addresses need a house number and a street type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import phonenumbers

KINDS = ("phone", "email", "ssn", "dob", "address")


@dataclass(frozen=True)
class Finding:
    """One span of likely personal information in one text."""

    kind: str
    text: str
    start: int
    end: int


_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
# Area numbers 000, 666 and 900-999 and group 00 / serial 0000 are never issued; skipping them avoids
# order numbers and the like that happen to have the 3-2-4 shape.
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])")
_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|December|"
           "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec")
_DATE = (rf"(?:\d{{1,2}}[/.-]\d{{1,2}}[/.-](?:\d{{4}}|\d{{2}})|\d{{4}}-\d{{2}}-\d{{2}}"
         rf"|(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}\s+(?:{_MONTHS})\.?,?\s+\d{{4}})")
_DOB = re.compile(rf"\b(?:D\.?\s?O\.?\s?B\.?|date\s+of\s+birth|birth\s*date|birthday|born(?:\s+on)?)\s*[:#-]?\s*"
                  rf"(?P<date>{_DATE})", re.IGNORECASE)
_STREET_TYPES = ("Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Drive|Dr|Lane|Ln|Court|Ct|Way|Place|Pl|Terrace|"
                 "Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Trail|Trl|Square|Sq")
_ADDRESS = re.compile(
    rf"(?<![\w#/-])\d{{1,6}}[A-Za-z]?\s+(?:[NSEW]\.?\s+|North\s+|South\s+|East\s+|West\s+)?"
    rf"(?:[A-Z0-9][A-Za-z0-9'-]*\s+){{1,3}}(?:{_STREET_TYPES})\b\.?"
    rf"(?:,?\s+(?:Apt|Apartment|Unit|Suite|Ste|#)\.?\s*#?[A-Za-z0-9-]+)?"
)


def find_pii(text: str) -> list[Finding]:
    """Every likely piece of personal information in ``text``, in order, without overlaps."""
    found: list[Finding] = []
    for m in _SSN.finditer(text):
        found.append(Finding("ssn", m.group(0), m.start(), m.end()))
    for m in _EMAIL.finditer(text):
        found.append(Finding("email", m.group(0), m.start(), m.end()))
    for m in _DOB.finditer(text):
        found.append(Finding("dob", m.group("date"), m.start("date"), m.end("date")))
    for m in _ADDRESS.finditer(text):
        found.append(Finding("address", m.group(0).rstrip(".,"), m.start(), m.start() + len(m.group(0).rstrip(".,"))))
    # STRICT_GROUPING: a valid number must also be written in its usual groups, so case and report
    # numbers such as 2026-001234 (which spell a valid DC number) are not taken for phones.
    for pm in phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.STRICT_GROUPING):
        found.append(Finding("phone", pm.raw_string, pm.start, pm.end))
    return _without_overlaps(found)


def _without_overlaps(found: Iterable[Finding]) -> list[Finding]:
    # The more specific finders (listed first in KINDS order of trust) win an overlap: a phone matcher
    # can read a date of birth or an SSN as a number, and an address may contain digits.
    trust = {"ssn": 0, "email": 1, "dob": 2, "phone": 3, "address": 4}
    kept: list[Finding] = []
    for f in sorted(found, key=lambda f: (trust[f.kind], f.start)):
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def unique_findings(texts: Iterable[str | None]) -> Iterator[Finding]:
    """Findings over several texts (a record's versions, author), each distinct text once."""
    seen: set[str] = set()
    for text in texts:
        if not text:
            continue
        for f in find_pii(text):
            if f.text not in seen:
                seen.add(f.text)
                yield f
