"""Search commands: search (full text + fields over the derived index) and reindex (rebuild it).

Whoosh and the search package are imported inside the commands, so other commands do not pay for them.
"""

from __future__ import annotations

import sys
import time

import click

from . import AppContext, emit_json, printable

pass_app = click.make_pass_decorator(AppContext)


def _progress(label: str):  # type: ignore[no-untyped-def]
    """A progress line on stderr, only when stderr is a terminal (stdout may carry JSON)."""
    if not sys.stderr.isatty():
        return None
    started, last = time.monotonic(), [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < 0.2:
            return
        last[0] = now
        pct = 100.0 * done / total if total else 100.0
        rate = done / max(now - started, 1e-6)
        click.echo(f"\r{label}: {done}/{total} ({pct:.0f}%, {rate:.0f}/s)", err=True, nl=done >= total)

    return show


def attach(group: click.Group) -> None:
    """Register this module's commands."""

    @group.command()
    @click.argument("query")
    @click.option("--limit", type=click.IntRange(min=1), default=None,
                  help="At most this many hits (default 20; every match with --records-only).")
    @click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
                  help="Skip this many hits first (paging).")
    @click.option("--sort", type=click.Choice(["relevance", "newest", "oldest"]), default="relevance",
                  show_default=True, help="Order of the hits.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @click.option("--records-only", is_flag=True, help="Print only record ids, one per line (for piping).")
    @pass_app
    def search(app: AppContext, query: str, limit: int | None, offset: int, sort: str, as_json: bool,
               records_only: bool) -> None:
        """Search the archive: words, "phrases", AND/OR/NOT, prefix*, fields and dates.

        Fields: platform: account: kind: (post, comment, reply) author: status: (live, edited, hidden,
        removed) hashtag: mention: text: earlier: id: permalink:, and created: with a year, month, day
        or range in the agency's time zone. Bare words also find text a record had before an edit.
        Matched words are marked «like this» in snippets. The index is brought up to date first.

        \b
        Example:
          archiver search 'crash AND (snow OR ice) platform:facebook created:[2026-01-01 TO 2026-03-31]'
          archiver search 'status:removed author:"Jane Doe"' --sort newest --json
          archiver search 'kind:comment "road closed"' --records-only | xargs -n1 archiver show
        """
        from ..search.indexer import catch_up
        from ..search.searcher import search as run_search

        if as_json and records_only:
            raise click.UsageError("use either --json or --records-only, not both")
        if limit is None and not records_only:
            limit = 20
        with app.archive() as arch:
            catch_up(arch, progress=_progress("indexing"))
            doc = run_search(arch, query, limit=limit, offset=offset, sort=sort, snippets=not records_only)
        if records_only:
            for h in doc["hits"]:
                click.echo(h["record_id"])
        elif as_json:
            emit_json(doc)
        else:
            shown = f"{offset + 1}-{offset + len(doc['hits'])} of " if doc["hits"] else ""
            click.echo(f"{shown}{doc['total']} matching records")
            for h in doc["hits"]:
                click.echo(f"{h['record_id']}  {h['created_at'] or '-':<20} {h['account']:<16} {h['kind']:<7} "
                           f"{h['status']:<7} {printable(h['author'] or '-')}")
                click.echo(f"    {printable(h['snippet'])}")

    @group.command()
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def reindex(app: AppContext, as_json: bool) -> None:
        """Rebuild the search index from the archive database (the index is derived, never the record).

        Builds a new index beside the current one and swaps it in, so searches keep working meanwhile.

        \b
        Example:
          archiver reindex --json
        """
        from ..search.indexer import rebuild

        started = time.monotonic()
        with app.archive() as arch:
            n = rebuild(arch, progress=_progress("indexing"))
            where = arch.settings.storage.index_dir
        if as_json:
            emit_json({"indexed": n})
        else:
            click.echo(f"indexed {n} records into {where} in {time.monotonic() - started:.1f}s")
