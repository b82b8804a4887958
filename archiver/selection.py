"""Choosing records for retention commands: explicit ids and/or a search query, checked to exist."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from .archive import Archive
from .db.models import Record
from .errors import NotFound, UsageError


def select_records(archive: Archive, ids: Sequence[str] = (), query: str | None = None) -> list[str]:
    """The records named by ids plus those a search query matches (the index is caught up first)."""
    if not ids and not query:
        raise UsageError("name the records: --record ID (repeatable) and/or --query QUERY")
    chosen = list(dict.fromkeys(ids))
    if query:
        # Imported here: the search package (Whoosh) is loaded only by commands that need it.
        from .search.indexer import catch_up
        from .search.searcher import search

        catch_up(archive)
        hits = search(archive, query, limit=None, snippets=False)["hits"]
        chosen += [h["record_id"] for h in hits if h["record_id"] not in chosen]
    with archive.db.read() as s:
        known = set()
        for i in range(0, len(chosen), 1000):
            known |= set(s.execute(select(Record.id).where(Record.id.in_(chosen[i:i + 1000]))).scalars())
    missing = [r for r in chosen if r not in known]
    if missing:
        raise NotFound(f"no record {missing[0]!r} in the archive"
                       + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if not chosen:
        raise NotFound(f"the query {query!r} matches no record")
    return chosen
