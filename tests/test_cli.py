"""The command line contract: JSON keys, exit statuses, one-line errors, --help with examples."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.cli import main
from archiver.simulated.facebook import SimulatedFacebook, seed_demo

TOKEN = "EAAGcliTOKEN-93ab1c"


@pytest.fixture
def fb() -> Iterator[SimulatedFacebook]:
    with SimulatedFacebook(page_id="2000", token=TOKEN) as sim:
        seed_demo(sim)
        yield sim


@pytest.fixture
def cfg(tmp_path: Path, db_url: str, fb: SimulatedFacebook, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLI_FB_TOKEN", TOKEN)
    p = tmp_path / "archiver.toml"
    p.write_text(f"""
[agency]
name = "CLI Test PD"
[storage]
database_url = "{db_url}"
[[accounts]]
name = "cli-facebook"
connector = "facebook"
page_id = "2000"
access_token = "$env:CLI_FB_TOKEN"
api_base = "{fb.api_base}"
""")
    return p


def run(cfg: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, ["--config", str(cfg), *args], catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def test_init_harvest_list_show_verify_json(cfg: Path) -> None:
    code, out, _ = run(cfg, "init", "--json")
    assert code == 0 and set(json.loads(out)) >= {"database_url", "blobs", "index_dir"}

    code, out, _ = run(cfg, "harvest", "--json")
    assert code == 0
    runs = json.loads(out)["runs"]
    assert len(runs) == 1
    r = runs[0]
    assert set(r) >= {"account", "status", "new_records", "new_versions", "events", "error"}
    assert set(r["events"]) == {"edited", "hidden", "unhidden", "removed", "restored"}
    assert r["status"] == "ok" and r["new_records"] > 50

    code, out, _ = run(cfg, "list", "--json")
    records = json.loads(out)["records"]
    assert len(records) == r["new_records"]
    assert set(records[0]) >= {"record_id", "platform", "account", "native_id", "kind", "status", "versions"}

    code, out, _ = run(cfg, "list", "--json", "--kind", "reply", "--status", "live")
    assert all(x["kind"] == "reply" for x in json.loads(out)["records"])

    code, out, _ = run(cfg, "show", records[0]["record_id"], "--json")
    doc = json.loads(out)
    assert code == 0 and set(doc) >= {"record_id", "kind", "status", "versions", "events"}
    assert set(doc["versions"][0]) >= {"seq", "sha256", "captured_at", "text"}
    assert set(doc["events"][0]) >= {"type", "at"}

    code, out, _ = run(cfg, "verify", "--json")
    rep = json.loads(out)
    assert code == 0 and set(rep) >= {"blobs_checked", "blobs_bad", "audit_entries", "audit_ok", "first_bad_entry"}
    assert rep["audit_ok"] and rep["blobs_bad"] == [] and rep["blobs_checked"] > 0


def test_verify_exits_1_and_names_the_bad_blob(cfg: Path) -> None:
    run(cfg, "init")
    run(cfg, "harvest")
    blobs = sorted((cfg.parent / "data" / "blobs").glob("??/*"))
    victim = blobs[0]
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes() + b" ")
    code, out, _ = run(cfg, "verify", "--json")
    assert code == 1
    assert json.loads(out)["blobs_bad"][0]["sha256"] == victim.name


def test_errors_are_one_line_with_exit_codes(cfg: Path, tmp_path: Path) -> None:
    code, _, err = run(cfg, "list")
    assert code == 2 and err.strip().count("\n") == 0 and "archiver init" in err
    run(cfg, "init")
    code, _, err = run(cfg, "show", "../../etc/passwd")
    assert code == 1 and err.startswith("error: no record") and err.count("\n") == 1
    bad = tmp_path / "bad.toml"
    bad.write_text('[agency]\nstate = "Kansas"\n')
    code, _, err = run(bad, "init")
    assert code == 2 and "agency.state" in err and err.count("\n") == 1
    code, _, err = run(tmp_path / "missing.toml", "init")
    assert code == 2 and "config file not found" in err


def test_token_expiry_on_the_command_line(cfg: Path, fb: SimulatedFacebook) -> None:
    run(cfg, "init")
    fb.expire_token()
    code, out, err = run(cfg, "harvest", "--json")
    assert code == 1
    r = json.loads(out)["runs"][0]
    assert r["status"] == "failed" and "cli-facebook" in r["error"]
    assert TOKEN not in out and TOKEN not in err
    code, out, err = run(cfg, "harvest")
    assert code == 1 and TOKEN not in out + err
    assert "cli-facebook" in err and "\n" not in r["error"]


@pytest.mark.parametrize("cmd", ["init", "harvest", "list", "show", "verify", "connectors", "demo"])
def test_every_command_has_help_with_an_example(cmd: str) -> None:
    res = CliRunner().invoke(main, [cmd, "--help"])
    assert res.exit_code == 0 and "Example" in res.output


def test_python_dash_m_and_connectors_json() -> None:
    out = subprocess.run([sys.executable, "-m", "archiver", "connectors", "--json"], capture_output=True,
                         text=True, check=True).stdout
    doc = json.loads(out)
    fb = next(c for c in doc["connectors"] if c["name"] == "facebook")
    assert "page_id" in fb["required"] and "access_token" in fb["secrets"]
