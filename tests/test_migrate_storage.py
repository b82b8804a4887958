"""`archiver migrate-storage`: an archive on SQLite + local blobs copied to PostgreSQL + S3 (moto over HTTP)
and, without PostgreSQL, to another SQLite + directory; same content, verified; a non-empty target refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from archiver.archive import Archive
from archiver.blobstore import LocalBlobStore
from archiver.cli import main
from archiver.clock import FakeClock
from archiver.config import AccountConfig
from archiver.db.engine import Database
from archiver.db.models import AuditEntry, Blob, Event, Record, Version
from archiver.harvest import harvest_account
from archiver.simulated.facebook import SimulatedFacebook
from tests.conftest import new_bucket
from tests.test_harvest_facebook import TOKEN, seed

CONFIG = """
[storage]
database_url = "{db_url}"
blobs = "{blobs}"
{extra}
"""


@pytest.fixture
def fb(clock: FakeClock) -> Iterator[SimulatedFacebook]:
    with SimulatedFacebook(page_id="1000", token=TOKEN, now=clock.now) as sim:
        yield sim


def write_config(path: Path, db_url: str, blobs: str, extra: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CONFIG.format(db_url=db_url, blobs=blobs, extra=extra))
    return path


def cli(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def dump(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables a migration must carry across unchanged, in key order."""
    db = Database(db_url)
    try:
        with db.read() as s:
            out = {}
            for model in (Record, Version, Event, Blob, AuditEntry):
                cols = list(model.__table__.columns)  # type: ignore[attr-defined]
                pk = list(model.__table__.primary_key.columns)  # type: ignore[attr-defined]
                out[model.__tablename__] = [tuple(r) for r in s.execute(select(*cols).order_by(*pk))]
            return out
    finally:
        db.dispose()


def test_migrate_round_trip_then_harvest_on_the_new_storage(tmp_path: Path, db_url: str, s3_endpoint: str,
                                                            s3_client: Any, fb: SimulatedFacebook,
                                                            clock: FakeClock, registry: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_FB_TOKEN", TOKEN)
    account = AccountConfig(name="apd-facebook", connector="facebook", max_wait=timedelta(seconds=20),
                            options={"page_id": "1000", "access_token": "$env:TEST_FB_TOKEN",
                                     "api_base": fb.api_base, "page_size": 2})
    src_db = f"sqlite:///{tmp_path / 'src' / 'archive.db'}"
    src_cfg = write_config(tmp_path / "src" / "archiver.toml", src_db, "blobs", f's3_endpoint_url = "{s3_endpoint}"')
    from archiver.config import load_settings

    ids = seed(fb, clock)
    with Archive(load_settings(src_cfg), clock=clock, registry=registry) as src:
        src.init()
        assert harvest_account(src, account).status == "ok"
        fb.edit_post(ids["p5"], "Post 5, corrected")
        fb.delete_comment(ids["c3"])
        clock.advance(hours=1)
        assert harvest_account(src, account).status == "ok"
    before = dump(src_db)
    assert len(before["versions"]) == 15 and len(before["blobs"]) > 15

    if db_url.startswith("postgresql"):
        bucket = new_bucket(s3_client, object_lock=True)
        dest_blobs = f"s3://{bucket}/apd"
    else:
        dest_blobs = str(tmp_path / "dest-blobs")
    code, out, err = cli("--config", str(src_cfg), "migrate-storage", "--to-database-url", db_url,
                         "--to-blobs", dest_blobs, "--actor", "it-admin", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert {k: summary[k] for k in ("records", "blobs", "audit_ok", "blobs_bad")} == \
        {"records": 14, "blobs": len(before["blobs"]), "audit_ok": True, "blobs_bad": []}
    assert summary["audit_entries"] == len(before["audit_log"]) + 1  # + archive.migrated (checked by verify)
    assert "copied table records: 14 rows" in err and "verifying the destination" in err

    after = dump(db_url)
    for table in ("records", "versions", "events", "blobs"):
        if table == "blobs":  # verify stamps verified_at at the destination
            strip = [c.name for c in Blob.__table__.columns].index("verified_at")  # type: ignore[attr-defined]
            assert [r[:strip] + r[strip + 1:] for r in after[table]] == \
                [r[:strip] + r[strip + 1:] for r in before[table]]
        else:
            assert after[table] == before[table], table
    assert after["audit_log"][:len(before["audit_log"])] == before["audit_log"]
    assert [e[3] for e in after["audit_log"][-2:]] == ["archive.migrated", "archive.verified"]
    assert after["audit_log"][-2][2] == "it-admin"

    # The copy is a working archive: verify passes, and harvesting there adds rows (sequences were reset).
    dest_cfg = write_config(tmp_path / "dest" / "archiver.toml", db_url, dest_blobs,
                            f's3_endpoint_url = "{s3_endpoint}"')
    code, out, err = cli("--config", str(dest_cfg), "verify", "--json")
    assert code == 0 and json.loads(out)["ok"], out + err
    fb.add_comment(ids["p5"], "after the move", created_time=clock.now())
    clock.advance(hours=1)
    with Archive(load_settings(dest_cfg), clock=clock, registry=registry) as dest:
        r = harvest_account(dest, account)
        assert (r.status, r.new_records) == ("ok", 1), r.error
    assert len(dump(db_url)["versions"]) == 16

    # Migrating again onto the same destination is refused, and changes nothing.
    code, out, err = cli("--config", str(src_cfg), "migrate-storage", "--to-database-url", db_url,
                         "--to-blobs", dest_blobs)
    assert code == 1 and "the destination database is not empty (table accounts has rows)" in err
    assert len(dump(db_url)["versions"]) == 16


def test_migrate_refuses_a_blob_store_of_another_archive(tmp_path: Path, registry: Any) -> None:
    src_cfg = write_config(tmp_path / "src" / "archiver.toml", f"sqlite:///{tmp_path / 'src' / 'a.db'}", "blobs")
    assert cli("--config", str(src_cfg), "init")[0] == 0
    foreign = LocalBlobStore(tmp_path / "other")
    foreign.init()
    sha = foreign.put(b"someone else's blob")
    dest_db = tmp_path / "dest.db"
    code, out, err = cli("--config", str(src_cfg), "migrate-storage", "--to-database-url", f"sqlite:///{dest_db}",
                         "--to-blobs", str(tmp_path / "other"), "--json")
    assert code == 1 and out == ""
    assert f"holds blobs of another archive (e.g. {sha})" in err
    assert not dest_db.exists()
