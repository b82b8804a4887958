"""Fixes from the custodian's and a reviewing court's walk through the request workflow: request facts
are bounded plain text, a closed request refuses --accept, and the cover letters cite the law file's
provisions, keep the signature with the letter and do not repeat the custodian's title."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from archiver.exports import packet as packet_mod
from archiver.exports import render
from archiver.exports.model import Exemption
from archiver.exports.packet import export_packet
from archiver.exports.pdfworker import render_pdf
from archiver.exports.views import Clock
from archiver.laws import load_law
from tests.test_packet import PRIVACY, make_packet, pdf_pages_text, rec
from tests.test_requests import (
    request_config,  # noqa: F401 - the fixture "cfg", shared
    rid,
    run,
)


def _requests(cfg: Path) -> list[dict[str, Any]]:
    return run(cfg, "list", "--json")[1]["requests"]


@pytest.mark.parametrize("option, value, why", [
    ("--requester", "R" * 501, "at most 500"),
    ("--description", "d" * 5001, "at most 5000"),
    ("--requester", "Jane\x1b[31m Roe", "control character (U+001B)"),
    ("--requester", "Jane \u202eeoR", "control character (U+202E)"),
    ("--requester", "Jane\nRoe", "control character (U+000A)"),
    ("--description", "a\x00b", "control character (U+0000)"),
])
def test_create_refuses_oversized_or_control_text(cfg: Path, option: str, value: str, why: str) -> None:
    args = {"--requester": "R", "--description": "d", option: value}
    code, out, err = run(cfg, "create", "--law", "kora", "--received", "2026-11-20", *(x for kv in args.items() for x in kv))
    assert code == 2 and out == "" and err.startswith(f"error: {option} ") and why in err and err.count("\n") == 1
    assert _requests(cfg) == []  # nothing was created


def test_description_and_reason_may_have_line_breaks_but_reason_is_bounded(cfg: Path) -> None:
    code, doc, err = run(cfg, "create", "--law", "cpra", "--requester", "R", "--received", "2026-11-20",
                         "--description", "1. comments\n2. replies", "--json")
    assert code == 0, err
    code, out, err = run(cfg, "extend", doc["request_id"], "--reason", "v" * 2001)
    assert code == 2 and out == "" and "at most 2000" in err and err.count("\n") == 1
    assert run(cfg, "show", doc["request_id"], "--json")[1]["extended_due"] is None  # nothing changed
    code, _, err = run(cfg, "extend", doc["request_id"], "--reason", "voluminous\nrecords", "--json")
    assert code == 0, err


def test_suggest_accept_on_closed_request_fails_even_with_nothing_to_accept(cfg: Path) -> None:
    run(cfg, "create", "--law", "kora", "--requester", "R", "--received", "2026-11-20", "--description", "d")
    run(cfg, "add", "KORA-2026-0001", "--record", rid("c4"))  # no personal information in it
    assert run(cfg, "suggest", "KORA-2026-0001", "--json")[1]["suggestions"] == []
    run(cfg, "close", "KORA-2026-0001")
    code, out, err = run(cfg, "suggest", "KORA-2026-0001", "--accept")
    assert code == 1 and out == "" and "is closed" in err and err.count("\n") == 1
    code, doc, _ = run(cfg, "suggest", "KORA-2026-0001", "--json")  # looking is still allowed
    assert code == 0 and doc["accepted"] == 0


def _cpra_packet(**over: object) -> Any:
    law = load_law("cpra")
    records = [rec("rec_a", "post", "A post", author="PD"),
               rec("rec_b", "comment", "withheld text", parent="rec_a", decision="withhold",
                   withhold=Exemption("Cal. Gov. Code 7923.600", "Law-enforcement investigatory records"))]
    base: dict[str, object] = dict(
        request_id="CPRA-2026-0012", law="cpra", law_name=law.name, law_citation=law.citation, records=records,
        received=date(2026, 11, 20), due=date(2026, 11, 30), extended_due=date(2026, 12, 14),
        extension_reason="The need to search for, collect and examine a voluminous amount of records",
        extra={"law_deadline_citation": law.deadline_citation, "law_extension_citation": law.extension_citation,
               "extension_days": "14"})
    base.update(over)
    return make_packet(**base)


def test_cpra_letter_cites_the_law_files_provisions(tmp_path: Path) -> None:
    res = export_packet(_cpra_packet(custodian="Records Custodian"), tmp_path)
    letter = (res.path / "data" / "cover-letter.html").read_text()
    # The extension and the determination cite the law file (it was a hard-coded fallback before).
    assert "As permitted by Cal. Gov. Code 7922.535(b), the time to respond\nwas extended by 14 days to 2026-12-14" in letter
    assert "Cal. Gov. Code 7922.535(a)" in letter and "voluminous amount of records" in letter
    # A custodian whose name is the title is not written "Records Custodian, Records Custodian".
    assert "Records Custodian, Records Custodian" not in letter
    assert "<td>Records Custodian</td>" in letter


def test_named_custodian_keeps_the_title(tmp_path: Path) -> None:
    res = export_packet(_cpra_packet(custodian="Dana Whitfield"), tmp_path)
    letter = (res.path / "data" / "cover-letter.html").read_text()
    assert "<td>Dana Whitfield, Records Custodian</td>" in letter
    assert "Dana Whitfield<br>\nRecords Custodian, Topeka Police Department" in letter


def _letter_last_page(tmp_path: Path, law: str, words: int) -> list[str]:
    """The text lines of the last page of a law's letter whose description is `words` words long."""
    packet = make_packet(law=law, description="records " * words)
    counts = {"released": 5, "redacted": 1, "withheld": 1}
    p = packet_mod._packet_context(packet, Clock(packet.timezone), counts, 1)
    p.update(bates_first="TPD-000007", bates_last="TPD-000010", pages=4)
    denials = [{"citation": PRIVACY.citation, "short_name": PRIVACY.short_name, "description": "",
                "redacted": 1, "withheld": 1}]
    html = render.render(render.make_env(), render.letter_template(law), {"p": p, "denials": denials, **counts})
    out = tmp_path / f"{law}-{words}.pdf"
    render_pdf(html, out)
    return [line.strip() for line in pdf_pages_text(out)[-1].splitlines() if line.strip()]


@pytest.mark.parametrize("law, words", [("kora", w) for w in (6, 12, 18, 24, 30)] +
                         [("cpra", w) for w in (30, 36, 42, 48, 54)])
def test_letter_signature_never_stands_alone_on_a_page(tmp_path: Path, law: str, words: int) -> None:
    # These description lengths put the letter's page break just before the signature (before the fix
    # the signature block and the page footer were the whole last page).
    last = _letter_last_page(tmp_path, law, words)
    body = [x for x in last if "R. Custodian" not in x and "Topeka Police Department" not in x and "page " not in x]
    assert body, f"the last page of the {law} letter holds only the signature: {last}"


def test_record_header_reads_status_first_and_packet_says_where_originals_are(tmp_path: Path) -> None:
    res = export_packet(make_packet(), tmp_path)
    data = res.path / "data"
    html = (data / "packet.html").read_text()
    # Badges follow the kind, so a long header wraps at its end instead of leaving "COMMENT" alone on a line.
    assert 'COMMENT <span class="badge b-edited">EDITED</span> &middot; Resident' in html
    assert 'COMMENT <span class="badge b-removed">REMOVED</span> &middot; Resident' in html
    lines = [x.strip() for page in pdf_pages_text(data / "packet.pdf") for x in page.splitlines()]
    assert "POST" not in lines and "COMMENT" not in lines
    assert any(x.startswith("COMMENT HIDDEN · Resident") for x in lines)
    # A hash in the packet is a reference: the packet and the certification say the original is not in it.
    assert "is not in this\npacket, and the agency produces it on request" in html
    assert "produced\non request" in (data / "certification.txt").read_text()


def test_export_to_an_impossible_folder_is_one_line(cfg: Path, tmp_path: Path) -> None:
    run(cfg, "create", "--law", "kora", "--requester", "R", "--received", "2026-11-20", "--description", "d")
    run(cfg, "add", "KORA-2026-0001", "--record", rid("c1"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, out, err = run(cfg, "export", "KORA-2026-0001", "--out", str(blocker / "sub"))
    assert code == 1 and out == "" and err.startswith("error: cannot create the packet folder") and err.count("\n") == 1
    assert run(cfg, "show", "KORA-2026-0001", "--json")[1]["exports"] == []  # nothing recorded
