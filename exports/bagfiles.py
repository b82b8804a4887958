"""The packet's data files besides the PDF and HTML (CSV index, exemption log, JSON records), the BagIt
wrapping, and the move of a finished bag into place."""

from __future__ import annotations

import csv
import errno
import hashlib
import importlib.metadata
import io
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import bagit

from archiver.errors import ExportError

from .model import PacketIn, RecordIn
from .views import RecordView

# A cell a spreadsheet would run as a formula is hostile content too (invariant 8): a leading apostrophe
# keeps it text in Excel and LibreOffice without changing what a CSV parser reads after it.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str | None) -> str:
    text = value or ""
    return "'" + text if text.startswith(_FORMULA_START) else text


class DataFiles:
    """Writes files under the bag's payload directory and remembers each one's SHA-256."""

    def __init__(self, root: Path):
        self.root = root
        self.hashes: dict[str, str] = {}

    def write_bytes(self, name: str, data: bytes) -> str:
        """Write data to root/name and return its SHA-256."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        self.hashes[name] = digest
        return digest

    def write_text(self, name: str, text: str) -> str:
        """Write UTF-8 text (newlines as given) and return its SHA-256."""
        return self.write_bytes(name, text.encode("utf-8"))

    def add_existing(self, name: str) -> str:
        """Hash a file something else wrote under root (the PDFs)."""
        h = hashlib.sha256()
        with open(self.root / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        self.hashes[name] = h.hexdigest()
        return self.hashes[name]


def _csv(rows: Iterable[Sequence[str]], header: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def index_csv(views: Sequence[RecordView], bates: dict[str, tuple[str, str]]) -> str:
    """One row per released or redacted record, in packet order, with the pages it occupies."""
    header = ("bates_first", "bates_last", "record_id", "platform", "kind", "author", "created", "status",
              "decision", "exemption")
    rows = []
    for v in views:
        first, last = bates[v.record_id]
        rows.append((first, last, v.record_id, _cell(v.platform), v.kind, _cell(v.author), v.created_utc, v.status,
                     v.decision, _cell("; ".join(v.citations))))
    return _csv(rows, header)


def exemption_log_csv(packet: PacketIn, views: Sequence[RecordView], reds: dict[str, list],
                      bates: dict[str, tuple[str, str]]) -> str:
    """One row per redaction and per withheld record: never the redacted words, only where and why."""
    header = ("record_id", "action", "citation", "short_reason", "bates_first", "bates_last")
    rows: list[tuple[str, ...]] = []
    for v in views:
        first, last = bates[v.record_id]
        for red in reds.get(v.record_id, ()):
            rows.append((v.record_id, "redacted", _cell(red.exemption.citation), _cell(red.exemption.short_name),
                         first, last))
    for rec in sorted((r for r in packet.records if r.decision == "withhold"), key=lambda r: r.record_id):
        ex = rec.withhold_exemption
        assert ex is not None  # checked by views.check_ids
        rows.append((rec.record_id, "withheld", _cell(ex.citation), _cell(ex.short_name), "", ""))
    return _csv(rows, header)


def record_json(v: RecordView, rec: RecordIn, reds: list, withheld: frozenset[str] = frozenset()) -> str:
    """The record as released: redacted strings, and the archived hashes only when nothing was redacted.

    Page numbers are in index.csv, not here, so the JSON can be written while the PDF is laid out. A
    withheld parent or post is not named: withheld records appear only in the exemption log."""
    doc: dict[str, Any] = {
        "record_id": v.record_id, "platform": v.platform, "account": v.account, "native_id": v.native_id,
        "kind": v.kind, "parent_id": None if rec.parent_id in withheld else rec.parent_id,
        "thread_id": None if rec.thread_id in withheld else rec.thread_id, "author": v.author or None,
        "created_at": v.created_utc or None, "permalink": v.permalink, "status": v.status,
        "first_captured_at": v.first_captured, "last_seen_at": v.last_seen, "removed_at": v.removed_at,
        "decision": v.decision,
        "redactions": [{"citation": r.exemption.citation, "short_name": r.exemption.short_name} for r in reds],
        "versions": [], "events": [{"type": t, "at": at} for t, at in v.events],
    }
    for ver in v.versions:
        item: dict[str, Any] = {"seq": ver.seq, "captured_at": ver.captured, "edited_at": ver.edited, "text": ver.text}
        if ver.sha256 and not v.redacted:
            item["sha256"] = ver.sha256
        doc["versions"].append(item)
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def _version() -> str:
    try:
        return importlib.metadata.version("archiver")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "(unknown version)"


def make_bag(bag_dir: Path, packet: PacketIn, files: int) -> None:
    """Turn bag_dir (payload files at its top) into a BagIt bag with SHA-256 manifests, then validate it."""
    info = {
        "Source-Organization": packet.agency_name,
        "Contact-Name": packet.custodian,
        "External-Identifier": packet.request_id,
        "External-Description": f"Disclosure packet for {packet.law_name} request {packet.request_id}, "
                                f"export {packet.export_seq}",
        "Internal-Sender-Identifier": f"{packet.request_id}/export-{packet.export_seq}",
        "Bagging-Date": packet.generated_at.date().isoformat(),
        "Bag-Software-Agent": f"archiver {_version()} with bagit-python {getattr(bagit, 'VERSION', '?')}",
    }
    # bagit logs two INFO lines per file: 20,000 lines on stderr for a big packet under `-v`.
    bag_log = logging.getLogger("bagit")
    old_level = bag_log.level
    bag_log.setLevel(max(old_level, logging.WARNING))
    try:
        bagit.make_bag(str(bag_dir), bag_info=info, checksums=["sha256"], processes=1)
        bag = bagit.Bag(str(bag_dir))
        bag.validate()
    except bagit.BagError as exc:
        raise ExportError(f"the packet did not validate as a BagIt bag: {exc}") from exc
    finally:
        bag_log.setLevel(old_level)
    if len(bag.payload_entries()) != files:
        raise ExportError(f"the bag holds {len(bag.payload_entries())} payload files, expected {files}")


def place(bag_dir: Path, out_parent: Path, request_id: str) -> Path:
    """Rename the finished bag to out_parent/<request id> (or -2, -3 ...); never replaces an export."""
    n = 1
    while n < 10000:
        target = out_parent / (request_id if n == 1 else f"{request_id}-{n}")
        if not os.path.lexists(target):
            try:
                os.rename(bag_dir, target)
                return target
            except OSError as exc:
                # Another export took the name between the check and the rename.
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        n += 1
    raise ExportError(f"too many exports of {request_id} in {out_parent}")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
