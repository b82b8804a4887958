"""packet.pdf: chunks laid out in parallel worker processes, then joined and stamped.

One WeasyPrint pass over ten thousand records takes minutes and gigabytes, so the packet is laid out in
chunks of whole threads (each thread starts a page, so the chunk boundaries change nothing on paper),
each chunk in a worker process, written to its own PDF. The chunks are then joined with pypdf, and the
running header, footer and Bates number are drawn on each page (stamp.py).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject

from .pdfworker import ChunkJob, ChunkResult, render_chunk
from .stamp import Furniture, page_stream


def bates(prefix: str, number: int) -> str:
    """'TPD-000042': the prefix, a hyphen and at least six digits."""
    return f"{prefix}-{number:06d}"


def worker_count(chunks: int) -> int:
    """Worker processes for this many chunks: one per CPU this process may use (or
    $ARCHIVER_PACKET_WORKERS), never more than chunks."""
    env = os.environ.get("ARCHIVER_PACKET_WORKERS", "")
    if env.isdigit() and int(env) > 0:
        return max(1, min(int(env), chunks))
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, chunks))


def render_all(jobs: Iterable[ChunkJob], total_chunks: int,
               on_done: Callable[[ChunkResult], None] | None = None) -> list[ChunkResult]:
    """Lay out every chunk (in parallel when there is more than one CPU and chunk); results in job order."""
    workers = worker_count(total_chunks)
    results: dict[int, ChunkResult] = {}
    if workers == 1:
        for job in jobs:
            res = render_chunk(job)
            results[res.index] = res
            if on_done:
                on_done(res)
        return [results[i] for i in sorted(results)]
    # forkserver: workers fork from a small process that has WeasyPrint loaded, not from this one, which
    # holds the whole request: after a plain fork the garbage collector would touch every inherited
    # object and so copy that memory into each worker.
    ctx: multiprocessing.context.BaseContext
    try:
        ctx = multiprocessing.get_context("forkserver")
        multiprocessing.get_context("forkserver").set_forkserver_preload(["archiver.exports.pdfworker"])
    except ValueError:  # pragma: no cover - platforms without forkserver (Windows)
        ctx = multiprocessing.get_context("spawn")
    pending: set[Future[ChunkResult]] = set()
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, max_tasks_per_child=16) as pool:
        try:
            for job in jobs:
                pending.add(pool.submit(render_chunk, job))
                # Keep at most a few chunks' HTML queued, so memory stays bounded however big the packet.
                while len(pending) >= workers * 2:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    _collect(done, results, on_done)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                _collect(done, results, on_done)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return [results[i] for i in sorted(results)]


def _collect(done: Iterable[Future[ChunkResult]], results: dict[int, ChunkResult],
             on_done: Callable[[ChunkResult], None] | None) -> None:
    for f in done:
        res = f.result()
        results[res.index] = res
        if on_done:
            on_done(res)


@dataclass(frozen=True)
class OutlineItem:
    """A bookmark: title (only safe, already-redacted text) and 0-based page in the joined PDF."""

    title: str
    page: int


def join_and_stamp(parts: Sequence[Path], out: Path, *, prefix: str, first_number: int,
                   outline: Sequence[OutlineItem], title: str, furniture: Furniture,
                   labels: Sequence[str] = ()) -> int:
    """Concatenate the chunk PDFs into out, with header, footer and a Bates number on every page
    (labels: a running-header label per page, e.g. 'Thread 3'); returns the page count."""
    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"), NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
    }))
    opener = DecodedStreamObject()
    opener.set_data(b"q\n")
    opener_ref = writer._add_object(opener)
    number = first_number
    for part in parts:
        reader = PdfReader(str(part))
        for page in reader.pages:
            wp = writer.add_page(page)
            res = wp["/Resources"].get_object() if "/Resources" in wp else None
            if not isinstance(res, DictionaryObject):
                res = DictionaryObject()
                wp[NameObject("/Resources")] = res
            fonts = res.get("/Font")
            fonts = fonts.get_object() if fonts is not None else None
            if not isinstance(fonts, DictionaryObject):
                fonts = DictionaryObject()
                res[NameObject("/Font")] = fonts
            # Resources are shared between a chunk's pages; adding the same font to each is harmless.
            fonts[NameObject("/FStamp")] = font
            stamp = DecodedStreamObject()
            i = number - first_number
            stamp.set_data(page_stream(furniture, bates(prefix, number), labels[i] if i < len(labels) else "",
                                       float(wp.mediabox.width), float(wp.mediabox.height)))
            contents = wp.get("/Contents")
            existing = []
            if contents is not None:
                obj = contents.get_object()
                existing = list(obj) if isinstance(obj, ArrayObject) else [contents]
            # The layout engine's stream may leave its coordinate transform in place: isolate it with q/Q
            # so the stamp is drawn in plain page coordinates.
            wp[NameObject("/Contents")] = ArrayObject([opener_ref, *existing, writer._add_object(stamp)])
            number += 1
    pages = number - first_number
    for item in outline:
        if 0 <= item.page < pages:
            writer.add_outline_item(title=item.title, page_number=item.page)
    writer.add_metadata({"/Title": title, "/Producer": "archiver disclosure packet"})
    writer.page_mode = "/UseOutlines" if outline else "/UseNone"
    with open(out, "wb") as fh:
        writer.write(fh)
    return pages
