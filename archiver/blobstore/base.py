"""The blob store contract: content-addressed by SHA-256, write-once, hash checked on read."""

from __future__ import annotations

import abc
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from ..errors import BlobCorrupt, BlobError, BlobMissing

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class LockStatus:
    """What the store itself enforces on one blob (a local disk enforces nothing)."""

    retain_until: datetime | None  # aware UTC; None: no retention date on the object
    mode: str | None  # "COMPLIANCE" | "GOVERNANCE" | None
    legal_hold: bool


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of some bytes: a blob's address."""
    return hashlib.sha256(data).hexdigest()


def check_address(sha256: str) -> str:
    """Refuse anything that is not a lowercase hex SHA-256 (it becomes a path or an object key)."""
    if not isinstance(sha256, str) or not SHA256_RE.match(sha256):
        raise BlobError(f"not a SHA-256 blob address: {sha256!r}")
    return sha256


class BlobStore(abc.ABC):
    """Write-once storage of byte strings under the SHA-256 of their content."""

    #: a URL-ish description for messages and `init --json`
    location: str

    def init(self) -> str | None:
        """Prepare the store for use (`archiver init`); may return a one-line note about it."""
        return None

    @abc.abstractmethod
    def put_many(self, blobs: Iterable[bytes], *, retain_until: datetime | None = None) -> list[str]:
        """Store blobs durably (all of them are durable when this returns); existing ones are no-ops.

        ``retain_until`` (aware datetime) asks a store with object locking to keep new blobs at least
        that long; without it such a store applies its configured minimum. Other stores ignore it.
        """

    def put(self, data: bytes, *, retain_until: datetime | None = None) -> str:
        """Store one blob durably and return its address."""
        return self.put_many([data], retain_until=retain_until)[0]

    @abc.abstractmethod
    def get_unchecked(self, sha256: str) -> bytes:
        """The stored bytes, without checking them (raises BlobMissing)."""

    def get(self, sha256: str) -> bytes:
        """The stored bytes, checked against the address (raises BlobMissing or BlobCorrupt)."""
        data = self.get_unchecked(check_address(sha256))
        actual = sha256_hex(data)
        if actual != sha256:
            raise BlobCorrupt(sha256, actual)
        return data

    @abc.abstractmethod
    def exists(self, sha256: str) -> bool:
        """Whether a blob is stored at this address."""

    def verify(self, sha256: str) -> None:
        """Re-read and re-hash one blob; raises BlobMissing or BlobCorrupt."""
        self.get(sha256)

    @abc.abstractmethod
    def iterate(self) -> Iterator[str]:
        """Every stored address (order unspecified)."""

    # -- retention enforcement by the store (S3 Object Lock); the DB's holds and dates are checked too --
    def enforces_locks(self) -> bool:
        """Whether protect() and legal_hold() do anything here (callers skip a round trip per blob if not)."""
        return False

    def protect(self, sha256: str, until: datetime) -> None:
        """Keep the blob undeletable until ``until`` (aware datetime); extends, never shortens.

        A store that cannot enforce retention (a local disk) does nothing: disposition relies on the
        database's dates and holds there. Raises BlobMissing if the blob is not stored.
        """
        self._require(sha256)

    def legal_hold(self, sha256: str, on: bool) -> None:
        """Set (``on``) or clear the blob's legal-hold flag; a store without object locking does nothing."""
        self._require(sha256)

    @abc.abstractmethod
    def destroy(self, sha256: str) -> None:
        """Delete the blob for disposition; BlobLocked if the store still protects it; missing is a no-op."""

    def lock_status(self, sha256: str) -> LockStatus:
        """The retention date, mode and legal-hold flag the store enforces on this blob (BlobMissing if absent)."""
        self._require(sha256)
        return LockStatus(retain_until=None, mode=None, legal_hold=False)

    def _require(self, sha256: str) -> None:
        if not self.exists(check_address(sha256)):
            raise BlobMissing(sha256)
