"""The blob store contract: content-addressed by SHA-256, write-once, hash checked on read."""

from __future__ import annotations

import abc
import hashlib
import re
from collections.abc import Iterable, Iterator

from ..errors import BlobCorrupt, BlobError

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


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

    @abc.abstractmethod
    def put_many(self, blobs: Iterable[bytes]) -> list[str]:
        """Store blobs durably (all of them are durable when this returns); existing ones are no-ops."""

    def put(self, data: bytes) -> str:
        """Store one blob durably and return its address."""
        return self.put_many([data])[0]

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
