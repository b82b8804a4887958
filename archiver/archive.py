"""The archive as one object: settings, metadata database, blob store, schedules and clock."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property

from .blobstore import BlobStore, open_blobstore
from .clock import Clock, SystemClock
from .config import AccountConfig, Settings
from .db.engine import Database
from .errors import ConfigError
from .plugins import ConnectorRegistry
from .retention import Series, load_schedules


class Archive:
    """Everything a command needs, opened from settings; close() when done."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 registry: ConnectorRegistry | None = None, db: Database | None = None,
                 blobs: BlobStore | None = None):
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.registry = registry or ConnectorRegistry.discover()
        self.db = db or Database(settings.storage.database_url)
        self.blobs = blobs or open_blobstore(settings.storage)
        self.blob_store_note: str | None = None  # set by init() for stores that report on themselves

    @classmethod
    def open(cls, settings: Settings, *, check_schema: bool = True, **kw: object) -> Archive:
        """Open the archive; refuses (SchemaOutOfDate) unless the schema is this version's."""
        arch = cls(settings, **kw)  # type: ignore[arg-type]
        if check_schema:
            try:
                arch.db.check_schema()
            except Exception:
                arch.close()
                raise
        return arch

    def init(self) -> str:
        """Create the data directories and bring the database schema up to date."""
        # Local: creates the root. S3: checks the bucket is reachable and notes whether Object Lock is on.
        self.blob_store_note = self.blobs.init()
        self.settings.storage.index_dir.mkdir(parents=True, exist_ok=True)
        self.settings.storage.exports_dir.mkdir(parents=True, exist_ok=True)
        return self.db.upgrade()

    @cached_property
    def schedules(self) -> Mapping[str, Series]:
        """All retention series (shipped and the agency's)."""
        return load_schedules(self.settings.retention.schedules, self.settings.base_dir)

    def series_for(self, account: AccountConfig) -> Series:
        """The retention series an account's records get (ConfigError if it does not exist)."""
        sid = account.series or self.settings.retention.default_series
        if sid not in self.schedules:
            key = f"accounts[{account.name}].series" if account.series else "retention.default_series"
            raise ConfigError(f"{key}: unknown retention series {sid!r} "
                              f"(known: {', '.join(sorted(self.schedules))})")
        return self.schedules[sid]

    def close(self) -> None:
        """Release database connections."""
        self.db.dispose()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
