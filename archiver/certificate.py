"""Certificates of destruction: what was destroyed, when, under which schedule, who approved, the hashes.

A certificate is written twice, as plain text for people and as JSON for programs, each stored as a
blob (kind ``certificate``, so ``verify`` checks it like any record) and copied to
``<exports_dir>/dispositions/<id>.txt`` and ``.json``. Neither can contain its own hash, so both
hashes go into the audit log entry of the disposition (and the ``dispositions`` table).
"""

from __future__ import annotations

import json
import os
import secrets
import textwrap
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from .archive import Archive
from .db.models import Blob, table
from .dbwrite import insert_ignore

CHECKS = ("Each record was checked inside the transaction that destroyed it: its retention period under the "
          "series named had ended (recomputed from the schedule and the record's own trigger date, not taken "
          "from a stored date), it was under no legal hold, and it was in no open records request. Blobs "
          "still needed by a record that was not destroyed (content-addressed storage shares identical "
          "bytes) were kept and are listed as kept.")


@dataclass
class Certificate:
    """A certificate's id, its two renderings and their addresses once stored."""

    id: str
    doc: dict[str, Any]
    text: bytes
    json: bytes
    sha256: str = ""
    json_sha256: str = ""


def new_id(now: datetime) -> str:
    """A sortable, unique certificate id: UTC timestamp plus a random suffix."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def build(cert_id: str, doc: dict[str, Any]) -> Certificate:
    """Render a certificate document (see disposition.py for its keys) as text and JSON."""
    doc = {"certificate": cert_id, "type": "certificate of destruction", **doc, "checks": CHECKS}
    raw = json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    return Certificate(cert_id, doc, render_text(doc).encode("utf-8"), raw)


def render_text(doc: dict[str, Any]) -> str:
    """The human-readable certificate."""
    out = [
        "CERTIFICATE OF DESTRUCTION OF RECORDS",
        "",
        f"Certificate:   {doc['certificate']}",
        f"Agency:        {doc.get('agency') or '-'}",
        f"Custodian:     {doc.get('custodian') or '-'}",
        f"Destroyed at:  {doc['destroyed_at']}",
        f"Approved by:   {doc['approved_by']}",
        f"Records:       {len(doc['records'])}",
        f"Blobs destroyed: {len(doc['blobs_destroyed'])}; kept because still needed: "
        f"{len(doc['blobs_kept_shared'])}; not destroyed (store refused): {len(doc['blobs_failed'])}",
        "",
        "Authority (retention series applied):",
    ]
    for s in doc["series"]:
        out += [f"  {s['id']}: {s['title']}",
                f"    jurisdiction {s['jurisdiction']}; retention {s['retention']} from {s['trigger']}; "
                f"action {s['action']}; {s['records']} record(s)",
                f"    citation: {s['citation']}"]
    out += ["", "Records destroyed (content, attachments and raw responses; a tombstone with these facts remains):"]
    for r in doc["records"]:
        out += [f"  {r['record_id']}  {r['platform']} {r['account']} {r['kind']} native id {r['native_id']}",
                f"    series {r['series']}; {r['trigger']} {r['trigger_date']}; eligible from {r['disposition_date']}",
                f"    created {r['created_at'] or '-'}; first captured {r['first_captured_at']}"
                + (f"; removed {r['removed_at']}" if r.get("removed_at") else "")]
        for v in r["versions"]:
            out.append(f"    version {v['seq']} captured {v['captured_at']} sha256 {v['sha256']}")
    out += ["", "Blobs destroyed (SHA-256):"] + [f"  {b}" for b in doc["blobs_destroyed"]]
    if doc["blobs_kept_shared"]:
        out += ["", "Blobs kept (still needed by records that were not destroyed):"]
        out += [f"  {b}" for b in doc["blobs_kept_shared"]]
    if doc["blobs_failed"]:
        out += ["", "Blobs the store refused to destroy (retried by the next disposition):"]
        out += [f"  {b['sha256']}: {b['error']}" for b in doc["blobs_failed"]]
    out += ["", textwrap.fill(doc["checks"], 100), ""]
    return "\n".join(out)


def store(archive: Archive, s: Session, cert: Certificate, now: datetime) -> None:
    """Put both renderings in the blob store and name them in the blobs table (inside the transaction)."""
    cert.sha256, cert.json_sha256 = archive.blobs.put_many([cert.text, cert.json])
    insert_ignore(s, table(Blob), [dict(sha256=cert.sha256, size=len(cert.text), kind="certificate", stored_at=now),
                                   dict(sha256=cert.json_sha256, size=len(cert.json), kind="certificate",
                                        stored_at=now)], "sha256")


def write_files(archive: Archive, cert: Certificate) -> tuple[Path, Path]:
    """Copy the certificate to <exports_dir>/dispositions/<id>.txt and .json (after the commit)."""
    folder = archive.settings.storage.exports_dir / "dispositions"
    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / f"{cert.id}.txt", folder / f"{cert.id}.json")
    for path, data in zip(paths, (cert.text, cert.json), strict=True):
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return paths
