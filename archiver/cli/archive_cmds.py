"""Commands over the archive itself: init, harvest, list, show, verify, connectors."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..records import KINDS, STATUSES, list_records, show_record
from . import AppContext, emit_json, fail

pass_app = click.make_pass_decorator(AppContext)


def _progress(label: str):  # type: ignore[no-untyped-def]
    """A progress printer on stderr when it is a terminal (stdout may carry JSON)."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        click.echo(f"\r{label}: {done}/{total}", err=True, nl=done >= total)

    return show


def attach(group: click.Group) -> None:
    """Register this module's commands."""

    @group.command()
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def init(app: AppContext, as_json: bool) -> None:
        """Create the data directories and the database schema (or upgrade it).

        \b
        Example:
          archiver --config archiver.toml init
        """
        with app.archive(check_schema=False) as arch:
            rev = arch.init()
            st = arch.settings.storage
            doc = {"database_url": _safe_url(st.database_url), "blobs": arch.blobs.location,
                   "index_dir": str(st.index_dir), "exports_dir": str(st.exports_dir), "schema": rev,
                   "blob_store": arch.blob_store_note}
        if as_json:
            emit_json(doc)
        else:
            click.echo(f"archive ready: database {doc['database_url']} (schema {rev}), blobs {doc['blobs']}")
            if arch.blob_store_note:
                click.echo(arch.blob_store_note)

    @group.command()
    @click.option("--account", "accounts", multiple=True, metavar="NAME", help="Only this account (repeatable).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def harvest(app: AppContext, accounts: tuple[str, ...], as_json: bool) -> None:
        """Harvest each configured (or named) account once, now.

        Exit status 1 if any account's run failed (partial runs exit 0; their error says what was
        incomplete).

        \b
        Example:
          archiver harvest --account apd-facebook --json
        """
        from ..harvest import harvest_account  # keeps the harvest machinery out of other commands' start-up

        settings = app.settings
        targets = [settings.account(n) for n in accounts] if accounts else [a for a in settings.accounts if a.enabled]
        if not targets:
            fail("no accounts to harvest: add [[accounts]] to the config file", 2)
        results = []
        with app.archive() as arch:
            for acc in targets:
                if not as_json:
                    click.echo(f"harvesting {acc.name} ({acc.connector}) ...", err=True)
                r = harvest_account(arch, acc)
                results.append(r)
                if not as_json:
                    ev = ", ".join(f"{k} {v}" for k, v in r.events.items() if v) or "no changes"
                    line = (f"{r.account}: {r.status}: {r.new_records} new records, {r.new_versions} new versions, "
                            f"{ev} ({r.pages} pages, {r.duration_s:.1f}s)")
                    click.echo(line)
                    if r.error:
                        click.echo(f"  {r.account}: {r.error}", err=True)
        if as_json:
            emit_json({"runs": [r.to_json() for r in results]})
        if any(r.status == "failed" for r in results):
            sys.exit(1)

    @group.command(name="list")
    @click.option("--account", help="Only records of this account.")
    @click.option("--kind", type=click.Choice(KINDS), help="post, comment or reply.")
    @click.option("--status", type=click.Choice(STATUSES), help="live, edited, hidden, removed or disposed.")
    @click.option("--limit", type=click.IntRange(min=1), help="At most this many rows.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def list_cmd(app: AppContext, account: str | None, kind: str | None, status: str | None,
                 limit: int | None, as_json: bool) -> None:
        """List archived records, one row per record.

        \b
        Example:
          archiver list --account apd-facebook --status removed
        """
        with app.archive() as arch, arch.db.read() as s:
            rows = list_records(s, account=account, kind=kind, status=status, limit=limit)
            if as_json:
                emit_json({"records": list(rows)})
                return
            for r in rows:
                click.echo(f"{r['record_id']}  {r['account']:<16} {r['kind']:<7} {r['status']:<8} "
                           f"v{r['versions']}  {r['created_at'] or '-'}  {r['native_id']}")

    @group.command()
    @click.argument("record_id")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def show(app: AppContext, record_id: str, as_json: bool) -> None:
        """Show a record with all its versions and events.

        \b
        Example:
          archiver show rec_0123456789abcdef0123 --json
        """
        with app.archive() as arch, arch.db.read() as s:
            doc = show_record(s, record_id)
        if as_json:
            emit_json(doc)
            return
        click.echo(f"{doc['record_id']}  {doc['platform']} {doc['account']} {doc['kind']} {doc['native_id']}")
        gone = "(destroyed)" if doc["status"] == "disposed" else "(unknown)"
        click.echo(f"  author: {doc['author'] or gone}  created: {doc['created_at'] or '(unknown)'}  "
                   f"status: {doc['status']}")
        click.echo(f"  permalink: {doc['permalink'] or gone}")
        for v in doc["versions"]:
            click.echo(f"  version {v['seq']} captured {v['captured_at']} sha256 {v['sha256']}")
            if doc["status"] == "disposed":
                click.echo("    (content destroyed at disposition; the hash above is what was kept)")
            else:
                click.echo("    " + repr(v["text"]))
        for e in doc["events"]:
            click.echo(f"  event {e['type']} at {e['at']}")

    @group.command()
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def verify(app: AppContext, as_json: bool) -> None:
        """Re-hash every blob and recompute the audit chain; exit 1 and name what is bad.

        \b
        Example:
          archiver verify --json
        """
        with app.archive() as arch:
            from ..verify import verify_archive  # loads the capture machinery

            rep = verify_archive(arch, progress=_progress("verifying blobs"))
        if as_json:
            emit_json(rep.to_json())
        else:
            click.echo(f"blobs checked: {rep.blobs_checked}, bad: {len(rep.blobs_bad)}")
            for b in rep.blobs_bad:
                click.echo(f"  BAD {b['problem']}: {b['sha256']} ({b['kind']})")
            click.echo(f"audit entries: {rep.audit_entries}, chain "
                       + ("intact" if rep.audit_ok else f"BROKEN at entry {rep.first_bad_entry}: {rep.audit_problem}"))
        if not rep.ok:
            if not as_json:
                click.echo("error: the archive failed verification", err=True)
            sys.exit(1)

    @group.command()
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def connectors(app: AppContext, as_json: bool) -> None:
        """List installed connectors (built-in and third-party) and their config keys.

        \b
        Example:
          archiver connectors --json
        """
        reg = app.registry
        doc: dict[str, list[dict[str, Any]]] = {"connectors": [
            {"name": n, "origin": reg.origins.get(n), "config_keys": dict(c.config_keys),
             "required": list(c.required_keys), "secrets": list(c.secret_keys)}
            for n, c in sorted(reg.connectors.items())],
            "failed": [{"name": n, "error": e} for n, e in sorted(reg.errors.items())]}
        if as_json:
            emit_json(doc)
            return
        for c in doc["connectors"]:
            click.echo(f"{c['name']}  ({c['origin']})")
            for k, d in c["config_keys"].items():
                click.echo(f"    {k}{' (required)' if k in c['required'] else ''}: {d}")
        for f in doc["failed"]:
            click.echo(f"{f['name']}  FAILED TO LOAD: {f['error']}", err=True)


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url
