"""`archiver request ...`: open-records requests (KORA, CPRA) from receipt to packet."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from . import AppContext, emit_json, printable

pass_app = click.make_pass_decorator(AppContext)


def _actor(actor: str | None) -> str:
    from ..audit import default_actor

    return actor or default_actor()


def _today(app: AppContext) -> date:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(app.settings.agency.timezone)).date()


def _req_id(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    # Checked before anything opens: an id ends up in folder names and the audit log. The UsageError
    # (not click's BadParameter) keeps the message to the group's one line.
    from ..requests import validate_request_id

    return None if value is None else validate_request_id(value)


_ACTOR = click.option("--actor", metavar="NAME", help="Who does this, for the audit log (default: OS user).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def attach(group: click.Group) -> None:
    """Register this module's commands."""

    @group.group(name="request")
    def request() -> None:
        """Open-records requests (KORA, CPRA): deadlines, responsive records, redactions, packets.

        \b
        Example:
          archiver request create --law kora --requester "Jane Roe" --received 2026-11-20 \\
              --description "Comments on the Main St. crash posts, Oct 1-15"
          archiver request add KORA-2026-0001 --query 'crash created:[2026-10-01 TO 2026-10-15]'
          archiver request export KORA-2026-0001
        """

    @request.command(name="create")
    @click.option("--law", type=click.Choice(["kora", "cpra"], case_sensitive=False), default=None,
                  help="The law the request is made under (default: from agency.state, KS kora, CA cpra).")
    @click.option("--requester", required=True, help="Who asked (name, organisation, contact).")
    @click.option("--received", required=True, type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
                  help="The day the request was received (the deadline counts from it).")
    @click.option("--description", required=True, help="What was asked for, as the requester put it.")
    @click.option("--id", "request_id", callback=_req_id, metavar="ID",
                  help="Use this id instead of the next one (letters, digits, '-', '_').")
    @_ACTOR
    @_JSON
    @pass_app
    def create_cmd(app: AppContext, law: str | None, requester: str, received: datetime, description: str,
                   request_id: str | None, actor: str | None, as_json: bool) -> None:
        """Open a request and compute its due date from the law's deadline rule.

        The id is the next number for the law and year (KORA-2026-0007) unless --id gives one.

        \b
        Example:
          archiver request create --law kora --requester "Jane Roe, Andover Gazette" \\
              --received 2026-11-20 --description "Facebook comments on the Main St. crash, Oct 1-15"
        """
        from ..errors import UsageError
        from ..laws import default_law_for_state
        from ..requests import create_request

        law = (law or default_law_for_state(app.settings.agency.state) or "").lower()
        if not law:
            raise UsageError(f"--law is required: agency.state {app.settings.agency.state} has no default law")
        with app.archive() as arch:
            doc = create_request(arch, law=law, requester=requester, received=received.date(),
                                 description=description, actor=_actor(actor), request_id=request_id)
        if as_json:
            emit_json(doc)
        else:
            click.echo(f"{doc['request_id']}: {doc['law'].upper()} request received {doc['received']}, "
                       f"due {doc['due']}")

    @request.command(name="add")
    @click.argument("request_id", callback=_req_id)
    @click.option("--query", "query", metavar="Q", help="Add every record this search query matches.")
    @click.option("--record", "records", multiple=True, metavar="ID", help="Add this record (repeatable).")
    @_ACTOR
    @_JSON
    @pass_app
    def add_cmd(app: AppContext, request_id: str, query: str | None, records: tuple[str, ...],
                actor: str | None, as_json: bool) -> None:
        """Add responsive records to a request, by search query or by record id.

        Records are released whole until you redact or withhold them. Disposed records cannot be added.

        \b
        Example:
          archiver request add KORA-2026-0007 --query 'platform:facebook crash created:[2026-10-01 TO 2026-10-15]'
          archiver request add KORA-2026-0007 --record rec_0123456789abcdef0123
        """
        from ..errors import UsageError
        from ..requests import add_records, search_record_ids

        if bool(query) == bool(records):
            raise UsageError("give either --query Q or one or more --record ID")
        with app.archive() as arch:
            ids = search_record_ids(arch, query) if query else list(records)
            doc = add_records(arch, request_id, ids, _actor(actor))
        if as_json:
            emit_json(doc)
        else:
            click.echo(f"{request_id}: added {len(doc['records'])} records "
                       f"({len(doc['already'])} already in it, {doc['total']} in all)")
        for err in doc["blob_errors"]:
            click.echo(f"warning: blob legal-hold flag not set: {err}", err=True)

    @request.command(name="redact")
    @click.argument("request_id", callback=_req_id)
    @click.option("--record", "record_id", required=True, metavar="ID", help="The record to redact in.")
    @click.option("--text", required=True, metavar="EXACT", help="Exact text to remove (every occurrence).")
    @click.option("--exemption", required=True, metavar="CITE",
                  help="The law's exemption, e.g. 'K.S.A. 45-221(a)(30)' or '(a)(30)'; '7927.700' for CPRA.")
    @_ACTOR
    @_JSON
    @pass_app
    def redact_cmd(app: AppContext, request_id: str, record_id: str, text: str, exemption: str,
                   actor: str | None, as_json: bool) -> None:
        """Redact every occurrence of exact text in one record of the request, citing an exemption.

        The words are removed before the packet is rendered; a fixed-width label with the citation
        takes their place.

        \b
        Example:
          archiver request redact KORA-2026-0007 --record rec_0123456789abcdef0123 \\
              --text "316-555-0142" --exemption "(a)(30)"
        """
        from ..requests import redact

        with app.archive() as arch:
            doc = redact(arch, request_id, record_id, text, exemption, _actor(actor))
        if as_json:
            emit_json(doc)
        else:
            click.echo(f"{request_id}: {record_id} has {len(doc['redactions'])} redactions")

    @request.command(name="withhold")
    @click.argument("request_id", callback=_req_id)
    @click.option("--record", "record_id", required=True, metavar="ID", help="The record to withhold.")
    @click.option("--exemption", required=True, metavar="CITE", help="The law's exemption that allows it.")
    @_ACTOR
    @_JSON
    @pass_app
    def withhold_cmd(app: AppContext, request_id: str, record_id: str, exemption: str, actor: str | None,
                     as_json: bool) -> None:
        """Withhold one record of the request whole; it appears only in the exemption log.

        \b
        Example:
          archiver request withhold KORA-2026-0007 --record rec_0123456789abcdef0123 --exemption "(a)(10)"
        """
        from ..requests import withhold

        with app.archive() as arch:
            doc = withhold(arch, request_id, record_id, exemption, _actor(actor))
        if as_json:
            emit_json(doc)
        else:
            click.echo(f"{request_id}: {len(doc['withheld'])} records withheld")

    @request.command(name="extend")
    @click.argument("request_id", callback=_req_id)
    @click.option("--reason", required=True, help="The written reason (e.g. voluminous records).")
    @click.option("--days", type=click.IntRange(min=1), default=None,
                  help="Days to extend by (default: the most the law allows, 14 for CPRA).")
    @_ACTOR
    @_JSON
    @pass_app
    def extend_cmd(app: AppContext, request_id: str, reason: str, days: int | None, actor: str | None,
                   as_json: bool) -> None:
        """Extend the deadline once, where the request's law allows it (CPRA: up to 14 days).

        \b
        Example:
          archiver request extend CPRA-2026-0012 --days 14 \\
              --reason "The need to search for, collect and examine a voluminous amount of records"
        """
        from ..requests import extend

        with app.archive() as arch:
            doc = extend(arch, request_id, reason, days, _actor(actor))
        if as_json:
            emit_json(doc)
        else:
            click.echo(f"{request_id}: extended by {doc['days']} days to {doc['extended_due']} ({doc['citation']})")

    @request.command(name="close")
    @click.argument("request_id", callback=_req_id)
    @_ACTOR
    @_JSON
    @pass_app
    def close_cmd(app: AppContext, request_id: str, actor: str | None, as_json: bool) -> None:
        """Close a request once it is answered (its records are no longer held by it).

        Starts retention trigger request-closed: the records' disposition dates are recomputed
        (audited); on an Object Lock bucket their blobs' retention is extended and legal-hold flags
        are cleared unless a hold or another open request still covers them.

        \b
        Example:
          archiver request close KORA-2026-0007
        """
        from ..requests import close

        with app.archive() as arch:
            doc = close(arch, request_id, _actor(actor))
        if as_json:
            emit_json(doc)
        else:
            click.echo(f"{request_id}: closed; {len(doc['dates_changed'])} of its {doc['records']} records "
                       "have a new disposition date")
        for err in doc["blob_errors"]:
            click.echo(f"warning: blob lock not updated: {err}", err=True)

    @request.command(name="list")
    @click.option("--status", type=click.Choice(["open", "closed"]), default=None, help="Only these requests.")
    @_JSON
    @pass_app
    def list_cmd(app: AppContext, status: str | None, as_json: bool) -> None:
        """List requests, newest received first, with their due dates.

        \b
        Example:
          archiver request list --status open
        """
        from ..requests import list_requests

        with app.archive() as arch, arch.db.read() as s:
            rows = list_requests(s, status)
        if as_json:
            emit_json({"requests": rows})
            return
        for r in rows:
            due = r["extended_due"] or r["due"]
            click.echo(f"{r['request_id']:<20} {r['law']:<5} {r['status']:<7} received {r['received']} "
                       f"due {due}  {r['records']} records  {printable(r['requester'])}")

    @request.command(name="show")
    @click.argument("request_id", callback=_req_id)
    @_JSON
    @pass_app
    def show_cmd(app: AppContext, request_id: str, as_json: bool) -> None:
        """Show a request: deadlines, records with decisions, redactions, exemptions cited, exports.

        \b
        Example:
          archiver request show KORA-2026-0007 --json
        """
        from ..requests import show_request

        with app.archive() as arch, arch.db.read() as s:
            doc = show_request(s, request_id, today=_today(app))
        if as_json:
            emit_json(doc)
            return
        click.echo(f"{doc['request_id']}  {doc['law_name']}  {doc['status']}"
                   + ("  OVERDUE" if doc["overdue"] else ""))
        click.echo(f"  requester: {printable(doc['requester'])}")
        click.echo(f"  request:   {printable(doc['description'])}")
        click.echo(f"  received {doc['received']}, due {doc['due']} ({doc['deadline_citation']})"
                   + (f", extended to {doc['extended_due']}: {printable(doc['extension_reason'])}"
                      if doc["extended_due"] else ""))
        for r in doc["records"]:
            extra = f" {r['exemption']}" if r["decision"] == "withhold" else ""
            click.echo(f"  {r['record_id']}  {r['kind']:<7} {r['status']:<8} {r['decision']}{extra}  "
                       f"{printable(r['author'])}")
            for red in r["redactions"]:
                click.echo(f"      redact {printable(red['text'])!r} under {red['exemption']}")
        for e in doc["exports"]:
            click.echo(f"  export {e['seq']}: {e['path']} ({e['bates_first']}..{e['bates_last']}, {e['pages']} pages)")

    @request.command(name="suggest")
    @click.argument("request_id", callback=_req_id)
    @click.option("--accept", is_flag=True, help="Redact every suggestion now (audited like `request redact`).")
    @_ACTOR
    @_JSON
    @pass_app
    def suggest_cmd(app: AppContext, request_id: str, accept: bool, actor: str | None, as_json: bool) -> None:
        """Find likely personal information (phones, e-mail, SSN-like numbers, dates of birth, street
        addresses) in the request's records and propose redactions; nothing changes without --accept.

        \b
        Example:
          archiver request suggest KORA-2026-0007
          archiver request suggest KORA-2026-0007 --accept
        """
        from ..requests import suggest

        with app.archive() as arch:
            doc = suggest(arch, request_id, accept, _actor(actor))
        if as_json:
            emit_json(doc)
            return
        for sg in doc["suggestions"]:
            click.echo(f"{sg['record_id']}  {sg['kind']:<8} {printable(sg['text'])!r}  {sg['exemption']}")
        click.echo(f"{len(doc['suggestions'])} suggestions" + (f", {doc['accepted']} redactions added" if accept
                                                               else " (nothing redacted: use --accept)"))

    @request.command(name="export")
    @click.argument("request_id", callback=_req_id)
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Parent folder of the packet (default: storage.exports_dir).")
    @click.option("--bates-start", type=click.IntRange(min=1), default=None,
                  help="First Bates number (default: 1, or after the request's previous export).")
    @_ACTOR
    @_JSON
    @pass_app
    def export_cmd(app: AppContext, request_id: str, out_dir: Path | None, bates_start: int | None,
                   actor: str | None, as_json: bool) -> None:
        """Render the disclosure packet (a BagIt bag) of a request; earlier exports are never overwritten.

        \b
        Example:
          archiver request export KORA-2026-0007 --json
          archiver request export KORA-2026-0007 --out /media/usb --bates-start 101
        """
        from ..request_export import export_request

        with app.archive() as arch:
            doc = export_request(arch, request_id, out_dir=out_dir, bates_start=bates_start, actor=_actor(actor))
        if as_json:
            emit_json(doc)
        else:
            click.echo(f"{request_id}: packet {doc['path']}: {doc['pages']} pages, Bates {doc['bates_first']}-"
                       f"{doc['bates_last']}; {doc['released']} released, {doc['redacted']} redacted, "
                       f"{doc['withheld']} withheld")
