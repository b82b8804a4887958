"""The `archiver` command line: a thin click layer over the library."""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Callable
from typing import Any, NoReturn

import click

from ..archive import Archive
from ..config import Settings, load_settings
from ..errors import ArchiverError
from ..plugins import ConnectorRegistry


class AppContext:
    """What every command gets: lazily loaded settings and archive."""

    def __init__(self, config: str | None, overrides: dict[str, Any]):
        self.config = config
        self.overrides = overrides
        self._registry: ConnectorRegistry | None = None
        self._settings: Settings | None = None

    @property
    def registry(self) -> ConnectorRegistry:
        """Installed connectors (discovered once)."""
        if self._registry is None:
            self._registry = ConnectorRegistry.discover()
        return self._registry

    @property
    def settings(self) -> Settings:
        """The validated settings."""
        if self._settings is None:
            self._settings = load_settings(self.config, overrides=self.overrides,
                                           connector_keys=self.registry.key_specs())
        return self._settings

    def archive(self, check_schema: bool = True) -> Archive:
        """Open the archive named by the settings."""
        return Archive.open(self.settings, check_schema=check_schema, registry=self.registry)


def emit_json(doc: Any) -> None:
    """Print one JSON document on stdout (the --json contract)."""
    click.echo(json.dumps(doc, ensure_ascii=False, indent=2, default=str))


def printable(text: str | None) -> str:
    """Record text for a terminal: control and bidi-override characters shown as escapes (text is data)."""
    return "".join(c if unicodedata.category(c)[0] != "C" else f"\\u{ord(c):04x}" for c in (text or ""))


def fail(message: str, code: int = 1) -> NoReturn:
    """One-line error on stderr and the exit status."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class _Group(click.Group):
    """Turns ArchiverError into a one-line message and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ArchiverError as exc:
            fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", metavar="PATH", envvar="ARCHIVER_CONFIG",
              help="Config file (default ./archiver.toml, or $ARCHIVER_CONFIG).")
@click.option("--database-url", metavar="URL", help="Override storage.database_url.")
@click.option("--blobs", metavar="DIR|S3URL", help="Override storage.blobs.")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Log line format on stderr.")
@click.version_option(package_name="archiver")
@click.pass_context
def main(ctx: click.Context, config: str | None, database_url: str | None, blobs: str | None,
         verbose: int, log_format: str) -> None:
    """Archive an agency's social media as public records, and answer open-records requests.

    \b
    Example:
      archiver --config archiver.toml init
      archiver harvest --json
      archiver list --status removed
    """
    from ..logs import setup_logging

    setup_logging(verbose, log_format)
    ctx.obj = AppContext(config, {"storage.database_url": database_url, "storage.blobs": blobs})


def register(*modules: Callable[[click.Group], None]) -> None:
    """Attach each command module's commands to the group."""
    for mod in modules:
        mod(main)


from . import (  # noqa: E402
    archive_cmds,
    demo_cmd,
    hold_cmds,
    request_cmds,
    retention_cmds,
    run_cmds,
    search_cmds,
    storage_cmds,
)

register(archive_cmds.attach, search_cmds.attach, run_cmds.attach, demo_cmd.attach, request_cmds.attach,
         retention_cmds.attach, hold_cmds.attach, storage_cmds.attach)
