"""Shared fixtures: real databases (SQLite file, PostgreSQL when configured), archives, settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from archiver.archive import Archive
from archiver.clock import FakeClock
from archiver.config import Settings, settings_from_dict
from archiver.plugins import ConnectorRegistry

PG_URL = os.environ.get("ARCHIVER_TEST_DATABASE_URL")


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new schema in the PostgreSQL under test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'archive.db'}"
        return
    if not PG_URL:
        pytest.skip("ARCHIVER_TEST_DATABASE_URL not set: PostgreSQL tests skipped")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_schema_url(PG_URL, schema)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def registry() -> ConnectorRegistry:
    """The installed connectors."""
    return ConnectorRegistry.discover()


def make_settings(tmp_path: Path, db_url: str, accounts: list[dict[str, Any]] | None = None,
                  **sections: dict[str, Any]) -> Settings:
    """Settings for an archive under tmp_path."""
    raw: dict[str, Any] = {
        "agency": {"name": "Test Police Department", "bates_prefix": "TPD", "state": "KS"},
        "storage": {"database_url": db_url, "blobs": "data/blobs", "index_dir": "data/index",
                    "exports_dir": "data/exports"},
        "accounts": accounts or [],
    }
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v)
    return settings_from_dict(raw, tmp_path / "archiver.toml")


@pytest.fixture
def clock() -> FakeClock:
    """A clock that only moves when told to; sleeps are instant."""
    return FakeClock()


@pytest.fixture
def archive(tmp_path: Path, db_url: str, clock: FakeClock, registry: ConnectorRegistry) -> Iterator[Archive]:
    """An initialised, empty archive on the database under test."""
    arch = Archive(make_settings(tmp_path, db_url), clock=clock, registry=registry)
    arch.init()
    yield arch
    arch.close()


# -- S3: moto's server over real HTTP -----------------------------------------------------------------
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """http://127.0.0.1:PORT of a moto S3 server shared by the session (fake credentials in the env)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on stderr
    with pytest.MonkeyPatch.context() as mp:
        for k, v in S3_ENV.items():
            mp.setenv(k, v)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    """A boto3 client talking to the moto server (to set up and inspect buckets behind the store's back)."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


def new_bucket(client: Any, *, object_lock: bool) -> str:
    """A fresh, uniquely named bucket; with Object Lock (and so versioning) when asked."""
    name = f"test-{'locked' if object_lock else 'plain'}-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name, **({"ObjectLockEnabledForBucket": True} if object_lock else {}))
    return name
