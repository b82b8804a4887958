"""The audit chain: append-only, each entry hashing its predecessor; verify names the first bad entry."""

from __future__ import annotations

from sqlalchemy import delete, update

from archiver.archive import Archive
from archiver.audit import AuditLog, verify_chain
from archiver.db.models import AuditEntry


def _append(archive: Archive, n: int) -> None:
    with archive.db.write() as s:
        log = AuditLog(s)
        for i in range(n):
            log.append("test.action", f"subject-{i}", {"i": i, "text": "<b>\u202e\x00"}, "tester", archive.clock.now())
        log.flush()


def test_chain_is_intact_across_transactions(archive: Archive) -> None:
    _append(archive, 3)
    _append(archive, 4)
    with archive.db.read() as s:
        rep = verify_chain(s)
    assert rep.ok and rep.entries == 7 and rep.first_bad_entry is None


def test_editing_one_row_is_detected_at_that_entry(archive: Archive) -> None:
    _append(archive, 6)
    with archive.db.write() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 4).values(actor="someone else"))
    with archive.db.read() as s:
        rep = verify_chain(s)
    assert not rep.ok and rep.first_bad_entry == 4


def test_rehashing_an_edited_row_breaks_the_next_link(archive: Archive) -> None:
    from archiver.audit import entry_hash

    _append(archive, 5)
    with archive.db.write() as s:
        e = s.get(AuditEntry, 2)
        e.details = '{"i":99}'
        e.entry_hash = entry_hash(e.seq, e.at, e.actor, e.action, e.subject, e.details, e.prev_hash)
    with archive.db.read() as s:
        rep = verify_chain(s)
    assert not rep.ok and rep.first_bad_entry == 3


def test_deleting_a_row_is_detected(archive: Archive) -> None:
    _append(archive, 5)
    with archive.db.write() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq == 3))
    with archive.db.read() as s:
        rep = verify_chain(s)
    assert not rep.ok and rep.first_bad_entry == 4


def test_entry_hash_is_the_hash_of_the_canonical_json_document() -> None:
    """entry_hash builds the canonical JSON directly for speed; it must equal the defined form exactly,
    for hostile text too (old entries are verified with the same function)."""
    import hashlib

    from archiver.audit import entry_hash
    from archiver.db.types import dumps

    def reference(seq: int, at: str, actor: str, action: str, subject: str | None, details: str, prev: str) -> str:
        doc = {"seq": seq, "at": at, "actor": actor, "action": action, "subject": subject,
               "details": details, "prev": prev}
        return hashlib.sha256(dumps(doc).encode("utf-8", "surrogatepass")).hexdigest()

    texts = ["", "plain", 'quote " and \\ backslash', "nul \x00 \x1f \x7f", "\u202e rtl \U0001f694 emoji",
             "lone \ud800 surrogate", "\ufdd0 marker", "line\nbreak\ttab", "x" * 5000]
    for i, t in enumerate(texts):
        for subject in (None, t, f"rec_{i}"):
            args = (i * 7919 + 1, "2026-01-01T00:00:00.000000Z", t or "archiver", f"act.{t}", subject,
                    '{"k":' + json_str(t) + "}", "0" * 64)
            assert entry_hash(*args) == reference(*args)
    assert entry_hash(2**40, "a", "b", "c", None, "{}", "f" * 64) == reference(2**40, "a", "b", "c", None, "{}", "f" * 64)


def json_str(value: str) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)
