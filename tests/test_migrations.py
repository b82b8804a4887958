"""Migrations: the head the archiver reads from file names is Alembic's, and models match the migrations."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from archiver.db.engine import MIGRATIONS, Database, known_revisions
from archiver.db.models import Base


def test_file_name_head_is_alembics_head_and_history_is_one_line() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    script = ScriptDirectory.from_config(cfg)
    assert script.get_heads() == [known_revisions()[-1]]
    chain = [r.revision for r in script.walk_revisions()][::-1]
    assert chain == known_revisions()


def test_models_match_the_migrated_schema(db_url: str) -> None:
    db = Database(db_url)
    try:
        db.upgrade()
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = [d for d in compare_metadata(ctx, Base.metadata)
                    if not (d[0] == "remove_table" and d[1].name == "scheduler_jobs")]
        assert diff == [], diff
        assert db.current() == known_revisions()[-1]
    finally:
        db.dispose()


def test_uninitialised_database_has_no_revision(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert db.current() is None
    finally:
        db.dispose()
