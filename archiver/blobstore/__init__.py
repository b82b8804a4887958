"""Blob stores: ``open_blobstore`` picks the implementation from the configured location."""

from __future__ import annotations

from ..config import StorageSettings
from ..errors import ConfigError
from .base import BlobStore, check_address, sha256_hex
from .local import LocalBlobStore

__all__ = ["BlobStore", "LocalBlobStore", "check_address", "open_blobstore", "sha256_hex"]


def open_blobstore(storage: StorageSettings) -> BlobStore:
    """The blob store the settings name: a local directory, or s3://bucket/prefix."""
    if storage.blobs.startswith("s3://"):
        raise ConfigError("storage.blobs: the S3 blob store is not available in this version yet")
    return LocalBlobStore(storage.blobs)
