"""Blob stores: ``open_blobstore`` picks the implementation from the configured location."""

from __future__ import annotations

from ..config import StorageSettings
from ..errors import ConfigError
from .base import BlobStore, LockStatus, check_address, sha256_hex
from .local import LocalBlobStore

__all__ = ["BlobStore", "LocalBlobStore", "LockStatus", "check_address", "open_blobstore", "sha256_hex"]


def open_blobstore(storage: StorageSettings) -> BlobStore:
    """The blob store the settings name: a local directory, or s3://bucket/prefix."""
    if storage.blobs.startswith("s3://"):
        try:
            from .s3 import S3BlobStore  # boto3 loads only for an archive that uses S3
        except ImportError:
            raise ConfigError("storage.blobs: an s3:// store needs boto3 (pip install boto3)") from None
        return S3BlobStore(storage.blobs, endpoint_url=storage.s3_endpoint_url, region=storage.s3_region,
                           lock_mode=storage.s3_lock_mode, lock_days=storage.s3_lock_days)
    return LocalBlobStore(storage.blobs)
