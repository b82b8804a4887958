"""What the templates see: released records with redactions already applied, grouped into threads.

Nothing in this module's output holds an unredacted string of a redacted record, or any string of a
withheld record, so no template (packaged or an agency's override) can leak one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from archiver.errors import ExportError

from .model import PacketIn, RecordIn, Redaction
from .redact import Redactor

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class VersionView:
    """One version of a released record, text redacted."""

    seq: int
    captured: str
    edited: str | None
    text: str
    sha256: str | None  # None for a redacted record


@dataclass
class RecordView:
    """One released (possibly redacted) record as every output renders it."""

    record_id: str
    anchor: str
    kind: str
    platform: str
    account: str
    native_id: str
    author: str
    created_local: str
    created_utc: str
    created_utc_short: str
    status: str
    badges: list[str]
    decision: str  # "release" or "redact" (effective: a record touched by any redaction is "redact")
    citations: list[str]
    permalink: str | None
    permalink_href: str | None  # only an unredacted http(s) permalink becomes a link
    first_captured: str
    last_seen: str
    removed_at: str | None
    hidden_at: str | None  # when a moderator last hid it, for a record that is hidden now
    versions: list[VersionView]
    events: list[tuple[str, str]]
    depth: int
    parent_id: str | None
    thread_key: str
    sort_key: tuple = field(repr=False, default=())

    @property
    def redacted(self) -> bool:
        """True when any redaction applied to this record (it then shows no hashes)."""
        return self.decision == "redact"


@dataclass
class ThreadView:
    """A post (if released) with its comments and replies in display order; one part when split."""

    key: str
    index: int
    title: str
    records: list[RecordView]
    part: int = 1
    continued: bool = False


class Clock:
    """Formats UTC times for the packet: agency time with the zone abbreviation, and UTC."""

    def __init__(self, tz: str):
        try:
            self.zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ExportError(f"unknown agency time zone {tz!r}") from exc

    def in_zone(self, t: datetime) -> datetime:
        """t in the agency's time zone."""
        return _aware(t).astimezone(self.zone)

    def local(self, t: datetime | None) -> str:
        """'2026-10-03 14:05 CDT' in the agency's zone."""
        if t is None:
            return ""
        return _aware(t).astimezone(self.zone).strftime("%Y-%m-%d %H:%M %Z")

    def utc_short(self, t: datetime | None) -> str:
        """'19:05 UTC', with the UTC date too when it differs from the agency's local date."""
        if t is None:
            return ""
        u, loc = _aware(t).astimezone(ZoneInfo("UTC")), _aware(t).astimezone(self.zone)
        return u.strftime("%H:%M UTC") if u.date() == loc.date() else u.strftime("%Y-%m-%d %H:%M UTC")

    @staticmethod
    def utc(t: datetime | None) -> str:
        """'2026-10-03T19:05:00Z'."""
        if t is None:
            return ""
        return _aware(t).astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def _aware(t: datetime) -> datetime:
    # The model promises UTC; a naive value from a careless caller is read as UTC, not as local time.
    return t if t.tzinfo else t.replace(tzinfo=ZoneInfo("UTC"))


def check_ids(records: Sequence[RecordIn]) -> None:
    """Record ids become file names and PDF anchors: refuse anything that is not a plain token."""
    seen: set[str] = set()
    for rec in records:
        if not SAFE_ID.fullmatch(rec.record_id or ""):
            raise ExportError(f"record id {rec.record_id!r} is not safe as a file name")
        if rec.record_id in seen:
            raise ExportError(f"record {rec.record_id} appears twice in the packet")
        seen.add(rec.record_id)
        if rec.decision == "withhold" and rec.withhold_exemption is None:
            raise ExportError(f"withheld record {rec.record_id} cites no exemption")
        if rec.decision not in ("release", "redact", "withhold"):
            raise ExportError(f"record {rec.record_id} has an unknown decision {rec.decision!r}")


def _badges(rec: RecordIn) -> list[str]:
    out = []
    if len(rec.versions) > 1 or rec.status == "edited":
        out.append("edited")
    if rec.status in ("hidden", "removed"):
        out.append(rec.status)
    return out


def _hidden_at(rec: RecordIn, clock: Clock) -> str | None:
    if rec.status != "hidden":
        return None
    times = [_aware(e.at) for e in rec.events if e.type == "hidden"]
    return clock.utc(max(times)) if times else None


def record_view(rec: RecordIn, red: Redactor, clock: Clock, depth: int, thread_key: str) -> RecordView:
    """The rendered form of one released record; every string passes through the redactor."""
    r = red.apply
    hide_hash = bool(red)
    permalink = r(rec.permalink)
    href = None
    if permalink and permalink == rec.permalink and re.match(r"^https?://", permalink, re.I):
        href = permalink
    versions = [VersionView(seq=v.seq, captured=clock.utc(v.captured_at),
                            edited=clock.utc(v.edited_at) if v.edited_at else None,
                            text=r(v.text) or "", sha256=None if hide_hash else v.sha256)
                for v in sorted(rec.versions, key=lambda v: v.seq)]
    created = rec.created_at
    return RecordView(
        record_id=rec.record_id, anchor=f"r-{rec.record_id}", kind=rec.kind, platform=r(rec.platform) or "",
        account=r(rec.account) or "", native_id=r(rec.native_id) or "", author=r(rec.author) or "",
        created_local=clock.local(created), created_utc=clock.utc(created),
        created_utc_short=clock.utc_short(created), status=rec.status, badges=_badges(rec),
        decision="redact" if red else "release", citations=red.citations(), permalink=permalink,
        permalink_href=href, first_captured=clock.utc(rec.first_captured_at), last_seen=clock.utc(rec.last_seen_at),
        removed_at=clock.utc(rec.removed_at) if rec.removed_at else None, hidden_at=_hidden_at(rec, clock),
        versions=versions,
        events=[(e.type, clock.utc(e.at)) for e in sorted(rec.events, key=lambda e: _aware(e.at))],
        depth=depth, parent_id=rec.parent_id, thread_key=thread_key,
        sort_key=(_aware(created) if created else _aware(rec.first_captured_at), rec.record_id),
    )


def _thread_of(rec: RecordIn, by_id: dict[str, RecordIn]) -> str:
    if rec.thread_id:
        return rec.thread_id
    if rec.kind == "post" and not rec.parent_id:
        return rec.record_id
    cur, seen = rec, {rec.record_id}
    while cur.parent_id:
        parent = by_id.get(cur.parent_id)
        if parent is None:
            return cur.parent_id  # the post is not in the request: its comments still group together
        if parent.record_id in seen:
            break
        seen.add(parent.record_id)
        cur = parent
        if cur.thread_id:
            return cur.thread_id
    return cur.record_id


def build_threads(packet: PacketIn, clock: Clock, reds: dict[str, list[Redaction]]) -> list[ThreadView]:
    """Released records grouped by post, posts by time; comments by time with their replies beneath.

    reds: each released record's effective redactions (redact.effective_redactions).
    """
    by_id = {r.record_id: r for r in packet.records}
    released = [r for r in packet.records if r.decision != "withhold"]
    groups: dict[str, list[RecordIn]] = {}
    for rec in released:
        groups.setdefault(_thread_of(rec, by_id), []).append(rec)
    threads: list[ThreadView] = []
    for key, members in groups.items():
        ordered = _order_thread(key, members, by_id, reds, clock)
        threads.append(ThreadView(key=key, index=0, title="", records=ordered))
    threads.sort(key=lambda t: t.records[0].sort_key if t.records[0].kind == "post" else
                 min(r.sort_key for r in t.records))
    for i, t in enumerate(threads, 1):
        t.index = i
        head = t.records[0]
        if head.kind == "post" and head.record_id == t.key:
            t.title = f"Post by {head.author or 'unknown'} on {head.platform} ({head.account}), {head.created_local}"
        else:
            t.title = f"Comments on a post not in this release ({head.platform}, {head.account})"
    return threads


def _order_thread(key: str, members: list[RecordIn], by_id: dict[str, RecordIn],
                  reds: dict[str, list[Redaction]], clock: Clock) -> list[RecordView]:
    present = {m.record_id for m in members}
    children: dict[str | None, list[RecordIn]] = {}
    for m in members:
        parent = m.parent_id if m.parent_id in present and m.parent_id != m.record_id else None
        if m.record_id == key:
            parent = "__root__"
        children.setdefault(parent, []).append(m)

    def when(r: RecordIn) -> tuple:
        t = r.created_at or r.first_captured_at
        return (_aware(t), r.record_id)

    out: list[RecordView] = []
    visited: set[str] = set()

    def walk(rec: RecordIn, depth: int) -> None:
        if rec.record_id in visited:
            return
        visited.add(rec.record_id)
        out.append(record_view(rec, Redactor.of(reds.get(rec.record_id, ())), clock, min(depth, 3), key))
        for child in sorted(children.get(rec.record_id, []), key=when):
            walk(child, depth + 1)

    for root in children.get("__root__", []):
        walk(root, 0)
    # Items whose parent is not released (withheld, or never captured) start at comment depth.
    for rec in sorted(children.get(None, []), key=when):
        walk(rec, 1 if rec.kind != "post" else 0)
    for rec in sorted(members, key=when):  # a parent cycle in bad data must not drop a record
        walk(rec, 1)
    return out


def chunk_threads(threads: list[ThreadView], size: int) -> list[list[ThreadView]]:
    """Threads packed into chunks of about `size` records; a thread larger than that is split in parts."""
    chunks: list[list[ThreadView]] = []
    cur: list[ThreadView] = []
    count = 0
    for t in threads:
        if len(t.records) > size:
            if cur:
                chunks.append(cur)
                cur, count = [], 0
            for p, start in enumerate(range(0, len(t.records), size), 1):
                chunks.append([ThreadView(key=t.key, index=t.index, title=t.title,
                                          records=t.records[start:start + size], part=p, continued=p > 1)])
            continue
        if cur and count + len(t.records) > size:
            chunks.append(cur)
            cur, count = [], 0
        cur.append(t)
        count += len(t.records)
    if cur:
        chunks.append(cur)
    return chunks
