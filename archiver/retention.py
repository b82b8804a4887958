"""Retention series from retention_schedules/*.yaml (shipped and the agency's own) and disposition dates."""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .durations import RetentionPeriod
from .errors import ConfigError

TRIGGERS = ("capture", "creation", "removal", "request-closed", "case-closed")
ACTIONS = ("destroy", "transfer", "review")
FIELDS = {"id", "title", "jurisdiction", "retention", "trigger", "action", "citation", "notes"}
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")  # fits records.series (100)
REQUIRED = ("id", "title", "jurisdiction", "retention", "trigger", "action", "citation")


@dataclass(frozen=True)
class Series:
    """One retention series: how long its records are kept, from what, and then what happens."""

    id: str
    title: str
    jurisdiction: str
    retention: RetentionPeriod
    trigger: str
    action: str
    citation: str
    notes: str
    source: str  # file it came from
    shipped: bool

    def disposition_date(
        self, *, captured_at: datetime | None, created_at: datetime | None, removed_at: datetime | None,
        request_closed_at: datetime | None = None, case_closed_at: datetime | None = None,
    ) -> datetime | None:
        """When a record of this series becomes eligible, or None (permanent or trigger not yet met)."""
        start = self.trigger_date(captured_at=captured_at, created_at=created_at, removed_at=removed_at,
                                  request_closed_at=request_closed_at, case_closed_at=case_closed_at)
        if start is None:
            return None
        return self.retention.after(start)

    def trigger_date(
        self, *, captured_at: datetime | None, created_at: datetime | None, removed_at: datetime | None,
        request_closed_at: datetime | None = None, case_closed_at: datetime | None = None,
    ) -> datetime | None:
        """The moment this series' retention period starts for a record (None: not yet)."""
        return {"capture": captured_at, "creation": created_at or captured_at, "removal": removed_at,
                "request-closed": request_closed_at, "case-closed": case_closed_at}.get(self.trigger)

    def to_json(self) -> dict[str, Any]:
        """The series as `retention schedules --json` lists it."""
        return {"id": self.id, "title": self.title, "jurisdiction": self.jurisdiction,
                "retention": str(self.retention), "trigger": self.trigger, "action": self.action,
                "citation": self.citation, "notes": self.notes, "source": self.source, "shipped": self.shipped}


class _LineLoader(yaml.SafeLoader):
    """Keeps the line of each mapping so schema errors can point at it."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = dict(loader.construct_mapping(node, deep=True))
    mapping["__line__"] = node.start_mark.line + 1
    mapping["__lines__"] = {getattr(k, "value", None): k.start_mark.line + 1 for k, _ in node.value}
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_schedule(text: str, source: str, shipped: bool) -> list[Series]:
    """Parse and validate one schedule file; errors name the file and line."""
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("series"), list):
        raise ConfigError(f"{source}: expected a top-level 'series:' list")
    out = []
    for entry in doc["series"]:
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: each series must be a mapping")
        line = entry.pop("__line__", "?")
        lines = entry.pop("__lines__", {})
        where = f"{source}:{line}"

        def at(key: str, lines: dict[str, int] = lines, line: object = line) -> str:
            return f"{source}:{lines.get(key, line)}"  # the field's own line when it is there
        for key in entry:
            if key not in FIELDS:
                raise ConfigError(f"{at(key)}: unknown field {key!r} (known: {', '.join(sorted(FIELDS))})")
        for key in REQUIRED:
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ConfigError(f"{at(key)}: field {key!r} is required and must be text")
        if not _ID_RE.match(entry["id"]):
            raise ConfigError(f"{at('id')}: id {entry['id']!r} must be 1-100 lowercase letters, digits, '.', '_' or '-'")
        if entry.get("notes") is not None and not isinstance(entry["notes"], str):
            raise ConfigError(f"{at('notes')}: field 'notes' must be text")
        try:
            period = RetentionPeriod.parse(entry["retention"])
        except ValueError as exc:
            raise ConfigError(f"{at('retention')}: retention: {exc}") from None
        if entry["trigger"] not in TRIGGERS:
            raise ConfigError(f"{at('trigger')}: trigger must be one of {', '.join(TRIGGERS)}, not {entry['trigger']!r}")
        if entry["action"] not in ACTIONS:
            raise ConfigError(f"{at('action')}: action must be one of {', '.join(ACTIONS)}, not {entry['action']!r}")
        out.append(Series(entry["id"], entry["title"], entry["jurisdiction"], period, entry["trigger"],
                          entry["action"], entry["citation"], str(entry.get("notes") or ""), source, shipped))
    return out


def shipped_files() -> list[tuple[str, str]]:
    """(name, text) of each schedule file shipped inside the package."""
    root = resources.files("archiver.retention_schedules")
    return sorted((f"retention_schedules/{p.name}", p.read_text(encoding="utf-8"))
                  for p in root.iterdir() if p.name.endswith((".yaml", ".yml")))


def load_schedules(patterns: Iterable[str] = (), base_dir: Path | None = None) -> Mapping[str, Series]:
    """Every series: the shipped ones plus the agency's files; an id may be defined only once."""
    series: dict[str, Series] = {}
    files = [(name, text, True) for name, text in shipped_files()]
    for pattern in patterns:
        pat = pattern if Path(pattern).is_absolute() else str((base_dir or Path.cwd()) / pattern)
        matches = sorted(glob.glob(pat))
        if not matches and not glob.has_magic(pat):
            raise ConfigError(f"retention.schedules: file not found: {pat}")
        for path in matches:
            files.append((path, Path(path).read_text(encoding="utf-8"), False))
    for name, text, shipped in files:
        for s in parse_schedule(text, name, shipped):
            if s.id in series:
                prior = series[s.id]
                raise ConfigError(f"{name}: series id {s.id!r} is already defined in {prior.source}")
            series[s.id] = s
    return series
