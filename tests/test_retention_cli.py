"""The retention and hold commands: JSON documents, audit actors, help with examples, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from archiver.archive import Archive
from archiver.cli import main
from archiver.db.models import AuditEntry
from archiver.search.searcher import close_all
from tests.retention_support import (
    ACCOUNT,
    harvest,
    open_archive,
    retention_page,  # noqa: F401 - the fixture "fb"
    rid,
    seed,
)


@pytest.fixture
def setup(tmp_path, db_url, clock, registry, fb) -> Iterator[tuple[Archive, Path, dict[str, str]]]:
    arch = open_archive(tmp_path, db_url, clock, registry, fb)
    native = seed(fb, clock)
    harvest(arch)
    cfg = tmp_path / "archiver.toml"
    cfg.write_text(f"""
[agency]
name = "Test Police Department"
[storage]
database_url = "{db_url}"
blobs = "data/blobs"
index_dir = "data/index"
exports_dir = "data/exports"
[retention]
schedules = ["schedules/*.yaml"]
[[accounts]]
name = "{ACCOUNT}"
connector = "facebook"
page_id = "1000"
access_token = "$env:RET_FB_TOKEN"
api_base = "{fb.api_base}"
""", encoding="utf-8")
    yield arch, cfg, {k: rid(v) for k, v in native.items()}
    close_all()
    arch.close()


def run(cfg: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, ["--config", str(cfg), *args], catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def test_hold_commands(setup) -> None:
    arch, cfg, ids = setup
    code, out, err = run(cfg, "hold", "create", "smith", "--query", "zanzibar", "--record", ids["c2"],
                         "--matter", "Smith v. City", "--actor", "Counsel", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["hold"] == "smith" and sorted(doc["records"]) == sorted([ids["c0"], ids["c2"]])
    code, out, _ = run(cfg, "hold", "list", "--json")
    [h] = json.loads(out)["holds"]
    assert (h["hold"], h["active"], h["records"], h["created_by"]) == ("smith", True, 2, "Counsel")
    code, out, _ = run(cfg, "hold", "show", "smith", "--json")
    assert sorted(json.loads(out)["records"]) == sorted([ids["c0"], ids["c2"]])
    code, out, _ = run(cfg, "retention", "report", "--json")
    rep = json.loads(out)
    assert {h["record_id"] for h in rep["held"]} == {ids["c0"], ids["c2"]}
    code, out, _ = run(cfg, "hold", "release", "smith", "--json")  # actor: the OS user
    doc = json.loads(out)
    assert code == 0 and set(doc) >= {"hold", "records"} and doc["released_by"]
    with arch.db.read() as s:
        actors = dict(s.execute(select(AuditEntry.action, AuditEntry.actor)
                                .where(AuditEntry.subject == "hold:smith")).all())
    assert actors["hold.created"] == "Counsel" and actors["hold.released"] == doc["released_by"]
    # errors: one line, exit status
    code, _, err = run(cfg, "hold", "release", "smith")
    assert code == 2 and "already released" in err and err.count("\n") == 1
    code, _, err = run(cfg, "hold", "show", "nope")
    assert code == 1 and "no hold named 'nope'" in err
    code, _, err = run(cfg, "hold", "create", "x", "--record", "rec_doesnotexist", "--matter", "m")
    assert code == 1 and "rec_doesnotexist" in err and err.count("\n") == 1
    for bad in ("", "../etc/passwd", "a/b", "..", "a b", "x" * 101, "tab\there"):
        code, _, err = run(cfg, "hold", "create", bad, "--record", ids["c0"], "--matter", "m")
        assert code == 2 and "invalid hold name" in err and err.count("\n") == 1, bad
    code, _, err = run(cfg, "hold", "create", "y", "--query", '"unterminated', "--matter", "m")
    assert code == 2 and "bad query" in err and err.count("\n") == 1


def test_retention_commands(setup, tmp_path: Path) -> None:
    arch, cfg, ids = setup
    code, out, err = run(cfg, "retention", "assign", "t-case", "--record", ids["p0"], "--actor", "Custodian",
                         "--reason", "internal affairs", "--json")
    assert code == 0, err
    assert json.loads(out)["records"] == [{"record_id": ids["p0"], "series": "t-case", "disposition_date": None}]
    code, out, err = run(cfg, "retention", "case-closed", "--record", ids["p0"], "--date", "2020-01-15", "--json")
    assert code == 0, err
    assert json.loads(out)["records"][0]["disposition_date"] == "2021-01-15T06:00:00Z"  # midnight Chicago
    code, out, _ = run(cfg, "retention", "recompute", "--json")
    assert code == 0 and set(json.loads(out)) >= {"checked", "changed"}
    code, out, _ = run(cfg, "retention", "dispose", "--json")
    doc = json.loads(out)
    assert doc["dry_run"] is True and [r["record_id"] for r in doc["would_destroy"]] == [ids["p0"]]
    code, out, _ = run(cfg, "retention", "dispose")
    assert code == 0 and "DRY RUN" in out and ids["p0"] in out
    code, _, err = run(cfg, "retention", "dispose", "--approve")
    assert code == 2 and "--actor" in err
    code, out, err = run(cfg, "retention", "dispose", "--approve", "--actor", "J. Doe", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["disposed"] == [ids["p0"]] and Path(doc["certificate"]["path"]).exists()
    assert set(doc) >= {"eligible", "held", "disposed", "certificate"}
    code, out, _ = run(cfg, "show", ids["p0"], "--json")
    tomb = json.loads(out)
    assert tomb["status"] == "disposed" and tomb["versions"][0]["text"] is None
    code, out, _ = run(cfg, "show", ids["p0"])
    assert code == 0 and "content destroyed at disposition" in out and "None" not in out
    code, out, _ = run(cfg, "list", "--status", "disposed", "--json")
    assert [r["record_id"] for r in json.loads(out)["records"]] == [ids["p0"]]
    code, out, _ = run(cfg, "verify", "--json")
    assert code == 0 and json.loads(out)["ok"]
    code, _, err = run(cfg, "retention", "assign", "t-case", "--record", ids["p0"])
    assert code == 2 and "disposed" in err


def _commands(cmd: click.Command, path: list[str]) -> Iterator[list[str]]:
    yield path
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _commands(sub, [*path, name])


@pytest.mark.parametrize("cmd", list(_commands(main, [])), ids=" ".join)
def test_every_command_has_help_with_an_example(cmd: list[str]) -> None:
    res = CliRunner().invoke(main, [*cmd, "--help"])
    assert res.exit_code == 0 and "Example" in res.output
