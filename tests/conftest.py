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
