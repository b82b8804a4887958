"""Small dialect-aware write helpers shared by the modules that change the archive."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, table: Table, rows: Sequence[dict[str, Any]], key: str) -> None:
    """Insert rows, skipping any whose ``key`` already exists (write-once tables such as blobs)."""
    if not rows:
        return
    name = session.get_bind().dialect.name
    mod: Any = postgresql if name == "postgresql" else sqlite
    stmt = mod.insert(table).on_conflict_do_nothing(index_elements=[key])
    session.execute(stmt, list(rows))
