"""The disclosure packet builder (exports.packet): bag layout, redaction, withholding, Bates numbers,
escaping, templates, atomic placement. No database: PacketIn objects are built directly."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import bagit
import pytest
from pypdf import PdfReader
from pypdf.generic import StreamObject

from archiver.errors import ArchiverError, ExportError
from archiver.exports import packet as packet_mod
from archiver.exports.model import EventIn, Exemption, PacketIn, RecordIn, Redaction, VersionIn
from archiver.exports.packet import export_packet
from archiver.exports.redact import Redactor, redaction_label

PRIVACY = Exemption("K.S.A. 45-221(a)(30)", "Clearly unwarranted invasion of personal privacy")
INVESTIGATION = Exemption("K.S.A. 45-221(a)(10)", "Criminal investigation records")
SECRET = "Bartholomew Quistgaard"
SECRET_WORD = "Quistgaard"
WITHHELD_TEXT = "Zyxwithheld confidential informant statement"
WITHHELD_AUTHOR = "Wilhelmina Hiddenauthor"
WITHHELD_LINK = "https://facebook.example/p/withheld-zzqq"
SCRIPT = "<script>alert(1)</script>"
T0 = datetime(2026, 10, 3, 14, 0, tzinfo=UTC)


def _sha(i: int) -> str:
    return hashlib.sha256(f"version-{i}".encode()).hexdigest()


def rec(rid: str, kind: str, text: str, *, parent: str | None = None, thread: str | None = "rec_post1",
        minutes: int = 0, decision: str = "release", author: str = "Resident", status: str = "live",
        versions: list[str] | None = None, redactions: tuple[Redaction, ...] = (),
        withhold: Exemption | None = None, permalink: str | None = None) -> RecordIn:
    created = T0 + timedelta(minutes=minutes)
    texts = versions or [text]
    vs = tuple(VersionIn(seq=i + 1, captured_at=created + timedelta(minutes=5 + 60 * i),
                         sha256=_sha(hash((rid, i)) & 0xFFFF), text=t,
                         edited_at=created + timedelta(minutes=60 * i) if i else None)
               for i, t in enumerate(texts))
    events = [EventIn("captured", created + timedelta(minutes=5))]
    events += [EventIn("edited", v.captured_at) for v in vs[1:]]
    if status in ("hidden", "removed"):
        events.append(EventIn(status, created + timedelta(hours=3)))
    return RecordIn(
        record_id=rid, platform="facebook", account="tpd-facebook", native_id=f"n_{rid}", kind=kind,
        parent_id=parent, thread_id=None if kind == "post" else thread, author=author, created_at=created,
        permalink=permalink or f"https://facebook.example/tpd/{rid}", status=status,
        first_captured_at=created + timedelta(minutes=5), last_seen_at=created + timedelta(days=2),
        removed_at=created + timedelta(hours=3) if status == "removed" else None, versions=vs,
        events=tuple(events), decision=decision, redactions=redactions, withhold_exemption=withhold,  # type: ignore[arg-type]
    )


def make_packet(**over: object) -> PacketIn:
    records = [
        rec("rec_post1", "post", "Main St. is closed after a crash. Use the detour on 5th Ave.", author="Topeka PD"),
        rec("rec_c01", "comment", "Thanks for the update, officers.", parent="rec_post1", minutes=10),
        rec("rec_c02", "comment", f"My neighbor {SECRET} was in that car, pray for {SECRET}!", parent="rec_post1",
            minutes=12, decision="redact", author=f"{SECRET}'s sister",
            permalink=f"https://facebook.example/tpd/rec_c02?name={SECRET_WORD}",
            redactions=(Redaction(SECRET, PRIVACY), Redaction(SECRET_WORD, PRIVACY))),
        rec("rec_r01", "reply", "So sorry to hear that.", parent="rec_c02", minutes=15),
        rec("rec_c03", "comment", f"Look at this {SCRIPT} & <b>bold</b>", parent="rec_post1", minutes=20),
        rec("rec_c04", "comment", WITHHELD_TEXT, parent="rec_post1", minutes=25, decision="withhold",
            author=WITHHELD_AUTHOR, withhold=INVESTIGATION, permalink=WITHHELD_LINK),
        rec("rec_r03", "reply", "A reply to the withheld comment", parent="rec_c04", minutes=26),
        rec("rec_c05", "comment", "", parent="rec_post1", minutes=30, status="edited",
            versions=["First version: speed limit is 30", "Second version: speed limit is 25, sorry"]),
        rec("rec_c06", "comment", "This comment was hidden by a moderator", parent="rec_post1", minutes=35,
            status="hidden"),
        rec("rec_c07", "comment", "Removed later " + "x" * 300, parent="rec_post1", minutes=40, status="removed"),
        rec("rec_r02", "reply", "Replying to the first comment", parent="rec_c01", minutes=50),
        rec("rec_post2", "post", "Second post: parade route " + "word " * 1500 + "ENDOFPOST2", author="Topeka PD", minutes=600,
            thread=None),
        rec("rec_p2c1", "comment", "Comment on the second post", parent="rec_post2", thread="rec_post2",
            minutes=610),
    ]
    base: dict[str, object] = dict(
        request_id="KORA-2026-0007", law="kora", law_name="Kansas Open Records Act",
        law_citation="K.S.A. 45-215 et seq.", requester="Jane Q. Reporter",
        description="All comments on the department's posts about the Main St. crash, Oct 1-15",
        received=date(2026, 10, 16), due=date(2026, 10, 21), extended_due=None, extension_reason=None,
        agency_name="Topeka Police Department", custodian="R. Custodian", bates_prefix="TPD",
        timezone="America/Chicago", generated_at=datetime(2026, 10, 20, 15, 0, tzinfo=UTC), records=records,
        exemptions=(PRIVACY, INVESTIGATION), bates_start=7,
    )
    base.update(over)
    return PacketIn(**base)  # type: ignore[arg-type]


def pdf_pages_text(path: Path) -> list[str]:
    """pdftotext, one string per page."""
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True)
    pages = out.stdout.split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


def pdf_everything(path: Path) -> str:
    """Everything a reader of the PDF file could get at: pypdf text, decoded streams, metadata, outline."""
    reader = PdfReader(str(path))
    parts = [p.extract_text() or "" for p in reader.pages]
    parts.append(repr(reader.metadata))
    parts.append(repr(reader.outline))
    for num in range(1, int(reader.trailer["/Size"])):
        try:
            obj = reader.get_object(num)
        except Exception:
            continue
        if isinstance(obj, StreamObject):
            parts.append(obj.get_data().decode("latin-1"))
        else:
            parts.append(repr(obj))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """One multi-chunk export (small chunks, so the worker pool and the joining run) shared by the tests."""
    out = tmp_path_factory.mktemp("exports")
    old = packet_mod.CHUNK_RECORDS
    packet_mod.CHUNK_RECORDS = 3
    seen: list[tuple[int, int]] = []
    try:
        res = export_packet(make_packet(), out, progress=lambda a, b: seen.append((a, b)))
    finally:
        packet_mod.CHUNK_RECORDS = old
    return res, out, seen


def test_bag_layout_and_validation(built) -> None:
    res, out, seen = built
    assert res.path == out / "KORA-2026-0007"
    bag = bagit.Bag(str(res.path))
    bag.validate()
    assert bag.info["External-Identifier"] == "KORA-2026-0007"
    assert bag.info["Source-Organization"] == "Topeka Police Department"
    assert bag.info["Bagging-Date"] == "2026-10-20"
    data = res.path / "data"
    for name in ("cover-letter.html", "cover-letter.pdf", "packet.pdf", "packet.html", "index.csv",
                 "exemption-log.csv", "certification.txt"):
        assert (data / name).is_file(), name
    assert sorted(p.name for p in (data / "records").iterdir()) == sorted(
        f"{r}.json" for r in ("rec_post1", "rec_c01", "rec_c02", "rec_r01", "rec_c03", "rec_c05", "rec_c06",
                              "rec_c07", "rec_r02", "rec_r03", "rec_post2", "rec_p2c1"))
    assert (res.released, res.redacted, res.withheld) == (11, 1, 1)
    assert res.manifest_sha256 == hashlib.sha256((res.path / "manifest-sha256.txt").read_bytes()).hexdigest()
    assert res.files["data/packet.pdf"] == hashlib.sha256((data / "packet.pdf").read_bytes()).hexdigest()
    assert [p.name for p in out.iterdir()] == ["KORA-2026-0007"]  # no staging left behind
    assert seen and seen[-1] == (12, 12)


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_redacted_text_is_nowhere(built) -> None:
    res, _, _ = built
    label = redaction_label(PRIVACY)
    for path in res.path.rglob("*"):
        assert SECRET_WORD.lower() not in str(path.relative_to(res.path)).lower()
    for path in _all_files(res.path):
        raw = path.read_bytes()
        for needle in (SECRET, SECRET_WORD):
            assert needle.encode() not in raw, path
            assert needle.encode("utf-16-be") not in raw, path
    pdf = res.path / "data" / "packet.pdf"
    for text in (pdf_everything(pdf), "\n".join(pdf_pages_text(pdf)),
                 pdf_everything(res.path / "data" / "cover-letter.pdf")):
        assert SECRET_WORD not in text
    assert "REDACTED K.S.A. 45-221(a)(30)" in "\n".join(pdf_pages_text(pdf))
    html = (res.path / "data" / "packet.html").read_text()
    assert label in html
    doc = (res.path / "data" / "records" / "rec_c02.json").read_text()
    assert label in doc and "sha256" not in doc
    # The redacted permalink is neither shown nor linked; no hash of the redacted record appears anywhere.
    assert 'href="https://facebook.example/tpd/rec_c02' not in html
    red = next(r for r in make_packet().records if r.record_id == "rec_c02")
    for path in _all_files(res.path):
        assert red.versions[0].sha256.encode() not in path.read_bytes(), path


def test_withheld_record_only_in_exemption_log(built) -> None:
    res, _, _ = built
    for path in _all_files(res.path):
        raw = path.read_bytes()
        for needle in (WITHHELD_TEXT, WITHHELD_AUTHOR, WITHHELD_LINK, "Zyxwithheld", "Hiddenauthor"):
            assert needle.encode() not in raw, (needle, path)
        if path.name not in ("exemption-log.csv", "manifest-sha256.txt", "tagmanifest-sha256.txt"):
            assert b"rec_c04" not in raw, path
    pdf = res.path / "data" / "packet.pdf"
    assert "Zyxwithheld" not in pdf_everything(pdf) and "rec_c04" not in "".join(pdf_pages_text(pdf))


def test_exemption_log_lists_redactions_and_withholding(built) -> None:
    res, _, _ = built
    rows = list(csv.DictReader(io.StringIO((res.path / "data" / "exemption-log.csv").read_text())))
    redacted = [r for r in rows if r["action"] == "redacted"]
    withheld = [r for r in rows if r["action"] == "withheld"]
    assert {(r["record_id"], r["citation"]) for r in redacted} == {("rec_c02", "K.S.A. 45-221(a)(30)")}
    assert len(redacted) == 2  # one row per redaction
    assert withheld == [{"record_id": "rec_c04", "action": "withheld", "citation": "K.S.A. 45-221(a)(10)",
                         "short_reason": "Criminal investigation records", "bates_first": "", "bates_last": ""}]


def test_bates_numbers_consecutive_and_match_index(built) -> None:
    res, _, _ = built
    pdf = res.path / "data" / "packet.pdf"
    pages = pdf_pages_text(pdf)
    reader_pages = [p.extract_text() for p in PdfReader(str(pdf)).pages]
    assert len(pages) == len(reader_pages) == res.pages
    for i, (text, text2) in enumerate(zip(pages, reader_pages, strict=True)):
        number = f"TPD-{7 + i:06d}"
        assert number in text and number in text2, (i, text[-200:])
    assert res.bates_first == "TPD-000007" and res.bates_last == f"TPD-{7 + res.pages - 1:06d}"
    rows = list(csv.DictReader(io.StringIO((res.path / "data" / "index.csv").read_text())))
    assert [r["record_id"] for r in rows][:2] == ["rec_post1", "rec_c01"]
    assert len(rows) == 12
    assert all(r["status"] for r in rows) and {r["decision"] for r in rows} == {"release", "redact"}
    last = 0
    for r in rows:
        first, end = int(r["bates_first"][4:]), int(r["bates_last"][4:])
        assert last <= first <= end
        last = first
        # The record's id is printed at its end, its author line at its start.
        assert r["record_id"] in pages[end - 7], r
    # A record longer than a page: its range covers every page it is printed on.
    post2 = next(r for r in rows if r["record_id"] == "rec_post2")
    first, end = int(post2["bates_first"][4:]) - 7, int(post2["bates_last"][4:]) - 7
    assert end > first
    assert "parade route" in pages[first] and "ENDOFPOST2" in pages[end]
    # Running header on every page: agency and request id; a thread split across chunks says so.
    assert all("Topeka Police Department" in t and "KORA-2026-0007" in t for t in pages)
    assert any("(continued)" in t for t in pages)


def test_hostile_markup_is_escaped(built) -> None:
    res, _, _ = built
    html = (res.path / "data" / "packet.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html and "<b>bold" not in html
    text = "".join(pdf_pages_text(res.path / "data" / "packet.pdf"))
    assert SCRIPT in text and "<b>bold</b>" in text


def test_edited_record_shows_every_version_and_status_badges(built) -> None:
    res, _, _ = built
    text = " ".join(" ".join(pdf_pages_text(res.path / "data" / "packet.pdf")).split())
    assert "First version: speed limit is 30" in text and "Second version: speed limit is 25, sorry" in text
    assert "Version 1" in text and "Version 2" in text
    assert "EDITED" in text and "HIDDEN" in text and "REMOVED" in text
    assert "hidden 2026-10-03T17:35:00Z" in text and "removed 2026-10-03T17:40:00Z" in text
    doc = json.loads((res.path / "data" / "records" / "rec_c05.json").read_text())
    assert [v["seq"] for v in doc["versions"]] == [1, 2] and all(len(v["sha256"]) == 64 for v in doc["versions"])


def test_certification_lists_every_file_hash(built) -> None:
    res, _, _ = built
    data = res.path / "data"
    cert = (data / "certification.txt").read_text()
    listed = {}
    for line in cert.splitlines():
        parts = line.split("  ")
        if len(parts) == 2 and len(parts[0]) == 64:
            listed[parts[1]] = parts[0]
    expected = {str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in _all_files(data) if p.name != "certification.txt"}
    assert listed == expected
    assert "R. Custodian" in cert and "true and correct copies" in cert
    assert "2026-10-03T14:05:00Z" in cert  # capture times


def test_cover_letter_is_law_specific(built) -> None:
    res, _, _ = built
    letter = (res.path / "data" / "cover-letter.html").read_text()
    assert "K.S.A. 45-221(a)(10)" in letter and "K.S.A. 45-221(a)(30)" in letter
    assert "R. Custodian" in letter and "Grounds for denial" in letter
    assert PdfReader(str(res.path / "data" / "cover-letter.pdf")).pages


def test_cpra_letter_names_extension_and_responsible_person(tmp_path: Path) -> None:
    records = [rec("rec_a", "post", "A post", author="PD"),
               rec("rec_b", "comment", "withheld text", parent="rec_a", decision="withhold",
                   withhold=Exemption("Gov. Code 7923.600", "Law-enforcement investigatory records"))]
    res = export_packet(make_packet(request_id="CPRA-2026-0012", law="cpra", law_name="California Public Records Act",
                                    law_citation="Gov. Code 7920.000 et seq.", records=records,
                                    extended_due=date(2026, 12, 14), extension_reason="voluminous records"),
                        tmp_path)
    letter = (res.path / "data" / "cover-letter.html").read_text()
    assert "voluminous records" in letter and "2026-12-14" in letter
    assert "Gov. Code 7923.600" in letter and "Responsible for the denial" in letter and "R. Custodian" in letter


def test_second_export_gets_new_folder_first_untouched(built, tmp_path: Path) -> None:
    first = export_packet(make_packet(records=make_packet().records[:3]), tmp_path)
    before = {p: p.read_bytes() for p in _all_files(first.path)}
    second = export_packet(make_packet(records=make_packet().records[:3], export_seq=2), tmp_path)
    assert first.path.name == "KORA-2026-0007" and second.path.name == "KORA-2026-0007-2"
    assert {p: p.read_bytes() for p in _all_files(first.path)} == before
    bagit.Bag(str(second.path)).validate()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["KORA-2026-0007", "KORA-2026-0007-2"]


def test_agency_template_override_is_used(tmp_path: Path) -> None:
    tpl = tmp_path / "templates"
    tpl.mkdir()
    (tpl / "cover-letter-kora.html").write_text(
        '{% extends "cover-letter-base.html" %}{% block body %}<p>AGENCY LETTER for {{ p.request_id }} '
        "{{ p.requester }}</p>{% endblock %}")
    res = export_packet(make_packet(records=make_packet().records[:3]), tmp_path / "out", template_dirs=[tpl])
    letter = (res.path / "data" / "cover-letter.html").read_text()
    assert "AGENCY LETTER for KORA-2026-0007 Jane Q. Reporter" in letter
    assert "AGENCY LETTER" in "".join(pdf_pages_text(res.path / "data" / "cover-letter.pdf"))


@pytest.mark.parametrize("body", ["{% if %}broken", "{{ no_such_variable }}"])
def test_broken_template_fails_cleanly(tmp_path: Path, body: str) -> None:
    tpl = tmp_path / "templates"
    tpl.mkdir()
    (tpl / "cover-letter-kora.html").write_text(body)
    out = tmp_path / "out"
    with pytest.raises(ExportError) as exc:
        export_packet(make_packet(records=make_packet().records[:3]), out, template_dirs=[tpl])
    assert "cover-letter-kora.html" in str(exc.value)
    assert isinstance(exc.value, ArchiverError)
    assert list(out.iterdir()) == []


def test_unsafe_record_id_is_refused(tmp_path: Path) -> None:
    bad = rec("../etc", "post", "x")
    with pytest.raises(ExportError):
        export_packet(make_packet(records=[bad]), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_redaction_label_has_fixed_width_and_applies_longest_first() -> None:
    red = Redactor.of([Redaction("Al", PRIVACY), Redaction("Alexandra Longname-Smith", PRIVACY)])
    a = red.apply("Al")
    b = red.apply("Alexandra Longname-Smith")
    assert a == b == redaction_label(PRIVACY)
    assert red.apply("Al and Alexandra Longname-Smith") == f"{a} and {a}"
    overlapping = Redactor.of([Redaction("John Smi", PRIVACY), Redaction("Smith Jr", INVESTIGATION)])
    assert overlapping.apply("Mr John Smith Jr. and Smith Jr") == f"Mr {a}. and {redaction_label(INVESTIGATION)}"
    assert red.apply(None) is None and red.apply("nothing here") == "nothing here"


def test_redaction_of_one_record_reaches_a_quote_in_another(tmp_path: Path) -> None:
    records = [rec("rec_a", "post", "A post", author="PD"),
               rec("rec_b", "comment", f"I saw {SECRET}", parent="rec_a", decision="redact",
                   redactions=(Redaction(SECRET, PRIVACY),)),
               rec("rec_c", "reply", f"@{SECRET} hope you are ok", parent="rec_b")]
    res = export_packet(make_packet(records=records), tmp_path)
    for path in _all_files(res.path):
        assert SECRET.encode() not in path.read_bytes(), path
    doc = (res.path / "data" / "records" / "rec_c.json").read_text()
    assert "sha256" not in doc and redaction_label(PRIVACY) in doc
    assert res.redacted == 2


def test_staging_removed_when_rendering_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("archiver.exports.bagfiles.make_bag", boom)
    with pytest.raises(ExportError, match="disk full"):
        export_packet(make_packet(records=make_packet().records[:3]), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_everything_withheld_still_makes_a_valid_packet(tmp_path: Path) -> None:
    records = [rec("rec_a", "post", "secret post", decision="withhold", withhold=INVESTIGATION)]
    res = export_packet(make_packet(records=records), tmp_path)
    bagit.Bag(str(res.path)).validate()
    assert (res.released, res.redacted, res.withheld, res.pages) == (0, 0, 1, 1)
    assert (res.path / "data" / "index.csv").read_text().count("\n") == 1
    assert not (res.path / "data" / "records").exists()
    assert "secret post" not in "".join(pdf_pages_text(res.path / "data" / "packet.pdf"))
