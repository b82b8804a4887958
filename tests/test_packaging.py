"""A built wheel (not the editable checkout) carries its data files and runs the main job."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True)
    (whl,) = out.glob("archiver-*.whl")
    return whl


def test_wheel_holds_data_files_and_entry_points(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("archiver/retention_schedules/social-media.yaml",
                   "archiver/db/migrations/env.py",
                   "archiver/db/migrations/script.py.mako",
                   "archiver/db/migrations/versions/0001_initial_schema.py",
                   "archiver/connectors/facebook.py",
                   "archiver/templates/__init__.py",
                   "archiver/exports/__init__.py",
                   "archiver/search/indexer.py",
                   "archiver/retention_schedules/laws/kora.yaml",
                   "archiver/retention_schedules/laws/cpra.yaml",
                   "archiver/templates/packet.html",
                   "archiver/templates/packet.css",
                   "archiver/templates/cover-letter-kora.html",
                   "archiver/templates/certification.txt.j2"):
        assert needed in names, needed
    assert not any(n.startswith(("connectors/", "templates/", "tests/")) for n in names)
    ep = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(ep).decode()
    assert "[archiver.connectors]" in text and "facebook = archiver.connectors.facebook:FacebookConnector" in text
    assert "archiver = archiver.cli:main" in text


def test_installed_wheel_runs_the_demo_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    # Dependencies come from this venv; the package itself only from the installed wheel.
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import archiver; print(archiver.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(target)), where
    res = subprocess.run([sys.executable, "-m", "archiver", "demo", "--dir", str(tmp_path / "demo")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "verify:" in res.stdout and "0 bad" in res.stdout
    assert sysconfig.get_paths()["purelib"] not in where
