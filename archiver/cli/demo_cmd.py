"""`archiver demo`: see the archiver work on a simulated platform, no network needed."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def attach(group: click.Group) -> None:
    """Register the demo command."""

    @group.command()
    @click.option("--dir", "directory", default="demo-archive", show_default=True, type=click.Path(),
                  help="Where to build the demo archive (re-created on each run).")
    def demo(directory: str) -> None:
        """Harvest a simulated police Facebook page twice and show edits, hides and removals.

        \b
        Example:
          archiver demo --dir /tmp/demo
        """
        from ..demo import run_demo

        sys.exit(run_demo(Path(directory), say=click.echo))
