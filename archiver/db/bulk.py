"""Multi-row INSERTs for the capture hot path, without SQLAlchemy's per-row statement machinery.

Values go through the columns' own bind processors (the very functions SQLAlchemy runs for an ORM or
Core insert: ExactText's NUL/surrogate encoding, UTCDateTime's conversion to naive UTC and the dialect's
own date format), so what reaches the database is exactly what ``table.insert()`` would have sent. A
value that is the same in every row of a batch (the page's capture time) can be converted once with
``bind_value`` and passed as is. The rows then go to the driver's ``executemany`` in one call, inside
the caller's session transaction.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

_Processor = Callable[[Any], Any] | None


class BulkInsert:
    """``INSERT INTO table (columns) VALUES (...)`` for many rows given as tuples in column order."""

    def __init__(self, dialect: Dialect, table: Table, columns: Sequence[str], *, ignore_conflict_on: str | None = None,
                 clear_on_conflict: str | None = None):
        self.dialect = dialect
        self.columns = tuple(columns)
        cols = [table.c[name] for name in self.columns]
        self._procs: list[_Processor] = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in cols]
        self._needs = [i for i, p in enumerate(self._procs) if p is not None]
        q = dialect.identifier_preparer
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        if dialect.paramstyle not in ("qmark", "format", "pyformat"):
            raise NotImplementedError(f"bulk insert: paramstyle {dialect.paramstyle} is not supported")
        self.sql = (f"INSERT INTO {q.format_table(table)} ({', '.join(q.quote(c.name) for c in cols)}) "
                    f"VALUES ({', '.join([mark] * len(cols))})")
        if ignore_conflict_on is not None:
            # The same clause on SQLite (3.24+) and PostgreSQL: write-once rows such as blobs.
            self.sql += f" ON CONFLICT ({q.quote(table.c[ignore_conflict_on].name)}) DO "
            if clear_on_conflict is None:
                self.sql += "NOTHING"
            else:
                # The existing row is kept, except that this column goes back to NULL (a blob stored again
                # after it was destroyed is no longer destroyed); rows where it is NULL are left untouched.
                col = q.quote(table.c[clear_on_conflict].name)
                self.sql += f"UPDATE SET {col} = NULL WHERE {q.format_table(table)}.{col} IS NOT NULL"

    def bind_value(self, column: str, value: Any) -> Any:
        """One value converted for ``column`` as its bind processor would (for values repeated per row)."""
        proc = self._procs[self.columns.index(column)]
        return value if proc is None else proc(value)

    def processed(self, rows: Sequence[Sequence[Any]], *, raw: Sequence[str] = ()) -> list[tuple[Any, ...]]:
        """The rows with every value converted, except the columns named in ``raw`` (already converted)."""
        skip = {self.columns.index(c) for c in raw}
        procs = [(i, self._procs[i]) for i in self._needs if i not in skip]
        if not procs:
            return [tuple(r) for r in rows]
        out = []
        for r in rows:
            row = list(r)
            for i, proc in procs:
                row[i] = proc(row[i])  # type: ignore[misc]
            out.append(tuple(row))
        return out

    def execute(self, session: Session, rows: Sequence[Sequence[Any]], *, raw: Sequence[str] = ()) -> None:
        """Insert the rows (converted here, except the ``raw`` columns) in the session's transaction."""
        if rows:
            session.connection().exec_driver_sql(self.sql, self.processed(rows, raw=raw))


_Key = tuple[str, tuple[str, ...], str | None, str | None]
_CACHE: weakref.WeakKeyDictionary[Dialect, dict[_Key, BulkInsert]] = weakref.WeakKeyDictionary()


def bulk_insert(session: Session, table: Table, columns: Sequence[str], *,
                ignore_conflict_on: str | None = None, clear_on_conflict: str | None = None) -> BulkInsert:
    """A BulkInsert for this session's dialect (built once per engine, table, columns)."""
    dialect = session.get_bind().dialect
    key = (table.fullname, tuple(columns), ignore_conflict_on, clear_on_conflict)
    cache = _CACHE.get(dialect)
    if cache is None:
        cache = _CACHE[dialect] = {}
    stmt = cache.get(key)
    if stmt is None:
        stmt = cache[key] = BulkInsert(dialect, table, columns, ignore_conflict_on=ignore_conflict_on,
                                       clear_on_conflict=clear_on_conflict)
    return stmt
