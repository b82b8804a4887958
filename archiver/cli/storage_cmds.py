"""Commands that move the archive between storage back ends: migrate-storage."""

from __future__ import annotations

import sys

import click

from . import AppContext, emit_json

pass_app = click.make_pass_decorator(AppContext)


def attach(group: click.Group) -> None:
    """Register this module's commands."""

    @group.command(name="migrate-storage")
    @click.option("--to-database-url", required=True, metavar="URL",
                  help="The new, empty metadata database (e.g. postgresql+psycopg://archiver@db/archive).")
    @click.option("--to-blobs", required=True, metavar="DIR|S3URL",
                  help="The new, empty blob store: a directory, or s3://bucket/prefix.")
    @click.option("--to-s3-endpoint-url", metavar="URL",
                  help="S3-compatible endpoint of the new store (default: storage.s3_endpoint_url).")
    @click.option("--actor", help="Who runs the migration, for the audit log (default: the OS user).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def migrate_storage_cmd(app: AppContext, to_database_url: str, to_blobs: str, to_s3_endpoint_url: str | None,
                            actor: str | None, as_json: bool) -> None:
        """Copy the whole archive to a new database and blob store, then verify the copy there.

        The destination must be empty. Blobs are copied (hash-checked on both sides), then every table
        in one transaction, then every blob hash and the audit chain are verified at the destination.
        Progress goes to stderr. Afterwards point storage.database_url and storage.blobs at the new
        locations. Exit status 1 if the destination did not verify clean.

        \b
        Example:
          archiver migrate-storage --to-database-url postgresql+psycopg://archiver@db/archive \\
              --to-blobs s3://apd-records/archive --json
        """
        from ..migrate import migrate_storage, resolve_blobs_target

        def say(msg: str) -> None:
            click.echo(msg, err=True)

        with app.archive() as source:
            summary = migrate_storage(source, to_database_url, resolve_blobs_target(to_blobs),
                                      to_s3_endpoint_url=to_s3_endpoint_url, progress=say, actor=actor)
        for err in summary.locks["errors"]:
            click.echo(f"warning: object lock not applied: {err}", err=True)
        if as_json:
            emit_json(summary.to_json())
        else:
            click.echo(f"copied {summary.records} records, {summary.blobs} blobs to {summary.database_url} and "
                       f"{summary.blobs_location}")
            click.echo(f"destination verified: {len(summary.blobs_bad)} bad blobs, audit chain "
                       + ("intact" if summary.audit_ok else "BROKEN") + f" ({summary.audit_entries} entries)")
        if not summary.ok:
            if not as_json:
                click.echo("error: the copy failed verification", err=True)
            sys.exit(1)
