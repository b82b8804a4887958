"""Open-records laws as data (retention_schedules/laws/*.yaml): deadlines, extensions and exemptions.

The statutes' rules live in the YAML files so counsel can check each one against its citation; this
module only validates the files and does the date arithmetic they describe.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from typing import Any

import holidays as holidays_lib
import yaml

from .errors import ConfigError, RequestError
from .exports.model import Exemption

LAW_IDS = ("kora", "cpra")
RULES = ("business_days", "calendar_days")


class LawError(RequestError):
    """A citation or an action the request's law does not allow."""


@dataclass(frozen=True)
class Calendar:
    """Which days are not business days under one law."""

    citation: str
    weekends: bool
    calendars: tuple[tuple[str, str | None], ...]  # (country, subdivision)
    agency_holidays: bool


@dataclass(frozen=True)
class ExemptionRule:
    """One exemption with the short forms a custodian may type for it."""

    exemption: Exemption
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class Law:
    """One open-records law: its deadline rule, extension rule and exemptions, each with a citation."""

    id: str
    name: str
    citation: str
    state: str
    id_prefix: str
    deadline_rule: str
    deadline_days: int
    deadline_citation: str
    deadline_text: str
    calendar: Calendar
    roll_forward: bool
    roll_citation: str
    extension_allowed: bool
    extension_max_days: int
    extension_citation: str
    extension_text: str
    extension_reasons: tuple[str, ...]
    exemptions: tuple[ExemptionRule, ...]
    pii_exemption: str
    source: str

    def exemption_list(self) -> list[Exemption]:
        """Every exemption of the law, in the file's order."""
        return [e.exemption for e in self.exemptions]

    def find_exemption(self, cite: str) -> Exemption:
        """The exemption a citation or a documented short form names; LawError listing the allowed ones."""
        want = _norm(cite)
        for rule in self.exemptions:
            if want == _norm(rule.exemption.citation) or any(want == _norm(a) for a in rule.aliases):
                return rule.exemption
        allowed = "; ".join(f"{r.exemption.citation} ({r.aliases[0]})" if r.aliases else r.exemption.citation
                            for r in self.exemptions)
        raise LawError(f"{cite!r} is not an exemption of the {self.name}; cite one of: {allowed}")

    def is_business_day(self, day: date, agency_holidays: Iterable[date] = ()) -> bool:
        """False on weekends, calendar holidays and (when the law counts them) the agency's holidays."""
        if self.calendar.weekends and day.weekday() >= 5:
            return False
        if day in _holidays(self.calendar.calendars, day.year):
            return False
        return not (self.calendar.agency_holidays and day in set(agency_holidays))

    def _roll(self, day: date, agency_holidays: Iterable[date]) -> date:
        hol = tuple(agency_holidays)
        while not self.is_business_day(day, hol):
            day += timedelta(days=1)
        return day

    def _last_day(self, received: date, agency_holidays: Iterable[date]) -> date:
        """The statutory last day before any roll-forward."""
        if self.deadline_rule == "calendar_days":
            return received + timedelta(days=self.deadline_days)
        hol = tuple(agency_holidays)
        day, counted = received, 0
        while counted < self.deadline_days:
            day += timedelta(days=1)
            if self.is_business_day(day, hol):
                counted += 1
        return day

    def due_date(self, received: date, agency_holidays: Iterable[date] = ()) -> date:
        """The last day to respond to a request received on ``received``."""
        hol = tuple(agency_holidays)
        day = self._last_day(received, hol)
        return self._roll(day, hol) if self.roll_forward else day

    def extended_due_date(self, received: date, days: int, agency_holidays: Iterable[date] = ()) -> date:
        """The last day after an extension of ``days`` (LawError if the law allows none or fewer days)."""
        if not self.extension_allowed:
            raise LawError(f"the {self.name} has no extension of its deadline ({self.extension_citation})")
        if days < 1 or days > self.extension_max_days:
            raise LawError(f"an extension under {self.extension_citation} is 1 to {self.extension_max_days} "
                           f"days, not {days}")
        hol = tuple(agency_holidays)
        # The extension lengthens the statutory period itself; the roll-forward applies to its new end.
        day = self._last_day(received, hol) + timedelta(days=days)
        return self._roll(day, hol) if self.roll_forward else day


def _norm(cite: str) -> str:
    return " ".join(cite.split()).casefold()


@functools.lru_cache(maxsize=64)
def _holiday_set(country: str, subdiv: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays_lib.country_holidays(country, subdiv=subdiv, years=[year]).keys())


def _holidays(calendars: tuple[tuple[str, str | None], ...], year: int) -> frozenset[date]:
    out: frozenset[date] = frozenset()
    for country, subdiv in calendars:
        out |= _holiday_set(country, subdiv, year)
    return out


def parse_agency_holidays(values: Iterable[str]) -> tuple[date, ...]:
    """The [agency] holidays of archiver.toml as dates (config already checked their form)."""
    out = []
    for v in values:
        try:
            out.append(date.fromisoformat(v))
        except ValueError:
            raise ConfigError(f"agency.holidays: {v!r} is not a date like \"2026-12-24\"") from None
    return tuple(out)


# --- loading and validating the data files ---------------------------------------------------------
class _Where:
    """Names the file and key in every validation error."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"law file {self.source}: {key}: {problem}")

    def get(self, doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], prefix: str = "",
            default: Any = ...) -> Any:
        name = f"{prefix}{key}"
        if key not in doc:
            if default is not ...:
                return default
            raise self.fail(name, "is required")
        value = doc[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
            raise self.fail(name, f"must be {_kind_name(kind)}, not {value!r}")
        if isinstance(value, str) and not value.strip():
            raise self.fail(name, "must not be empty")
        return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "a whole number", bool: "true or false", list: "a list", dict: "a mapping"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse_law(doc: Any, source: str) -> Law:
    """Validate one parsed law file; ConfigError names the file and the key."""
    w = _Where(source)
    if not isinstance(doc, dict):
        raise w.fail("(top)", "the file must be a mapping")
    lid = w.get(doc, "id", str)
    dl = w.get(doc, "deadline", dict)
    rule = w.get(dl, "rule", str, "deadline.")
    if rule not in RULES:
        raise w.fail("deadline.rule", f"must be one of {', '.join(RULES)}, not {rule!r}")
    days = w.get(dl, "days", int, "deadline.")
    if days < 1:
        raise w.fail("deadline.days", "must be at least 1")
    bd = w.get(doc, "business_days", dict)
    cals = []
    for i, c in enumerate(w.get(bd, "calendars", list, "business_days.")):
        key = f"business_days.calendars[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("country"), str):
            raise w.fail(key, "must be a mapping like {country: US, subdiv: KS}")
        sub = c.get("subdiv")
        try:
            holidays_lib.country_holidays(c["country"], subdiv=sub, years=[2026])
        except NotImplementedError:
            raise w.fail(key, f"the holidays package has no calendar {c['country']}/{sub}") from None
        cals.append((c["country"], sub))
    cal = Calendar(w.get(bd, "citation", str, "business_days."), w.get(bd, "weekends", bool, "business_days."),
                   tuple(cals), w.get(bd, "agency_holidays", bool, "business_days.", False))
    rf = w.get(doc, "roll_forward", dict)
    ext = w.get(doc, "extension", dict)
    allowed = w.get(ext, "allowed", bool, "extension.")
    max_days = w.get(ext, "max_days", int, "extension.", 0)
    if allowed and max_days < 1:
        raise w.fail("extension.max_days", "is required (at least 1) when extension.allowed is true")
    reasons = w.get(ext, "reasons", list, "extension.", [])
    if not all(isinstance(r, str) and r.strip() for r in reasons):
        raise w.fail("extension.reasons", "must be a list of non-empty strings")
    exemptions = []
    seen: set[str] = set()
    for i, e in enumerate(w.get(doc, "exemptions", list)):
        key = f"exemptions[{i}]."
        if not isinstance(e, dict):
            raise w.fail(f"exemptions[{i}]", "must be a mapping with citation and short_name")
        unknown = set(e) - {"citation", "short_name", "description", "aliases"}
        if unknown:
            raise w.fail(f"exemptions[{i}].{sorted(unknown)[0]}", "is not a known key")
        cite = w.get(e, "citation", str, key)
        aliases = w.get(e, "aliases", list, key, [])
        if not all(isinstance(a, str) and a.strip() for a in aliases):
            raise w.fail(f"{key}aliases", "must be a list of non-empty strings")
        for name in (cite, *aliases):
            if _norm(name) in seen:
                raise w.fail(f"{key}citation", f"{name!r} names two exemptions")
            seen.add(_norm(name))
        exemptions.append(ExemptionRule(Exemption(cite, w.get(e, "short_name", str, key),
                                                  w.get(e, "description", str, key, "")), tuple(aliases)))
    if not exemptions:
        raise w.fail("exemptions", "must list at least one exemption")
    pii = w.get(doc, "pii_exemption", str)
    if _norm(pii) not in seen:
        raise w.fail("pii_exemption", f"{pii!r} is not one of the file's exemptions")
    return Law(
        id=lid, name=w.get(doc, "name", str), citation=w.get(doc, "citation", str), state=w.get(doc, "state", str),
        id_prefix=w.get(doc, "id_prefix", str), deadline_rule=rule, deadline_days=days,
        deadline_citation=w.get(dl, "citation", str, "deadline."), deadline_text=w.get(dl, "text", str, "deadline.", ""),
        calendar=cal, roll_forward=w.get(rf, "applies", bool, "roll_forward."),
        roll_citation=w.get(rf, "citation", str, "roll_forward."),
        extension_allowed=allowed, extension_max_days=max_days,
        extension_citation=w.get(ext, "citation", str, "extension."),
        extension_text=w.get(ext, "text", str, "extension.", ""), extension_reasons=tuple(reasons),
        exemptions=tuple(exemptions), pii_exemption=pii, source=source,
    )


@functools.cache
def load_law(law_id: str) -> Law:
    """The shipped law named ``law_id`` (kora, cpra), validated."""
    lid = law_id.lower()
    if lid not in LAW_IDS:
        raise LawError(f"unknown law {law_id!r} (known: {', '.join(LAW_IDS)})")
    source = f"laws/{lid}.yaml"
    try:
        text = resources.files("archiver.retention_schedules").joinpath("laws", f"{lid}.yaml").read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"law file {source}: cannot be read ({exc})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"law file {source}: invalid YAML: {exc}") from None
    law = parse_law(doc, source)
    if law.id != lid:
        raise ConfigError(f"law file {source}: id: must be {lid!r}, not {law.id!r}")
    return law


def default_law_for_state(state: str) -> str | None:
    """The law a new request gets by default for the agency's state (KS -> kora, CA -> cpra)."""
    for lid in LAW_IDS:
        if load_law(lid).state == state.upper():
            return lid
    return None
