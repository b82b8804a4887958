"""Legal hold commands: hold create, list, show, release."""

from __future__ import annotations

from typing import Any

import click

from ..audit import default_actor
from . import AppContext, emit_json

pass_app = click.make_pass_decorator(AppContext)


def _print_hold(doc: dict[str, Any]) -> None:
    state = "active" if doc["active"] else f"released {doc['released_at']} by {doc['released_by']}"
    count = doc.get("record_count", doc["records"])
    click.echo(f"{doc['hold']}  ({state})  {count} records  matter: {doc['matter']}")
    click.echo(f"  placed {doc['created_at']} by {doc['created_by']}" + (f"  query: {doc['query']}" if doc["query"] else ""))


def _hold_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # Checked before a --query runs the search; the UsageError keeps the message to one line.
    from ..holds import validate_hold_name

    return validate_hold_name(value)


def attach(group: click.Group) -> None:
    """Register the `hold` command group."""

    @group.group()
    def hold() -> None:
        """Legal holds: freeze disposition of records for litigation, claims or investigations.

        Records in an open records request are held implicitly until the request is closed.

        \b
        Example:
          archiver hold create smith-v-city --query 'author:"Pat Smith"' --matter "Smith v. City, 26-CV-114"
          archiver hold release smith-v-city --actor "J. Doe, Records Custodian"
        """

    @hold.command(name="create")
    @click.argument("name", callback=_hold_name)
    @click.option("--record", "records", multiple=True, metavar="ID", help="A record to hold (repeatable).")
    @click.option("--query", metavar="QUERY", help="Hold every record this search matches.")
    @click.option("--matter", required=True, metavar="TEXT", help="What the hold is for (case, claim, request).")
    @click.option("--actor", metavar="NAME", help="Who places the hold (default: the OS user).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def create(app: AppContext, name: str, records: tuple[str, ...], query: str | None, matter: str,
               actor: str | None, as_json: bool) -> None:
        """Place a legal hold on records (by id and/or search); audited per record.

        \b
        Example:
          archiver hold create smith-v-city --record rec_0123456789abcdef0123 --matter "Smith v. City" --json
        """
        from ..holds import create_hold
        from ..selection import select_records

        with app.archive() as arch:
            ids = select_records(arch, records, query)
            doc = create_hold(arch, name, ids, matter, actor or default_actor(), query=query)
        if as_json:
            emit_json(doc)
            return
        click.echo(f"hold {doc['hold']} placed on {len(doc['records'])} records")
        for err in doc["blob_errors"]:
            click.echo(f"warning: blob legal-hold flag not set: {err}", err=True)

    @hold.command(name="list")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def list_cmd(app: AppContext, as_json: bool) -> None:
        """List every hold, active and released.

        \b
        Example:
          archiver hold list --json
        """
        from ..holds import list_holds

        with app.archive() as arch:
            doc = list_holds(arch)
        if as_json:
            emit_json(doc)
            return
        if not doc["holds"]:
            click.echo("no holds")
        for h in doc["holds"]:
            _print_hold(h)

    @hold.command(name="show")
    @click.argument("name")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def show(app: AppContext, name: str, as_json: bool) -> None:
        """Show one hold and the records it covers.

        \b
        Example:
          archiver hold show smith-v-city --json
        """
        from ..holds import show_hold

        with app.archive() as arch:
            doc = show_hold(arch, name)
        if as_json:
            emit_json(doc)
            return
        _print_hold(doc)
        for rid in doc["records"]:
            click.echo(f"  {rid}")

    @hold.command(name="release")
    @click.argument("name")
    @click.option("--actor", metavar="NAME", help="Who releases the hold (default: the OS user).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def release(app: AppContext, name: str, actor: str | None, as_json: bool) -> None:
        """Release a hold; its records follow their retention schedules again (unless held otherwise).

        \b
        Example:
          archiver hold release smith-v-city --actor "J. Doe, Records Custodian" --json
        """
        from ..holds import release_hold

        with app.archive() as arch:
            doc = release_hold(arch, name, actor or default_actor())
        if as_json:
            emit_json(doc)
            return
        click.echo(f"hold {doc['hold']} released ({len(doc['records'])} records)")
        for err in doc["blob_errors"]:
            click.echo(f"warning: blob legal-hold flag not cleared: {err}", err=True)
