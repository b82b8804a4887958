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
        """Run the scheduler over three simulated platforms while they change; show what was archived.

        A Facebook page, a Mastodon account and an alerts feed run as local servers (no network, no
        credentials); posts and comments are edited, hidden and deleted while harvests run every few
        seconds, and the demo ends with a summary and a verify of the new archive.

        \b
        Example:
          archiver demo --dir /tmp/demo
        """
        from ..demo import run_demo

        sys.exit(run_demo(Path(directory), say=click.echo))
