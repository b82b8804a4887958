"""End to end: an archive whose blobs are in S3 (moto over HTTP, bucket with Object Lock) harvests the
simulated Facebook page, and `verify` passes; `init` reports on the bucket."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from archiver.archive import Archive
from archiver.blobstore.s3 import S3BlobStore
from archiver.clock import FakeClock
from archiver.config import AccountConfig
from archiver.db.models import Blob
from archiver.errors import BlobError
from archiver.harvest import harvest_account
from archiver.plugins import ConnectorRegistry
from archiver.simulated.facebook import SimulatedFacebook
from archiver.verify import verify_archive
from tests.conftest import make_settings, new_bucket
from tests.test_harvest_facebook import TOKEN, seed


@pytest.fixture
def fb(clock: FakeClock) -> Iterator[SimulatedFacebook]:
    with SimulatedFacebook(page_id="1000", token=TOKEN, now=clock.now) as sim:
        yield sim


def s3_archive(tmp_path: Path, db_url: str, endpoint: str, bucket: str, clock: FakeClock,
               registry: ConnectorRegistry) -> Archive:
    settings = make_settings(tmp_path, db_url, storage={"blobs": f"s3://{bucket}/apd", "s3_endpoint_url": endpoint,
                                                        "s3_lock_days": 3})
    return Archive(settings, clock=clock, registry=registry)


def test_harvest_into_s3_with_object_lock_then_verify(tmp_path: Path, db_url: str, s3_endpoint: str,
                                                      s3_client: Any, clock: FakeClock, fb: SimulatedFacebook,
                                                      registry: ConnectorRegistry,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = new_bucket(s3_client, object_lock=True)
    monkeypatch.setenv("TEST_FB_TOKEN", TOKEN)
    account = AccountConfig(name="apd-facebook", connector="facebook", max_wait=timedelta(seconds=20),
                            options={"page_id": "1000", "access_token": "$env:TEST_FB_TOKEN",
                                     "api_base": fb.api_base, "page_size": 2})
    seed(fb, clock)
    with s3_archive(tmp_path, db_url, s3_endpoint, bucket, clock, registry) as arch:
        arch.init()
        assert arch.blob_store_note and "Object Lock is on" in arch.blob_store_note
        assert isinstance(arch.blobs, S3BlobStore)
        r = harvest_account(arch, account)
        assert r.status == "ok", r.error
        assert r.new_records == 14
        with arch.db.read() as s:
            shas = set(s.execute(select(Blob.sha256)).scalars())
        assert shas and set(arch.blobs.iterate()) == shas
        for sha in list(shas)[:3]:
            st = arch.blobs.lock_status(sha)
            assert st.mode == "COMPLIANCE" and st.retain_until is not None
            assert st.retain_until > datetime.now(UTC) + timedelta(days=2)
        rep = verify_archive(arch)
        assert rep.ok and rep.blobs_checked == len(shas), rep.to_json()
        # A damaged object is found by verify (the S3 store checks hashes as the local one does).
        victim = sorted(shas)[0]
        s3_client.put_object(Bucket=bucket, Key=arch.blobs.key(victim), Body=b"tampered")
        rep = verify_archive(arch)
        assert [b["sha256"] for b in rep.blobs_bad] == [victim] and rep.blobs_bad[0]["problem"] == "corrupt"


def test_init_refuses_a_missing_bucket(tmp_path: Path, s3_endpoint: str, clock: FakeClock,
                                       registry: ConnectorRegistry) -> None:
    with s3_archive(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", s3_endpoint, "no-such-bucket", clock,
                    registry) as arch:
        with pytest.raises(BlobError, match="bucket 'no-such-bucket' does not exist"):
            arch.init()
