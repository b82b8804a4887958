"""Lays out one chunk of the packet with WeasyPrint, in a worker process or in the caller's.

Kept tiny and importing WeasyPrint at the top, so a forkserver can preload it once and every worker it
forks starts warm.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import weasyprint


@dataclass(frozen=True)
class ChunkJob:
    """One chunk to lay out: its HTML and where the PDF goes."""

    index: int
    html: str
    out: str
    records: int


@dataclass(frozen=True)
class ChunkResult:
    """Page count of a chunk and the page (0-based, within the chunk) each anchor landed on."""

    index: int
    pages: int
    anchors: dict[str, int]
    records: int
    cpu: float = 0.0  # seconds of CPU the worker spent, for the timing log


def _fetcher() -> weasyprint.URLFetcher:
    # Inline data only: a packet never reaches the network or the file system while it renders.
    return weasyprint.URLFetcher(allowed_protocols=("data",), allow_redirects=False)


def render_chunk(job: ChunkJob) -> ChunkResult:
    """Lay out the chunk, note where each anchor landed, write the PDF without named destinations."""
    started = time.process_time()
    doc = weasyprint.HTML(string=job.html, url_fetcher=_fetcher()).render()
    anchors: dict[str, int] = {}
    for i, page in enumerate(doc.pages):
        for name in page.anchors:
            anchors.setdefault(name, i)
        # Without this every element id becomes a PDF named destination: a huge name tree that makes
        # joining slow, and the ids are of no use to a reader once the chunks are one file.
        page.anchors.clear()
    doc.write_pdf(Path(job.out))
    return ChunkResult(index=job.index, pages=len(doc.pages), anchors=anchors, records=job.records,
                       cpu=time.process_time() - started)


def render_pdf(html: str, out: Path) -> int:
    """Render a small document (the cover letter) straight to a PDF; returns its page count."""
    doc = weasyprint.HTML(string=html, url_fetcher=_fetcher()).render()
    doc.write_pdf(out)
    return len(doc.pages)
