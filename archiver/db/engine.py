"""Opening the metadata database: engine set-up per dialect, migrations, and the schema check."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import ArchiverError, SchemaOutOfDate

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = str(Path(__file__).with_name("migrations"))
# Revisions are named NNNN_<slug>.py with revision id NNNN, in one line of history, so the head is the
# highest number; reading it from the file names keeps Alembic (~0.3-0.5 s to import) out of every
# command's start-up: only `init` loads it.
_REVISION_FILE = re.compile(r"^(\d{4})_\w+\.py$")


def known_revisions() -> list[str]:
    """Every migration revision this version ships, oldest first."""
    names = Path(MIGRATIONS, "versions").iterdir()
    return sorted(m.group(1) for p in names if (m := _REVISION_FILE.match(p.name)))


class Database:
    """An engine plus sessions: ``read()`` for queries, ``write()`` for one atomic unit of change."""

    def __init__(self, url: str, echo: bool = False):
        self.url = url
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        self.sqlite_path: Path | None = None
        if self.dialect == "sqlite":
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                self.sqlite_path = Path(path)
            self.engine: Engine = create_engine(url, echo=echo, connect_args={"timeout": 60})
            _sqlite_setup(self.engine)
        else:
            self.engine = create_engine(url, echo=echo, pool_pre_ping=True)
        self._writer = self.engine.execution_options(archiver_write=True)
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._writer, expire_on_commit=False)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; nothing it does is committed."""
        with self._read_sessions() as s:
            yield s

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction that takes the write lock up front; committed on success, rolled back on error."""
        with self._write_sessions() as s, s.begin():
            if self.dialect == "postgresql":
                # One writer at a time keeps the audit chain linear across processes.
                s.execute(text("SELECT pg_advisory_xact_lock(7412001)"))
            yield s

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # --- migrations -------------------------------------------------------------------------
    def _alembic(self, connection: Any) -> AlembicConfig:
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", MIGRATIONS)
        cfg.attributes["connection"] = connection
        return cfg

    def upgrade(self) -> str:
        """Bring the schema to the newest migration; returns the revision."""
        if self.sqlite_path is not None:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        from alembic import command

        with self.engine.begin() as conn:
            command.upgrade(self._alembic(conn), "head")
        return self.head()

    def head(self) -> str:
        """The newest migration this version of the archiver knows."""
        return known_revisions()[-1]

    def current(self) -> str | None:
        """The migration the database is at (None: never initialised)."""
        try:
            with self.engine.connect() as conn:
                if not inspect(conn).has_table("alembic_version"):
                    return None
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except OperationalError as exc:
            raise ArchiverError(f"cannot open the database: {_short(exc)}") from None

    def check_schema(self) -> None:
        """Refuse to work on a database whose schema is not this version's (clear next step)."""
        if self.sqlite_path is not None and not self.sqlite_path.exists():
            raise SchemaOutOfDate(f"no archive database at {self.sqlite_path}: run `archiver init`")
        cur, head = self.current(), self.head()
        if cur is None:
            raise SchemaOutOfDate("the archive database is not initialised: run `archiver init`")
        if cur != head:
            if cur not in known_revisions():
                raise SchemaOutOfDate(
                    f"the database schema ({cur}) is newer than this archiver knows: upgrade the archiver"
                )
            raise SchemaOutOfDate(
                f"the database schema ({cur}) is older than this archiver's ({head}): run `archiver init` "
                "to upgrade it (back up the database first)"
            )


def _short(exc: Exception) -> str:
    return str(getattr(exc, "orig", exc)).splitlines()[0]


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event decide how each transaction starts.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the lock at BEGIN so two processes never deadlock upgrading a read lock.
        if conn.get_execution_options().get("archiver_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
