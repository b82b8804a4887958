"""Retention schedule files: the shipped series, schema errors with file and line, the listing command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.cli import main
from archiver.errors import ConfigError
from archiver.retention import load_schedules, parse_schedule

GOOD = """\
series:
  - id: ok-series
    title: Fine
    jurisdiction: KS
    retention: 5y
    trigger: creation
    action: review
    citation: "Somewhere"
"""


def test_shipped_series() -> None:
    series = load_schedules()
    general = series["social-media-content"]
    assert (general.trigger, str(general.retention), general.action) == ("capture", "2y", "destroy")
    assert "34090" in general.citation and general.shipped
    wa = series["social-media-content-wa"]
    assert wa.trigger == "removal" and "GS50-01-12" in wa.citation and wa.jurisdiction == "WA"
    assert series["press-releases"].action == "transfer"
    ks = series["social-media-content-ks"]
    assert ks.jurisdiction == "agency" and "department-defined" in (ks.citation + ks.notes).lower()


@pytest.mark.parametrize(("text", "message"), [
    (GOOD.replace("trigger: creation", "trigger: birthday"), "agency.yaml:6: trigger must be one of"),
    (GOOD.replace("retention: 5y", "retention: 5 years"), "agency.yaml:5: retention:"),
    (GOOD.replace("action: review", "action: shred"), "agency.yaml:7: action must be one of"),
    (GOOD.replace('    citation: "Somewhere"\n', ""), "agency.yaml:2: field 'citation' is required"),
    (GOOD.replace('"Somewhere"', "42"), "agency.yaml:8: field 'citation' is required and must be text"),
    (GOOD + "    colour: blue\n", "agency.yaml:9: unknown field 'colour'"),
    (GOOD.replace("id: ok-series", "id: Not OK!"), "agency.yaml:2: id 'Not OK!'"),
    (GOOD + GOOD.replace("series:\n", ""), "series id 'ok-series' is already defined"),
    ("series:\n  - id: [unclosed\n", "agency.yaml:"),
    ("title: no list\n", "expected a top-level 'series:' list"),
])
def test_schema_errors_name_file_and_line(text: str, message: str, tmp_path: Path) -> None:
    p = tmp_path / "agency.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_schedules([str(p)])
    assert message in str(exc.value) and str(p) in str(exc.value)


def test_line_points_at_the_bad_entry() -> None:
    text = GOOD + GOOD.replace("series:\n", "").replace("ok-series", "second").replace("5y", "forever")
    with pytest.raises(ConfigError, match=r"^f\.yaml:12: retention"):
        parse_schedule(text, "f.yaml", False)


def test_agency_file_may_not_redefine_a_shipped_id(tmp_path: Path) -> None:
    p = tmp_path / "agency.yaml"
    p.write_text(GOOD.replace("ok-series", "social-media-content"), encoding="utf-8")
    with pytest.raises(ConfigError, match="already defined in retention_schedules/social-media.yaml"):
        load_schedules([str(p)])


def test_schedules_command_lists_shipped_and_agency_series(tmp_path: Path) -> None:
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "apd.yaml").write_text(GOOD, encoding="utf-8")
    cfg = tmp_path / "archiver.toml"
    cfg.write_text(f'[storage]\ndatabase_url = "sqlite:///{tmp_path}/a.db"\n'
                   '[retention]\nschedules = ["schedules/*.yaml"]\n', encoding="utf-8")
    res = CliRunner().invoke(main, ["--config", str(cfg), "retention", "schedules", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    by_id = {s["id"]: s for s in doc["series"]}
    assert set(by_id) >= {"social-media-content", "social-media-content-wa", "press-releases",
                          "social-media-content-ks", "ok-series"}
    assert set(by_id["ok-series"]) >= {"id", "title", "jurisdiction", "retention", "trigger", "action",
                                       "citation", "source", "shipped"}
    assert by_id["ok-series"]["shipped"] is False and by_id["ok-series"]["source"].endswith("apd.yaml")
    # A bad agency file is a one-line error with exit status 2.
    (tmp_path / "schedules" / "apd.yaml").write_text(GOOD.replace("5y", "5x"), encoding="utf-8")
    res = CliRunner().invoke(main, ["--config", str(cfg), "retention", "schedules"])
    assert res.exit_code == 2 and "apd.yaml:5: retention" in res.stderr and res.stderr.count("\n") == 1
