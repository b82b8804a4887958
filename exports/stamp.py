"""Page furniture drawn onto the joined packet.pdf: running header, footer and the Bates number.

The Bates number of a chunk's first page is only known once every earlier chunk is laid out, so the
numbers cannot come from CSS without laying everything out twice. Drawing all of a page's furniture
here, in the standard Helvetica font (every PDF reader has it; nothing to embed), also spares WeasyPrint
three margin boxes per page, about a tenth of its time on a big packet.
"""

from __future__ import annotations

from dataclasses import dataclass

# Helvetica advance widths (AFM, per 1000 em) for printable ASCII; anything else counts as 556.
_W = [278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
      556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
      1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
      667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
      333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
      556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584]
_EXTRA = {"\u00b7": 278, "\u2014": 1000, "\u2013": 556}

# Positions in points, matching packet.css's page margins (0.8in top, 0.85in bottom, 0.75in sides).
SIDE = 0.75 * 72
HEADER_Y = 792 - 0.5 * 72
FOOTER_Y = 0.37 * 72


@dataclass(frozen=True)
class Furniture:
    """What goes on every page besides the Bates number (plain text, already safe to show)."""

    header_left: str
    header_right: str
    footer_left: str


def text_width(text: str, size: float) -> float:
    """Width of text set in Helvetica at size points."""
    total = 0
    for ch in text:
        o = ord(ch)
        total += _W[o - 32] if 32 <= o < 127 else _EXTRA.get(ch, 556)
    return total * size / 1000


def _pdf_string(text: str) -> str:
    # WinAnsi covers Latin-1 and the dashes; anything else becomes '?' rather than garbage glyphs.
    raw = text.encode("cp1252", errors="replace")
    out = []
    for b in raw:
        if b in (0x28, 0x29, 0x5C):
            out.append("\\" + chr(b))
        elif 32 <= b < 127:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")
    return "(" + "".join(out) + ")"


def _text(x: float, y: float, size: float, gray: float, text: str) -> str:
    return f"BT /FStamp {size:g} Tf {gray:g} g 1 0 0 1 {x:.2f} {y:.2f} Tm {_pdf_string(text)} Tj ET\n"


def page_stream(f: Furniture, bates: str, label: str, width: float, height: float) -> bytes:
    """Content stream that draws one page's header, footer and Bates number (after a 'Q' that closes
    the q the joiner puts before the page's own content)."""
    top = height - (792 - HEADER_Y)
    left = f.header_left + (f"  \u00b7  {label}" if label else "")
    parts = [
        "Q\nq\n",
        _text(SIDE, top, 7.5, 0.3, left),
        _text(width - SIDE - text_width(f.header_right, 7.5), top, 7.5, 0.1, f.header_right),
        _text(SIDE, FOOTER_Y, 7, 0.4, f.footer_left),
        _text(width - SIDE - text_width(bates, 9), FOOTER_Y, 9, 0, bates),
        f"0.6 G 0.5 w {SIDE:.2f} {top - 5:.2f} m {width - SIDE:.2f} {top - 5:.2f} l S\n",
        "Q\n",
    ]
    return "".join(parts).encode("latin-1")
