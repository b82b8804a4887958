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
