"""Connectors from other distributions are found through entry points; a broken one is only a warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = '''
from archiver.connectors.base import Connector, Page, Scope, WalkComplete, Exchange, Item


class TownHallConnector(Connector):
    """A third-party connector: a fixed 'town hall' feed with two posts."""

    name = "townhall"
    config_keys = {"board": "which board to read"}
    required_keys = ("board",)

    def walk(self, plan):
        now = self.clock.now()
        ex = Exchange("GET", "https://townhall.example/" + self.account.option("board"), 200, {}, b"[]", now)
        items = tuple(Item(native_id=f"th-{i}", kind="post", raw={"id": i, "text": f"notice {i}"},
                           text=f"notice {i}") for i in range(2))
        yield Page(Scope("feed"), ex, items)
        yield WalkComplete(Scope("feed"))
'''


def make_distribution(root: Path, name: str, module: str, source: str, entry: str) -> None:
    """A minimal installed distribution: a module plus a .dist-info with entry_points.txt."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"  # dist-info folders use the normalized name
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[archiver.connectors]\n{entry}\n")


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    make_distribution(root, "archiver-townhall", "archiver_townhall", PLUGIN,
                      "townhall = archiver_townhall:TownHallConnector")
    make_distribution(root, "archiver-broken", "archiver_broken", "raise ImportError('needs libfoo')\n",
                      "broken = archiver_broken:Nothing")
    return root


def cli(plugin_path: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(plugin_path)}
    return subprocess.run([sys.executable, "-m", "archiver", *args], cwd=cwd, env=env, capture_output=True,
                          text=True)


def test_third_party_connector_is_listed_and_a_broken_one_is_a_warning(plugin_path: Path, tmp_path: Path) -> None:
    res = cli(plugin_path, tmp_path, "connectors", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    names = {c["name"]: c for c in doc["connectors"]}
    assert {"facebook", "townhall"} <= set(names)
    assert names["townhall"]["origin"] == "archiver-townhall 1.0"
    assert names["townhall"]["required"] == ["board"]
    assert [f["name"] for f in doc["failed"]] == ["broken"] and "libfoo" in doc["failed"][0]["error"]
    assert "connector 'broken'" in res.stderr and "failed to load" in res.stderr


def test_third_party_connector_harvests_into_the_archive(plugin_path: Path, tmp_path: Path) -> None:
    (tmp_path / "archiver.toml").write_text(
        '[[accounts]]\nname = "town"\nconnector = "townhall"\nboard = "council"\n'
        '[[accounts]]\nname = "broken-one"\nconnector = "broken"\n')
    assert cli(plugin_path, tmp_path, "init").returncode == 0
    res = cli(plugin_path, tmp_path, "harvest", "--json")
    runs = {r["account"]: r for r in json.loads(res.stdout)["runs"]}
    assert runs["town"]["status"] == "ok" and runs["town"]["new_records"] == 2
    assert runs["broken-one"]["status"] == "failed" and "failed to load" in runs["broken-one"]["error"]
    assert res.returncode == 1  # one account failed
    listed = json.loads(cli(plugin_path, tmp_path, "list", "--json").stdout)["records"]
    assert {r["platform"] for r in listed} == {"townhall"}
