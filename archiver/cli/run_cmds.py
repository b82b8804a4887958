"""`archiver run` (the scheduler in the foreground) and `archiver status`."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

import click

from ..config import load_settings
from . import AppContext, emit_json

pass_app = click.make_pass_decorator(AppContext)
log = logging.getLogger("archiver.run")


def attach(group: click.Group) -> None:
    """Register this module's commands."""

    @group.command()
    @click.option("--for", "duration", type=float, default=None, metavar="SECONDS",
                  help="Stop by itself after this many seconds (for trials and tests).")
    @pass_app
    def run(app: AppContext, duration: float | None) -> None:
        """Run the scheduler in the foreground: harvest every account on its schedule until stopped.

        SIGTERM or Ctrl-C stops it cleanly: running harvests finish the page they are on and commit.
        A second signal exits at once (the next start resumes cleanly). SIGHUP re-reads the config
        file and adds, changes or removes accounts' jobs. Next-run times are kept in the database.

        \b
        Example:
          archiver --config /etc/archiver/archiver.toml run
        """
        from ..scheduler import Runner

        if logging.getLogger().level > logging.INFO:
            logging.getLogger().setLevel(logging.INFO)
        settings = app.settings
        runner = Runner(lambda: load_settings(app.config, overrides=app.overrides,
                                              connector_keys=app.registry.key_specs()),
                        registry=app.registry)
        stop, hup, signals = threading.Event(), threading.Event(), [0]

        def on_stop(signum: int, _frame: Any) -> None:
            signals[0] += 1
            if signals[0] > 1:
                os._exit(128 + signum)
            log.info("signal %s: finishing current pages, then stopping (again to exit at once)",
                     signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, lambda *_: hup.set())
        runner.start()
        log.info("archiver running: %d account(s) from %s", sum(a.enabled for a in settings.accounts),
                 settings.config_path)
        waited = 0.0
        while not stop.wait(0.5):
            waited += 0.5
            if hup.is_set():
                hup.clear()
                try:
                    runner.reload()
                    log.info("config reloaded")
                except Exception as exc:  # noqa: BLE001 - a bad edit must not stop a running archiver
                    log.error("config not reloaded, keeping the old one: %s", exc)
            if duration is not None and waited >= duration:
                break
        runner.stop(wait=True)
        log.info("archiver stopped")

    @group.command()
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @pass_app
    def status(app: AppContext, as_json: bool) -> None:
        """Each account: last run and its outcome, next run, records archived, failures in a row.

        \b
        Example:
          archiver status --json
        """
        from ..scheduler import account_status

        with app.archive() as arch:
            rows = account_status(arch)
        if as_json:
            emit_json({"accounts": rows})
            return
        for r in rows:
            last = r["last_run"]
            lr = "never" if last is None else f"{last['status']} at {last['finished_at'] or last['started_at']}"
            backoff = f", BACKING OFF after {r['consecutive_failures']} failures" if r["backing_off"] else ""
            click.echo(f"{r['account']:<20} {r['connector']:<9} {r['records']:>7} records  last: {lr}  "
                       f"next: {r['next_run'] or 'not scheduled'}{backoff}")
            if last and last["error"]:
                click.echo(f"    {last['error']}")
