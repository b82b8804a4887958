"""The disclosure packet builder: a PacketIn in, a validated BagIt bag out (DESIGN.md "Packet").

Everything is built in a fresh staging directory beside the final one and renamed into place at the
end, so a reader of the exports directory sees a whole packet or none; on any error the staging
directory is removed. The builder never opens the database.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archiver.errors import ArchiverError, ExportError

from . import bagfiles, pdf, render
from .model import Exemption, PacketIn, Redaction
from .pdfworker import ChunkJob, ChunkResult, render_chunk, render_pdf
from .redact import effective_redactions, packet_redactor
from .stamp import Furniture
from .views import Clock, RecordView, ThreadView, build_threads, check_ids, chunk_threads

# Records per PDF chunk: large enough that per-document start-up is small, small enough that a
# worker's memory stays near 150 MB. Tests lower it to exercise joining.
CHUNK_RECORDS = 150
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    """What an export produced; files maps each payload path ('data/packet.pdf') to its SHA-256.

    The counts are as released: a record whose text quotes another record's redacted words is
    redacted too, so it counts as redacted although its own decision was "release".
    """

    path: Path
    bates_first: str
    bates_last: str
    pages: int
    released: int
    redacted: int
    withheld: int
    manifest_sha256: str
    files: dict[str, str] = field(default_factory=dict)


def export_packet(packet: PacketIn, out_parent: Path, *, template_dirs: Sequence[Path] = (),
                  progress: Callable[[int, int], None] | None = None) -> ExportResult:
    """Build the request's packet as a BagIt bag in out_parent/<request_id> (or -2, -3 ...).

    template_dirs are searched before the packaged templates; progress(done, total) is called as the
    released records are laid out. Any failure raises ExportError (or another ArchiverError) and leaves
    nothing in out_parent.
    """
    if not REQUEST_ID_RE.fullmatch(packet.request_id or ""):
        raise ExportError(f"request id {packet.request_id!r} is not safe as a folder name")
    if packet.bates_start < 1:
        raise ExportError("the first Bates number must be 1 or more")
    out_parent = Path(out_parent)
    out_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{packet.request_id}-", dir=out_parent))
    try:
        bag_dir = staging / "bag"
        work = staging / "work"
        bag_dir.mkdir()
        work.mkdir()
        result = _build(packet, bag_dir, work, template_dirs, progress)
        result.path = bagfiles.place(bag_dir, out_parent, packet.request_id)
        return result
    except ArchiverError:
        raise
    except Exception as exc:
        raise ExportError(f"packet export of {packet.request_id} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build(packet: PacketIn, bag_dir: Path, work: Path, template_dirs: Sequence[Path],
           progress: Callable[[int, int], None] | None) -> ExportResult:
    t0 = time.perf_counter()
    marks: list[str] = []

    def mark(name: str) -> None:
        marks.append(f"{name} {time.perf_counter() - t0:.2f}s")

    check_ids(packet.records)
    clock = Clock(packet.timezone)
    env = render.make_env(template_dirs)
    letter = render.letter_template(packet.law)
    render.check_templates(env, [render.PACKET_TEMPLATE, letter, render.CERTIFICATION_TEMPLATE])

    reds = effective_redactions(packet.records)
    threads = build_threads(packet, clock, reds)
    views = [r for t in threads for r in t.records]
    counts = {"released": sum(1 for v in views if not v.redacted), "redacted": sum(1 for v in views if v.redacted),
              "withheld": sum(1 for r in packet.records if r.decision == "withhold")}
    p = _packet_context(packet, clock, counts, len(threads))
    files = bagfiles.DataFiles(bag_dir)
    mark("prepare")

    # The JSON originals do not depend on page numbers: a thread writes them while the workers lay out
    # pages (this thread mostly waits on the workers; file writes release the GIL).
    json_writer = _JsonWriter(packet, views, reds, bagfiles.DataFiles(bag_dir))
    json_writer.start()
    try:
        ranges = _packet_pdf(packet, env, p, threads, views, work, bag_dir / "packet.pdf", progress, mark)
    finally:
        json_writer.join()
    files.add_existing("packet.pdf")

    # The same templates once more for the single HTML file, now with each record's Bates range.
    bates_text = {rid: (a if a == b else f"{a} \u2013 {b}") for rid, (a, b) in ranges.items()}
    files.write_text("packet.html", render.render(env, render.PACKET_TEMPLATE, {
        "p": p, "threads": threads, "show_cover": True, "links": True, "bates": bates_text}))
    letter_html = render.render(env, letter, {"p": p, "denials": _denials(packet, views, reds), **counts})
    files.write_text("cover-letter.html", letter_html)
    render_pdf(letter_html, bag_dir / "cover-letter.pdf")
    files.add_existing("cover-letter.pdf")
    files.write_text("index.csv", bagfiles.index_csv(views, ranges))
    files.write_text("exemption-log.csv", bagfiles.exemption_log_csv(packet, views, reds, ranges))
    files.hashes.update(json_writer.result())
    # Last of the payload: it lists the SHA-256 of every other file.
    files.write_text("certification.txt", render.render(env, render.CERTIFICATION_TEMPLATE, {
        "p": p, "files": sorted(files.hashes.items()), "captures": _captures(views)}))
    mark("html, letter, csv, json, certification")

    bagfiles.make_bag(bag_dir, packet, len(files.hashes))
    mark("bag")
    log.debug("packet %s: %s", packet.request_id, ", ".join(marks))
    return ExportResult(path=bag_dir, bates_first=p["bates_first"], bates_last=p["bates_last"], pages=p["pages"],
                        manifest_sha256=bagfiles.file_sha256(bag_dir / "manifest-sha256.txt"),
                        files={f"data/{k}": v for k, v in sorted(files.hashes.items())}, **counts)


class _JsonWriter(threading.Thread):
    """Writes records/<id>.json for every released record; errors are re-raised by result()."""

    def __init__(self, packet: PacketIn, views: list[RecordView], reds: dict[str, list[Redaction]],
                 files: bagfiles.DataFiles):
        super().__init__(name="packet-json", daemon=True)
        self.packet, self.views, self.reds, self.files = packet, views, reds, files
        self.error: BaseException | None = None

    def run(self) -> None:
        by_id = {r.record_id: r for r in self.packet.records}
        withheld = frozenset(r.record_id for r in self.packet.records if r.decision == "withhold")
        try:
            for v in self.views:
                self.files.write_text(f"records/{v.record_id}.json", bagfiles.record_json(
                    v, by_id[v.record_id], self.reds.get(v.record_id, []), withheld))
        except BaseException as exc:
            self.error = exc

    def result(self) -> dict[str, str]:
        """The written files' hashes, once the thread is done."""
        self.join()
        if self.error is not None:
            raise self.error
        return self.files.hashes


def _packet_pdf(packet: PacketIn, env: Any, p: dict[str, Any], threads: list[ThreadView],
                views: list[RecordView], work: Path, out: Path, progress: Callable[[int, int], None] | None,
                mark: Callable[[str], None]) -> dict[str, tuple[str, str]]:
    """Lay out the threads in chunks, then the cover, join and stamp them into out; fills p's Bates
    range and page count and returns each record's Bates range."""
    chunks = chunk_threads(threads, CHUNK_RECORDS)
    total, done = len(views), 0

    def on_done(res: ChunkResult) -> None:
        nonlocal done
        done += res.records
        if progress:
            progress(done, total)

    def jobs() -> Iterator[ChunkJob]:
        # Chunk HTML is made only as workers get free, so it never all sits in memory at once.
        for i, chunk in enumerate(chunks, 1):
            html = render.render(env, render.PACKET_TEMPLATE, {"p": p, "threads": chunk, "show_cover": False,
                                                                "links": False, "bates": {}})
            yield ChunkJob(index=i, html=html, out=str(work / f"chunk-{i:05d}.pdf"),
                           records=sum(len(t.records) for t in chunk))

    results = pdf.render_all(jobs(), len(chunks), on_done)
    if progress and not chunks:
        progress(0, 0)
    mark(f"layout of {len(chunks)} chunks ({sum(r.cpu for r in results):.1f}s CPU)")

    # The cover shows the Bates range, which depends on the cover's own length: lay it out until the
    # length it was numbered for is the length it has (twice, in practice).
    cover_pages = 0
    for _ in range(4):
        offsets, page_total = _offsets(results, cover_pages)
        p.update(bates_first=pdf.bates(packet.bates_prefix, packet.bates_start),
                 bates_last=pdf.bates(packet.bates_prefix, packet.bates_start + page_total - 1), pages=page_total)
        cover = _render_cover(env, p, work)
        if cover.pages == cover_pages:
            break
        cover_pages = cover.pages
    else:  # pragma: no cover - a cover whose length keeps changing with its own numbers
        raise ExportError("the cover page does not settle on a page count")

    outline = [pdf.OutlineItem("Cover", 0)]
    starts: dict[int, str] = {}
    for t, chunk_index in _thread_pages(chunks):
        page = results[chunk_index - 1].anchors.get(f"t-{t.index}-{t.part}")
        if page is None:
            continue
        starts[offsets[chunk_index] + page] = f"Thread {t.index}" + (" (continued)" if t.continued else "")
        if t.part == 1:
            outline.append(pdf.OutlineItem(f"Thread {t.index}: {t.title}", offsets[chunk_index] + page))
    labels, current = [], ""
    for i in range(page_total):
        current = starts.get(i, current)
        labels.append(current)
    furniture = Furniture(header_left=packet.agency_name,
                          header_right=f"{packet.request_id} \u2014 {packet.law.upper()}",
                          footer_left=f"Produced {p['generated_date']} \u00b7 export {packet.export_seq}")
    pdf.join_and_stamp([work / "cover.pdf"] + [work / f"chunk-{r.index:05d}.pdf" for r in results], out,
                       prefix=packet.bates_prefix, first_number=packet.bates_start, outline=outline,
                       title=f"Disclosure packet {packet.request_id}", furniture=furniture, labels=labels)
    mark("cover and join")
    return _record_ranges(views, results, offsets, packet)


def _render_cover(env: Any, p: dict[str, Any], work: Path) -> ChunkResult:
    html = render.render(env, render.PACKET_TEMPLATE, {"p": p, "threads": [], "show_cover": True, "links": False,
                                                        "bates": {}})
    return render_chunk(ChunkJob(index=0, html=html, out=str(work / "cover.pdf"), records=0))


def _offsets(results: list[ChunkResult], cover_pages: int) -> tuple[dict[int, int], int]:
    """Page offset of each chunk (by chunk index) in the joined PDF, and the total page count."""
    offsets, at = {}, cover_pages
    for res in results:
        offsets[res.index] = at
        at += res.pages
    return offsets, at


def _thread_pages(chunks: list[list[ThreadView]]) -> Iterator[tuple[ThreadView, int]]:
    for i, chunk in enumerate(chunks, 1):
        for t in chunk:
            yield t, i


def _record_ranges(views: list[RecordView], results: list[ChunkResult], offsets: dict[int, int],
                   packet: PacketIn) -> dict[str, tuple[str, str]]:
    """Bates range of each record from where its start and end anchors landed."""
    out: dict[str, tuple[str, str]] = {}
    for res in results:
        base = packet.bates_start + offsets[res.index]
        for name, page in res.anchors.items():
            if name.startswith("r-"):
                rid = name[2:]
                end = res.anchors.get(f"e-{rid}", page)
                out[rid] = (pdf.bates(packet.bates_prefix, base + page),
                            pdf.bates(packet.bates_prefix, base + max(page, end)))
    missing = [v.record_id for v in views if v.record_id not in out]
    if missing:
        raise ExportError(f"records missing from the laid-out PDF (template drops them?): {', '.join(missing[:5])}")
    return out


def _packet_context(packet: PacketIn, clock: Clock, counts: dict[str, int], threads: int) -> dict[str, Any]:
    red = packet_redactor(packet.records)
    r = red.apply
    local = clock.in_zone(packet.generated_at)
    return {
        "request_id": packet.request_id, "agency_name": packet.agency_name, "law": packet.law,
        "law_short": packet.law.upper(), "law_name": packet.law_name, "law_citation": packet.law_citation,
        "requester": r(packet.requester), "description": r(packet.description),
        "received": packet.received.isoformat(), "due": packet.due.isoformat(),
        "extended_due": packet.extended_due.isoformat() if packet.extended_due else None,
        "extension_reason": r(packet.extension_reason), "custodian": packet.custodian,
        "timezone": packet.timezone, "generated_local": clock.local(packet.generated_at),
        "generated_utc": clock.utc(packet.generated_at), "generated_date": local.date().isoformat(),
        "generated_date_long": f"{local:%B} {local.day}, {local.year}",
        "export_seq": packet.export_seq, "threads": threads,
        "exemptions": list(packet.exemptions), "extra": {k: r(v) for k, v in packet.extra.items()},
        "bates_first": "", "bates_last": "", "pages": 0, **counts,
    }


def _denials(packet: PacketIn, views: list[RecordView], reds: dict[str, list[Redaction]]) -> list[dict[str, Any]]:
    """One row per exemption cited in this packet, with how many records it redacted or withheld."""
    rows: dict[str, dict[str, Any]] = {}

    def row(ex: Exemption) -> dict[str, Any]:
        return rows.setdefault(ex.citation, {"citation": ex.citation, "short_name": ex.short_name,
                                             "description": ex.description, "redacted": 0, "withheld": 0})
    for v in views:
        for ex in {red.exemption.citation: red.exemption for red in reds.get(v.record_id, [])}.values():
            row(ex)["redacted"] += 1
    for rec in packet.records:
        if rec.decision == "withhold" and rec.withhold_exemption is not None:
            row(rec.withhold_exemption)["withheld"] += 1
    return sorted(rows.values(), key=lambda d: d["citation"])


def _captures(views: list[RecordView]) -> dict[str, Any]:
    firsts = [v.first_captured for v in views if v.first_captured]
    lasts = [v.last_seen for v in views if v.last_seen]
    return {"first": min(firsts, default="-"), "last": max(lasts, default="-"),
            "records": [{"record_id": v.record_id, "first": v.first_captured, "last": v.last_seen,
                         "versions": ",".join(x.captured for x in v.versions) or "-"} for v in views]}
