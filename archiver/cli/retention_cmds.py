"""Retention commands: schedules, assign, case-closed, recompute, report, dispose."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import click

from ..audit import default_actor
from ..errors import UsageError
from . import AppContext, emit_json

pass_app = click.make_pass_decorator(AppContext)


def parse_when(text: str, tz: str) -> datetime:
    """YYYY-MM-DD (midnight, agency time) or an ISO time (naive = agency time) -> aware UTC."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--date: {text!r} is not a date like 2026-03-31 or 2026-03-31T17:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(tz))
    return dt.astimezone(UTC)


def _print_groups(title: str, groups: list[dict[str, Any]], ids: bool) -> None:
    total = sum(g["count"] for g in groups)
    click.echo(f"{title}: {total}")
    for g in groups:
        click.echo(f"  {g['series']} ({g['action']}): {g['count']}  [{g['citation']}]")
        if ids:
            for r in g["records"]:
                click.echo(f"    {r['record_id']}  eligible since {r['disposition_date']}")


def _print_report(doc: dict[str, Any], ids: bool) -> None:
    click.echo(f"as of {doc['as_of']}")
    _print_groups("eligible for destruction", doc["eligible"], ids)
    _print_groups("eligible, needing a person (transfer or review)", doc["needs_person"], ids)
    due_held = [h for h in doc["held"] if h["due"]]
    click.echo(f"held: {len(doc['held'])} ({len(due_held)} of them otherwise eligible)")
    for h in doc["held"] if ids else due_held[:20]:
        why = ", ".join([f"hold {n}" for n in h["holds"]] + [f"request {r}" for r in h["requests"]])
        click.echo(f"  {h['record_id']}  {why}")
    for n in doc["next_eligible"]:
        click.echo(f"next eligible in {n['series']}: {n['date']} ({n['count']} records scheduled)")
    click.echo(f"without a date yet (permanent, or trigger not met): {doc['not_scheduled']}")
    click.echo(f"already disposed (tombstones): {doc['disposed']}")
    if doc["unknown_series"]:
        click.echo(f"warning: {len(doc['unknown_series'])} records name a series no schedule defines", err=True)
    if doc["stale_dates"]:
        click.echo(f"note: {doc['stale_dates']} stored disposition dates differ from the schedules "
                   "(run `archiver retention recompute`)", err=True)


def attach(group: click.Group) -> None:
    """Register the `retention` command group."""

    @group.group()
    def retention() -> None:
        """Retention schedules, series assignment, eligibility and disposition.

        \b
        Example:
          archiver retention schedules
          archiver retention report
          archiver retention dispose                      # dry run: what would go
          archiver retention dispose --approve --actor "J. Doe, Records Custodian"
        """

    @retention.command()
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def schedules(app: AppContext, as_json: bool) -> None:
        """List every retention series: shipped ones and the agency's files.

        \b
        Example:
          archiver retention schedules --json
        """
        from ..retention import load_schedules

        st = app.settings
        series = load_schedules(st.retention.schedules, st.base_dir)
        doc = {"series": [s.to_json() for s in series.values()]}
        if as_json:
            emit_json(doc)
            return
        for s in doc["series"]:
            origin = "shipped" if s["shipped"] else s["source"]
            click.echo(f"{s['id']}  [{s['jurisdiction']}] {s['retention']} from {s['trigger']}, then {s['action']}"
                       f"  ({origin})")
            click.echo(f"    {s['title']}; {s['citation']}")

    @retention.command()
    @click.argument("series")
    @click.option("--record", "records", multiple=True, metavar="ID", help="A record (repeatable).")
    @click.option("--query", metavar="QUERY", help="Every record this search matches.")
    @click.option("--actor", metavar="NAME", help="Who assigns (default: the OS user).")
    @click.option("--reason", metavar="TEXT", help="Why (kept in the audit log).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def assign(app: AppContext, series: str, records: tuple[str, ...], query: str | None, actor: str | None,
               reason: str | None, as_json: bool) -> None:
        """Give records a retention series other than their account's (audited per record).

        \b
        Example:
          archiver retention assign press-releases --query 'account:apd-alerts' --reason "news releases"
        """
        from ..assignments import assign_series
        from ..selection import select_records

        with app.archive() as arch:
            ids = select_records(arch, records, query)
            doc = assign_series(arch, series, ids, actor or default_actor(), reason)
        if as_json:
            emit_json(doc)
            return
        click.echo(f"{len(doc['records'])} records now in series {series}")

    @retention.command(name="case-closed")
    @click.option("--record", "records", multiple=True, metavar="ID", help="A record (repeatable).")
    @click.option("--query", metavar="QUERY", help="Every record this search matches.")
    @click.option("--date", "when", required=True, metavar="DATE", help="When the case closed (YYYY-MM-DD).")
    @click.option("--actor", metavar="NAME", help="Who records it (default: the OS user).")
    @click.option("--reason", metavar="TEXT", help="Case number or note (kept in the audit log).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def case_closed(app: AppContext, records: tuple[str, ...], query: str | None, when: str, actor: str | None,
                    reason: str | None, as_json: bool) -> None:
        """Record when the case records belong to closed (starts series with trigger case-closed).

        \b
        Example:
          archiver retention case-closed --record rec_0123456789abcdef0123 --date 2026-03-31 --reason "IA-26-014"
        """
        from ..assignments import set_case_closed
        from ..selection import select_records

        at = parse_when(when, app.settings.agency.timezone)
        with app.archive() as arch:
            ids = select_records(arch, records, query)
            doc = set_case_closed(arch, ids, at, actor or default_actor(), reason)
        if as_json:
            emit_json(doc)
            return
        click.echo(f"case closed {doc['case_closed_at']} recorded for {len(doc['records'])} records")

    @retention.command()
    @click.option("--actor", metavar="NAME", help="Who runs it (default: the OS user).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def recompute(app: AppContext, actor: str | None, as_json: bool) -> None:
        """Recompute every record's series and disposition date from the schedules (after editing them).

        \b
        Example:
          archiver retention recompute --actor "J. Doe" --json
        """
        from ..assignments import recompute as run

        with app.archive() as arch:
            doc = run(arch, actor or default_actor())
        if as_json:
            emit_json(doc)
            return
        click.echo(f"checked {doc['checked']} records, {doc['changed']} dates changed")

    @retention.command()
    @click.option("--ids", is_flag=True, help="List every record id (text output).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def report(app: AppContext, ids: bool, as_json: bool) -> None:
        """Eligible records by series, held records and next eligible dates (changes nothing).

        \b
        Example:
          archiver retention report --json
        """
        from ..disposition import report as run

        with app.archive() as arch:
            doc = run(arch)
        if as_json:
            emit_json(doc)
            return
        _print_report(doc, ids)

    @retention.command()
    @click.option("--approve", is_flag=True, help="Really destroy (without it: a dry run that changes nothing).")
    @click.option("--actor", metavar="NAME", help="Who approves (required with --approve; on the certificate).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def dispose(app: AppContext, approve: bool, actor: str | None, as_json: bool) -> None:
        """Destroy eligible, unheld records' content, keep tombstones, write a certificate of destruction.

        Without --approve, shows exactly what would be destroyed. Never destroys records under a legal
        hold, in an open request, not yet eligible, or whose series' action is transfer or review.

        \b
        Example:
          archiver retention dispose
          archiver retention dispose --approve --actor "J. Doe, Records Custodian" --json
        """
        from ..disposition import dispose as run

        with app.archive() as arch:
            doc = run(arch, approve=approve, actor=actor)
        for rid in doc.get("kept_store_legal_hold", []):
            click.echo(f"warning: {rid} kept: the blob store still has its content under legal hold, though "
                       "the database shows no hold", err=True)
        if as_json:
            emit_json(doc)
            return
        if not approve:
            click.echo("DRY RUN: nothing is changed. These records would be destroyed:")
            for r in doc["would_destroy"]:
                click.echo(f"  {r['record_id']}  {r['series']}  {r['trigger']} {r['trigger_date']}  "
                           f"eligible since {r['disposition_date']}")
            click.echo(f"{len(doc['would_destroy'])} records, {len(doc['blobs_to_destroy'])} blobs "
                       f"({len(doc['blobs_kept_shared'])} shared blobs kept)")
            click.echo("run again with --approve --actor NAME to destroy them")
            return
        if doc["certificate"] is None:
            click.echo("nothing to destroy")
            return
        click.echo(f"destroyed {len(doc['disposed'])} records ({doc['blobs_destroyed']} blobs)")
        click.echo(f"certificate of destruction: {doc['certificate']['path']}")
        for f in doc.get("blobs_failed", []):
            click.echo(f"warning: blob {f['sha256']} not destroyed: {f['error']}", err=True)
