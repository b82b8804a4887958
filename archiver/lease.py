"""Per-account harvest lease: at most one harvest of an account at a time, across processes and hosts.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection kept open for the
whole harvest; the server drops it when that connection ends, so a killed harvest never leaves it
behind. SQLite: an exclusive non-blocking ``flock`` on ``<db>.lock-<account>`` beside the database file,
which the kernel drops when the process ends. Either way a second harvest is refused at once
(AccountBusy) instead of waiting, and its message says who holds the lease.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import threading
from contextlib import suppress
from typing import Any

from sqlalchemy import text

from .db.engine import Database
from .errors import AccountBusy

_LOCAL = threading.Lock()
_LOCAL_HELD: set[str] = set()  # accounts leased in this process on a database without a file (in-memory)


def holder_tag() -> str:
    """Who we are, as the busy message of another process shows it."""
    return f"host {socket.gethostname()}, pid {os.getpid()}"


def advisory_key(scope: str, account: str) -> int:
    """A signed 64-bit advisory-lock key for an account within one database and schema."""
    digest = hashlib.sha256(f"archiver-harvest-lease\0{scope}\0{account}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _busy(account: str, holder: str | None) -> AccountBusy:
    who = f" ({holder})" if holder else ""
    return AccountBusy(f"account {account} is busy: another harvest is running{who}; "
                       "this one did nothing, try again when that one has finished")


class AccountLease:
    """An exclusive lease on one account's harvests; release() (or the process ending) frees it."""

    def __init__(self, db: Database, account: str):
        self.db, self.account = db, account
        self._conn: Any = None
        self._fd: int | None = None
        self._local = False
        if db.dialect == "postgresql":
            self._acquire_pg()
        elif db.sqlite_path is not None:
            self._acquire_file(db.sqlite_path.with_name(f"{db.sqlite_path.name}.lock-{account}"))
        else:
            with _LOCAL:
                if account in _LOCAL_HELD:
                    raise _busy(account, holder_tag())
                _LOCAL_HELD.add(account)
            self._local = True

    def _acquire_pg(self) -> None:
        conn = self.db.engine.connect()
        try:
            scope = conn.execute(text("SELECT current_database() || '.' || current_schema()")).scalar_one()
            key = advisory_key(str(scope), self.account)
            # Tell whoever finds the lease taken who holds it (pg_stat_activity shows application_name).
            conn.execute(text("SELECT set_config('application_name', :tag, false)"),
                         {"tag": f"archiver harvest ({holder_tag()})"[:63]})
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one()
            conn.commit()  # end the transaction; the session-level lock stays until the connection ends
            if not got:
                holder = _pg_holder(conn, key)
                raise _busy(self.account, holder)
        except BaseException:
            conn.invalidate()  # never return a connection that may still hold the lock to the pool
            conn.close()
            raise
        self._conn, self._key = conn, key

    def _acquire_file(self, path: os.PathLike[str]) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or None
            os.close(fd)
            raise _busy(self.account, holder) from None
        except BaseException:
            os.close(fd)
            raise
        # The file is never deleted (unlinking a lock file races with the next locker); its content
        # only names the current holder for messages.
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_tag().encode() + b"\n", 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lease up (idempotent)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                conn.execute(text("RESET application_name"))  # the connection goes back to the pool
                conn.commit()
                conn.close()
            except Exception:  # noqa: BLE001 - the lock dies with the connection anyway
                with suppress(Exception):
                    conn.invalidate()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor drops the flock
        if self._local:
            with _LOCAL:
                _LOCAL_HELD.discard(self.account)
            self._local = False

    def __enter__(self) -> AccountLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _pg_holder(conn: Any, key: int) -> str | None:
    """The holder's tag from pg_stat_activity (None when it cannot be seen)."""
    classid, objid = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    try:
        name = conn.execute(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :c AND l.objid::bigint = :o "
            "AND l.objsubid = 1 LIMIT 1"), {"c": classid, "o": objid}).scalar()
        conn.commit()
    except Exception:  # noqa: BLE001 - the message is a courtesy; busy is busy
        return None
    if isinstance(name, str) and name.startswith("archiver harvest (") and name.endswith(")"):
        return name[len("archiver harvest ("):-1]
    return None
