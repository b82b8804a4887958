"""The open-records request workflow on real databases: the CLI contract (create, add, redact, withhold,
extend, show, list, suggest, close), id validation, exemption checks, PII suggestions, packet input, export
recording, and the audit chain."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from archiver.archive import Archive
from archiver.audit import verify_chain
from archiver.capture import CaptureSession
from archiver.cli import main
from archiver.config import AccountConfig
from archiver.connectors.base import Exchange, Item, Scope
from archiver.db.models import AuditEntry, Record
from archiver.errors import RequestError
from archiver.harvest import ensure_account
from archiver.ids import record_id
from archiver.pii import find_pii
from archiver.request_export import build_packet, export_request, template_dirs
from archiver.requests import add_records, create_request, show_request

ACCOUNT = "apd-facebook"
T0 = datetime(2026, 10, 2, 15, tzinfo=UTC)
TEXTS = {
    "p1": ("post", None, "Andover PD", "Main St. crash: road closed until 5pm. <script>alert(1)</script>"),
    "c1": ("comment", "p1", "Jane Doe", "My neighbor saw the crash, call me at (316) 555-0142 or jane.doe@example.com"),
    "c2": ("comment", "p1", "John Smith",
           "crash witness here. SSN 123-45-6789, DOB: 04/12/1987, I live at 1234 N Elm Street"),
    "c3": ("comment", "p1", "Pat Lee",
           "Thanks officers, the crash on Main St. on 10/05/2026 was handled well by 25 units. Case 2026-001234."),
    "c4": ("comment", "p1", "Anon", "tip about the crash suspect: he drives a blue truck"),
}


def rid(nid: str) -> str:
    return record_id(ACCOUNT, nid)


def fill(arch: Archive) -> None:
    """One post with four comments, stored the way a harvest stores them."""
    acc = AccountConfig(name=ACCOUNT, connector="facebook")
    cs = CaptureSession(arch.db, arch.blobs, arch.clock, account_id=ensure_account(arch, acc), account_name=ACCOUNT,
                        platform="facebook", run_id=None, series=arch.series_for(acc))
    items = [Item(native_id=nid, kind=kind, raw={"id": nid, "message": text}, parent_native_id=parent,  # type: ignore[arg-type]
                  text=text, author=author, created_at=T0, permalink=f"https://facebook.example/{nid}")
             for nid, (kind, parent, author, text) in TEXTS.items()]
    cs.store_page(Scope("feed"), Exchange("GET", "http://platform/feed", 200, {}, b"{}", arch.clock.now()), items)


@pytest.fixture(name="cfg")
def request_config(archive: Archive, tmp_path: Path) -> Path:
    """A config file for the test archive, with one post and four comments in it."""
    fill(archive)
    st = archive.settings.storage
    path = tmp_path / "archiver.toml"
    path.write_text(f'[agency]\nname = "Test Police Department"\nbates_prefix = "TPD"\nstate = "KS"\n'
                    f'[storage]\ndatabase_url = "{st.database_url}"\nblobs = "{st.blobs}"\n'
                    f'index_dir = "{st.index_dir}"\nexports_dir = "{st.exports_dir}"\n')
    return path


def run(cfg: Path, *args: str) -> tuple[int, Any, str]:
    """`archiver request ARGS` against cfg: exit code, stdout (parsed with --json on success), stderr."""
    res = CliRunner().invoke(main, ["--config", str(cfg), "request", *args], catch_exceptions=False)
    out: Any = res.stdout
    if "--json" in args and res.exit_code == 0:
        out = json.loads(res.stdout)
    return res.exit_code, out, res.stderr


def test_request_workflow_cli(cfg: Path, archive: Archive) -> None:
    code, doc, _ = run(cfg, "create", "--law", "kora", "--requester", "Jane Roe <script>x</script>",
                       "--received", "2026-11-20", "--description", "Comments on the Main St. crash", "--json")
    assert code == 0 and doc == {"request_id": "KORA-2026-0001", "law": "kora", "received": "2026-11-20",
                                 "due": "2026-11-25"}
    req = doc["request_id"]
    code, doc, _ = run(cfg, "create", "--law", "kora", "--requester", "R", "--received", "2026-12-29",
                       "--description", "d", "--json")
    assert doc["request_id"] == "KORA-2026-0002" and doc["due"] == "2027-01-04"

    # add by query (the index is caught up first) and by id
    code, doc, _ = run(cfg, "add", req, "--query", "crash", "--json")
    assert code == 0 and sorted(doc["records"]) == sorted(rid(n) for n in TEXTS) and doc["total"] == 5
    code, doc, _ = run(cfg, "add", req, "--record", rid("c1"), "--json")
    assert code == 0 and doc["records"] == [] and doc["already"] == [rid("c1")]
    code, _, err = run(cfg, "add", req, "--record", "rec_nope")
    assert code == 1 and err.startswith("error: no record 'rec_nope'") and err.count("\n") == 1

    # redact: short form of the citation, exact text; wrong exemption and absent text are clear errors
    code, doc, _ = run(cfg, "redact", req, "--record", rid("c1"), "--text", "(316) 555-0142", "--exemption", "(a)(30)",
                       "--json")
    assert code == 0 and doc["redactions"][0]["exemption"] == "K.S.A. 45-221(a)(30)"
    code, _, err = run(cfg, "redact", req, "--record", rid("c1"), "--text", "Jane", "--exemption", "7927.700")
    assert code == 1 and "not an exemption of the Kansas Open Records Act" in err and "(a)(30)" in err
    code, _, err = run(cfg, "redact", req, "--record", rid("c1"), "--text", "not in it", "--exemption", "(a)(30)")
    assert code == 1 and "does not occur in record" in err
    code, doc, _ = run(cfg, "redact", req, "--record", rid("c1"), "--text", "Jane Doe", "--exemption",
                       "K.S.A. 45-221(a)(30)", "--json")
    assert code == 0 and len(doc["redactions"]) == 2  # the author is a string a packet shows

    code, doc, _ = run(cfg, "withhold", req, "--record", rid("c4"), "--exemption", "(a)(10)", "--json")
    assert code == 0 and doc == {"request_id": req, "withheld": [rid("c4")]}
    code, _, err = run(cfg, "withhold", req, "--record", rid("c4"), "--exemption", "Pen. Code 832.7")
    assert code == 1 and "not an exemption" in err

    code, _, err = run(cfg, "extend", req, "--reason", "voluminous records")
    assert code == 1 and "has no extension" in err and "K.S.A. 45-218(d)" in err

    code, doc, _ = run(cfg, "show", req, "--json")
    assert code == 0 and doc["status"] == "open" and doc["due"] == "2026-11-25" and doc["law"] == "kora"
    assert doc["requester"] == "Jane Roe <script>x</script>"  # stored and shown exactly; rendering escapes it
    dec = {r["record_id"]: r for r in doc["records"]}
    assert dec[rid("c1")]["decision"] == "redact" and dec[rid("c4")]["decision"] == "withhold"
    assert dec[rid("c4")]["exemption"] == "K.S.A. 45-221(a)(10)" and dec[rid("p1")]["decision"] == "release"
    assert [r["text"] for r in dec[rid("c1")]["redactions"]] == ["(316) 555-0142", "Jane Doe"]
    assert {e["citation"]: e["uses"] for e in doc["exemptions"]} == {"K.S.A. 45-221(a)(30)": 2,
                                                                     "K.S.A. 45-221(a)(10)": 1}
    assert doc["counts"] == {"release": 3, "redact": 1, "withhold": 1}

    # suggestions: PII of released records only, not what is redacted already, nothing changed yet
    code, doc, _ = run(cfg, "suggest", req, "--json")
    got = {(s["record_id"], s["kind"], s["text"]) for s in doc["suggestions"]}
    assert got == {(rid("c1"), "email", "jane.doe@example.com"), (rid("c2"), "ssn", "123-45-6789"),
                   (rid("c2"), "dob", "04/12/1987"), (rid("c2"), "address", "1234 N Elm Street")}
    assert doc["accepted"] == 0 and {s["exemption"] for s in doc["suggestions"]} == {"K.S.A. 45-221(a)(30)"}
    code, doc, _ = run(cfg, "suggest", req, "--accept", "--json")
    assert code == 0 and doc["accepted"] == 4
    code, doc, _ = run(cfg, "suggest", req, "--json")
    assert doc["suggestions"] == []
    code, doc, _ = run(cfg, "show", req, "--json")
    assert {r["record_id"]: r["decision"] for r in doc["records"]}[rid("c2")] == "redact"

    code, doc, _ = run(cfg, "list", "--json")
    assert [(r["request_id"], r["records"], r["status"]) for r in doc["requests"]] == [
        ("KORA-2026-0002", 0, "open"), ("KORA-2026-0001", 5, "open")]
    code, doc, _ = run(cfg, "close", req, "--actor", "clerk", "--json")
    assert code == 0 and doc["status"] == "closed"
    code, doc, _ = run(cfg, "list", "--status", "closed", "--json")
    assert [r["request_id"] for r in doc["requests"]] == [req]
    code, _, err = run(cfg, "redact", req, "--record", rid("c3"), "--text", "Pat", "--exemption", "(a)(30)")
    assert code == 1 and "is closed" in err

    with archive.db.read() as s:
        rep = verify_chain(s)
        acts = [(a, sub, actor) for a, sub, actor in s.execute(
            select(AuditEntry.action, AuditEntry.subject, AuditEntry.actor).where(AuditEntry.action.like("request.%")))]
        details = " ".join(s.execute(select(AuditEntry.details).where(AuditEntry.action == "request.redact")).scalars())
    assert rep.ok
    assert [a for a, _, _ in acts].count("request.redact") == 6 and ("request.close", req, "clerk") in acts
    assert {a for a, _, _ in acts} >= {"request.create", "request.add", "request.withhold"}
    assert "555-0142" not in details and "jane.doe" not in details  # the log is no copy of what was redacted


def test_cpra_extension_cli(cfg: Path) -> None:
    code, doc, _ = run(cfg, "create", "--law", "cpra", "--requester", "R", "--received", "2026-11-20",
                       "--description", "d", "--json")
    assert doc == {"request_id": "CPRA-2026-0001", "law": "cpra", "received": "2026-11-20", "due": "2026-11-30"}
    code, _, err = run(cfg, "extend", "CPRA-2026-0001", "--reason", "voluminous", "--days", "15")
    assert code == 1 and "1 to 14 days" in err
    code, doc, _ = run(cfg, "extend", "CPRA-2026-0001", "--reason", "voluminous records", "--json")
    assert code == 0 and doc["extended_due"] == "2026-12-14" and doc["days"] == 14
    code, _, err = run(cfg, "extend", "CPRA-2026-0001", "--reason", "again", "--days", "3")
    assert code == 1 and "already extended" in err
    code, doc, _ = run(cfg, "show", "CPRA-2026-0001", "--json")
    assert doc["extended_due"] == "2026-12-14" and doc["extension_reason"] == "voluminous records"
    code, _, err = run(cfg, "redact", "CPRA-2026-0001", "--record", rid("c1"), "--text", "Jane", "--exemption", "7927.700")
    assert code == 1 and "not in request" in err


def test_request_ids_are_validated(cfg: Path) -> None:
    for args in (("show", "../../etc", "--json"), ("add", "../../etc", "--record", "x"),
                 ("create", "--law", "kora", "--requester", "R", "--received", "2026-11-20", "--description", "d",
                  "--id", "../../etc"), ("export", "a/b"), ("show", "x" * 65)):
        code, out, err = run(cfg, *args)
        assert code == 2 and out == "" and err.startswith("error: invalid request id") and err.count("\n") == 1, args
    code, doc, _ = run(cfg, "create", "--law", "kora", "--requester", "R", "--received", "2026-11-20",
                       "--description", "d", "--id", "APD_ORR-26-17", "--json")
    assert code == 0 and doc["request_id"] == "APD_ORR-26-17"
    code, _, err = run(cfg, "create", "--law", "kora", "--requester", "R", "--received", "2026-11-20",
                       "--description", "d", "--id", "APD_ORR-26-17")
    assert code == 1 and "already exists" in err
    code, _, err = run(cfg, "show", "KORA-2026-0099")
    assert code == 1 and "no request" in err
    code, _, err = run(cfg, "create", "--law", "kora", "--requester", "R", "--received", "20-11-2026",
                       "--description", "d")
    assert code == 2


def test_disposed_records_cannot_be_added(archive: Archive) -> None:
    fill(archive)
    req = create_request(archive, law="kora", requester="R", received=datetime(2026, 11, 20).date(),
                         description="d", actor="t")["request_id"]
    with archive.db.write() as s:
        s.execute(update(Record).where(Record.id == rid("c3")).values(status="disposed"))
    with pytest.raises(RequestError, match="disposed"):
        add_records(archive, req, [rid("c2"), rid("c3")], "t")
    with archive.db.read() as s:
        assert show_request(s, req)["records"] == []  # nothing of a refused add is kept


def test_packet_input_and_export_recording(archive: Archive, tmp_path: Path) -> None:
    from archiver.requests import redact, withhold

    fill(archive)
    req = create_request(archive, law="cpra", requester="R", received=datetime(2026, 11, 20).date(),
                         description="d", actor="t")["request_id"]
    add_records(archive, req, [rid(n) for n in TEXTS], "t")
    redact(archive, req, rid("c1"), "jane.doe@example.com", "7927.700", "t")
    withhold(archive, req, rid("c4"), "7923.600", "t")
    packet = build_packet(archive, req)
    by = {r.record_id: r for r in packet.records}
    assert packet.law_name == "California Public Records Act" and packet.due.isoformat() == "2026-11-30"
    assert packet.bates_start == 1 and packet.export_seq == 1 and packet.bates_prefix == "TPD"
    assert by[rid("c1")].decision == "redact" and by[rid("c1")].redactions[0].text == "jane.doe@example.com"
    assert by[rid("c1")].redactions[0].exemption.short_name.startswith("Personnel, medical")
    assert by[rid("c4")].decision == "withhold" and by[rid("c4")].withhold_exemption is not None
    assert by[rid("c4")].withhold_exemption.citation == "Cal. Gov. Code 7923.600"
    assert by[rid("c2")].thread_id == rid("p1") and by[rid("p1")].thread_id is None
    assert by[rid("p1")].versions[0].text == TEXTS["p1"][3] and by[rid("p1")].events[0].type == "captured"

    # The real packet builder: Bates numbers continue from the recorded exports unless --bates-start says.
    (archive.settings.base_dir / "templates").mkdir()
    assert template_dirs(archive.settings) == [archive.settings.base_dir / "templates"]
    docs = [export_request(archive, req, out_dir=None, bates_start=None, actor="clerk")]
    pages = docs[0]["pages"]
    assert docs[0]["bates_first"] == "TPD-000001" and docs[0]["bates_last"] == f"TPD-{pages:06d}" and pages >= 1
    assert Path(docs[0]["path"]).parent == archive.settings.storage.exports_dir
    docs.append(export_request(archive, req, out_dir=tmp_path / "usb", bates_start=None, actor="clerk"))
    assert docs[1]["bates_first"] == f"TPD-{pages + 1:06d}" and docs[1]["export_seq"] == 2  # continues
    docs.append(export_request(archive, req, out_dir=None, bates_start=101, actor="clerk"))
    assert docs[2]["bates_first"] == "TPD-000101" and docs[2]["export_seq"] == 3
    with archive.db.read() as s:
        shown = show_request(s, req)
        entries = list(s.execute(select(AuditEntry.details).where(AuditEntry.action == "request.export")).scalars())
        assert verify_chain(s).ok
    assert [e["seq"] for e in shown["exports"]] == [1, 2, 3] and shown["exports"][1]["path"].endswith("usb/" + req)
    assert shown["exports"][2]["path"] == str(archive.settings.storage.exports_dir / f"{req}-2")  # never overwrites
    assert len(entries) == 3 and all(d["manifest_sha256"] in e for d, e in zip(docs, entries, strict=True))


def test_pii_finders() -> None:
    def found(text: str) -> set[tuple[str, str]]:
        return {(f.kind, f.text) for f in find_pii(text)}

    assert found("call (316) 555-0142, +1 316 555 0199 or 316.555.0123") == {
        ("phone", "(316) 555-0142"), ("phone", "+1 316 555 0199"), ("phone", "316.555.0123")}
    assert found("mail me: j.o-e+tag@mail.example.org.") == {("email", "j.o-e+tag@mail.example.org")}
    assert found("ssn 123-45-6789 or 123 45 6789") == {("ssn", "123-45-6789"), ("ssn", "123 45 6789")}
    assert found("D.O.B. 4/12/1987; born on March 3, 1990; date of birth 1990-03-03") == {
        ("dob", "4/12/1987"), ("dob", "March 3, 1990"), ("dob", "1990-03-03")}
    assert found("she lives at 42 W. Oak Ave, Apt 4B and works at 900 Kansas Avenue.") == {
        ("address", "42 W. Oak Ave, Apt 4B"), ("address", "900 Kansas Avenue")}
    ordinary = ("Road closed from 5th Ave to 9th Street until 10/05/2026. 25 officers, case 2026-001234, "
                "order 900-12-3456, 3 hours, call 911. Main St. crash <script>alert(1)</script>")
    assert found(ordinary) == set()


def test_export_end_to_end(cfg: Path, archive: Archive) -> None:
    import bagit
    from pypdf import PdfReader

    run(cfg, "create", "--law", "kora", "--requester", "R", "--received", "2026-11-20", "--description", "d")
    run(cfg, "add", "KORA-2026-0001", "--query", "crash")
    run(cfg, "redact", "KORA-2026-0001", "--record", rid("c1"), "--text", "jane.doe@example.com", "--exemption", "(a)(30)")
    run(cfg, "withhold", "KORA-2026-0001", "--record", rid("c4"), "--exemption", "(a)(10)")
    code, doc, err = run(cfg, "export", "KORA-2026-0001", "--json")
    assert code == 0, err
    assert set(doc) >= {"request_id", "path", "bates_first", "bates_last", "pages", "released", "redacted", "withheld"}
    assert (doc["released"], doc["redacted"], doc["withheld"], doc["bates_first"]) == (3, 1, 1, "TPD-000001")
    bag = Path(doc["path"])
    assert bag.parent == archive.settings.storage.exports_dir and bagit.Bag(str(bag)).is_valid()
    pdf_text = "".join(p.extract_text() for p in PdfReader(bag / "data" / "packet.pdf").pages)
    assert "crash" in pdf_text and "jane.doe@example.com" not in pdf_text
    for f in bag.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert b"jane.doe@example.com" not in data and b"blue truck" not in data, f
    code, doc2, _ = run(cfg, "export", "KORA-2026-0001", "--json")
    assert code == 0 and doc2["path"] != doc["path"] and Path(doc["path"]).is_dir()  # never overwritten
    assert doc2["bates_first"] == f"TPD-{int(doc['bates_last'].rsplit('-', 1)[1]) + 1:06d}"
    with archive.db.read() as s:
        details = [json.loads(d) for d in s.execute(
            select(AuditEntry.details).where(AuditEntry.action == "request.export")).scalars()]
        assert verify_chain(s).ok
    assert [d["manifest_sha256"] for d in details] == [doc["manifest_sha256"], doc2["manifest_sha256"]]
