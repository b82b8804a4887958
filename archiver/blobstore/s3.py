"""S3 (or S3-compatible) blob store: write-once objects ``<prefix>/ab/<sha256>``, Object Lock when the bucket has it.

Every put carries the blob's SHA-256 as ``ChecksumSHA256`` so S3 itself rejects bytes damaged on the way,
and is conditional (``If-None-Match: *``) so an object is never overwritten. On a bucket with Object
Lock each new object gets retention in the configured mode (COMPLIANCE unless GOVERNANCE is set) until
the caller's ``retain_until``, or else ``lock_days`` from now; ``protect`` extends it later, never
shortens it. ``destroy`` never bypasses a lock: S3 refuses, and we say so (BlobLocked).

Credentials come from boto3's usual chain (environment, shared files, instance or task role), never
from the archiver's config file.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ..errors import BlobCorrupt, BlobError, BlobLocked, BlobMissing, ConfigError
from .base import SHA256_RE, BlobStore, LockStatus, check_address, sha256_hex

log = logging.getLogger(__name__)

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_EXISTS = {"412", "PreconditionFailed", "409", "ConditionalRequestConflict"}
_PARALLEL = 8  # concurrent PUTs per batch: S3 latency, not bandwidth, bounds a harvest page's blobs


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix") (prefix without slashes at either end)."""
    if not url.startswith("s3://"):
        raise ConfigError(f"storage.blobs: {url!r} is not an s3:// URL")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise ConfigError(f"storage.blobs: {url!r} names no bucket (s3://bucket/prefix)")
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ConfigError(f"storage.blobs: {url!r} has an empty or relative part in its prefix")
    return bucket, prefix


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _b64(sha256: str) -> str:
    return base64.b64encode(bytes.fromhex(sha256)).decode("ascii")


class S3BlobStore(BlobStore):
    """Blobs as objects ``s3://<bucket>/<prefix>/ab/<sha256>``."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None,
                 lock_mode: str = "COMPLIANCE", lock_days: int = 730, client: Any = None):
        self.bucket, self.prefix = parse_s3_url(url)
        self.location = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self.endpoint_url = endpoint_url
        self.lock_mode = lock_mode
        self.lock_days = lock_days
        if client is None:
            cfg = BotoConfig(retries={"max_attempts": 5, "mode": "standard"},
                             max_pool_connections=_PARALLEL * 2,
                             # S3-compatible servers (MinIO, Ceph) are usually reached by path, not by
                             # a bucket host name.
                             s3={"addressing_style": "path"} if endpoint_url else None)
            client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region,
                                                    config=cfg)
        self.client = client
        self._lock_enabled: bool | None = None
        self._conditional = True  # cleared if the endpoint does not implement If-None-Match
        self._guard = threading.Lock()

    # -- layout ------------------------------------------------------------------------------------
    def key(self, sha256: str) -> str:
        """The object key of a blob."""
        check_address(sha256)
        rel = f"{sha256[:2]}/{sha256}"
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _err(self, what: str, exc: Exception) -> BlobError:
        if isinstance(exc, NoCredentialsError):
            return BlobError(f"{self.location}: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                             "AWS_PROFILE, or use an instance role)")
        if isinstance(exc, ClientError):
            msg = exc.response.get("Error", {}).get("Message") or _code(exc)
            return BlobError(f"{self.location}: cannot {what}: {_code(exc)}: {msg}")
        return BlobError(f"{self.location}: cannot {what}: {str(exc).splitlines()[0]}")

    # -- bucket --------------------------------------------------------------------------------------
    def init(self) -> str:
        """Check the bucket exists and is reachable; returns a one-line description (Object Lock on/off)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND or _code(exc) == "NoSuchBucket":
                raise BlobError(f"{self.location}: bucket {self.bucket!r} does not exist (create it first, "
                                "with Object Lock if records must be undeletable)") from None
            raise self._err("reach the bucket", exc) from None
        except BotoCoreError as exc:
            raise self._err("reach the bucket", exc) from None
        self._lock_enabled = None
        if self.object_lock_enabled():
            return (f"{self.location}: Object Lock is on ({self.lock_mode}, new blobs kept at least "
                    f"{self.lock_days} days)")
        return f"{self.location}: Object Lock is off (blobs are write-once by the archiver only)"

    def object_lock_enabled(self) -> bool:
        """Whether the bucket has Object Lock (asked once, then remembered)."""
        if self._lock_enabled is None:
            try:
                conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
                enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                if _code(exc) != "ObjectLockConfigurationNotFoundError":
                    raise self._err("read the bucket's Object Lock configuration "
                                    "(s3:GetBucketObjectLockConfiguration)", exc) from None
                enabled = False
            except BotoCoreError as exc:
                raise self._err("read the bucket's Object Lock configuration", exc) from None
            self._lock_enabled = enabled
        return self._lock_enabled

    # -- the contract --------------------------------------------------------------------------------
    def put_many(self, blobs: Iterable[bytes], *, retain_until: datetime | None = None) -> list[str]:
        """Put every new blob (checksummed, conditional, locked when the bucket has Object Lock)."""
        addresses: list[str] = []
        pending: dict[str, bytes] = {}
        for data in blobs:
            sha = sha256_hex(data)
            addresses.append(sha)
            pending.setdefault(sha, data)
        if not pending:
            return addresses
        lock_args = self._lock_args(retain_until)
        items = list(pending.items())
        if len(items) == 1:
            self._put_one(*items[0], lock_args)
        else:
            with ThreadPoolExecutor(max_workers=min(_PARALLEL, len(items))) as pool:
                for fut in [pool.submit(self._put_one, sha, data, lock_args) for sha, data in items]:
                    fut.result()  # every PUT has returned (durable in S3) or its error is raised here
        return addresses

    def _lock_args(self, retain_until: datetime | None) -> dict[str, Any]:
        if not self.object_lock_enabled():
            return {}
        until = retain_until
        if until is None and self.lock_days > 0:
            until = datetime.now(UTC) + timedelta(days=self.lock_days)
        if until is None or until <= datetime.now(UTC):
            return {}  # S3 refuses a retain-until in the past; the bucket's default retention applies
        return {"ObjectLockMode": self.lock_mode, "ObjectLockRetainUntilDate": until.astimezone(UTC)}

    def _put_one(self, sha: str, data: bytes, lock_args: dict[str, Any]) -> None:
        key = self.key(sha)
        if self.exists(sha):
            return  # write-once: an existing address is a no-op
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data, "ChecksumAlgorithm": "SHA256",
                                "ChecksumSHA256": _b64(sha), **lock_args}
        try:
            try:
                # If-None-Match closes the race between our HEAD and another writer's PUT.
                self.client.put_object(**args, **({"IfNoneMatch": "*"} if self._conditional else {}))
            except ClientError as exc:
                if _code(exc) not in ("NotImplemented", "501") or not self._conditional:
                    raise
                with self._guard:
                    self._conditional = False
                log.info("%s: the endpoint does not implement conditional puts; relying on the check before "
                         "each put", self.location)
                self.client.put_object(**args)
        except ClientError as exc:
            if _code(exc) in _EXISTS or _status(exc) in (409, 412):
                self._check_existing(sha)  # someone stored this address first: it must hold these bytes
                return
            if _code(exc) in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
                raise BlobError(f"{self.location}: S3 rejected blob {sha}: its bytes were damaged on the way") \
                    from None
            raise self._err(f"store blob {sha}", exc) from None
        except BotoCoreError as exc:
            raise self._err(f"store blob {sha}", exc) from None

    def _check_existing(self, sha: str) -> None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(sha), ChecksumMode="ENABLED")
        except (ClientError, BotoCoreError) as exc:
            raise self._err(f"check existing blob {sha}", exc) from None
        stored = head.get("ChecksumSHA256")
        if stored and "-" not in stored:
            if stored != _b64(sha):
                raise BlobCorrupt(sha, base64.b64decode(stored).hex())
            return
        self.verify(sha)  # no usable checksum on the object: read it back and hash it

    def get_unchecked(self, sha256: str) -> bytes:
        """The object's bytes."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))
            return bytes(resp["Body"].read())
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise BlobMissing(sha256) from None
            raise self._err(f"read blob {sha256}", exc) from None
        except BotoCoreError as exc:
            raise self._err(f"read blob {sha256}", exc) from None

    def exists(self, sha256: str) -> bool:
        """Whether an object is stored at this address (HEAD)."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
            return True
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND or _status(exc) == 404:
                return False
            raise self._err(f"look up blob {sha256}", exc) from None
        except BotoCoreError as exc:
            raise self._err(f"look up blob {sha256}", exc) from None

    def iterate(self) -> Iterator[str]:
        """Every blob object under the prefix (anything else there is ignored)."""
        root = f"{self.prefix}/" if self.prefix else ""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=root)
        try:
            for page in pages:
                for obj in page.get("Contents", ()):
                    rel = obj["Key"][len(root):]
                    shard, _, name = rel.partition("/")
                    if SHA256_RE.match(name) and shard == name[:2]:
                        yield name
        except (ClientError, BotoCoreError) as exc:
            raise self._err("list blobs", exc) from None

    # -- Object Lock -----------------------------------------------------------------------------------
    def lock_status(self, sha256: str) -> LockStatus:
        """Retention date, mode and legal-hold flag of the object (from HEAD)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND or _status(exc) == 404:
                raise BlobMissing(sha256) from None
            raise self._err(f"read the lock of blob {sha256}", exc) from None
        except BotoCoreError as exc:
            raise self._err(f"read the lock of blob {sha256}", exc) from None
        until = head.get("ObjectLockRetainUntilDate")
        if isinstance(until, datetime):
            until = until.replace(tzinfo=UTC) if until.tzinfo is None else until.astimezone(UTC)
        return LockStatus(retain_until=until, mode=head.get("ObjectLockMode"),
                          legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON")

    def enforces_locks(self) -> bool:
        """True when the bucket has Object Lock."""
        return self.object_lock_enabled()

    def protect(self, sha256: str, until: datetime) -> None:
        """Extend the object's retention to ``until`` (never shortens; no-op on a bucket without Object Lock)."""
        if until.tzinfo is None:
            raise BlobError("protect(): the retain-until date must be timezone-aware")
        status = self.lock_status(sha256)
        if not self.object_lock_enabled():
            return
        if status.retain_until is not None and status.retain_until >= until:
            return  # already kept at least that long: a shorter date would weaken the lock
        if until <= datetime.now(UTC):
            return  # nothing to extend into: S3 refuses a date in the past
        # An object already in COMPLIANCE stays in COMPLIANCE (S3 refuses a downgrade).
        mode = status.mode if status.mode and status.retain_until else self.lock_mode
        try:
            self.client.put_object_retention(Bucket=self.bucket, Key=self.key(sha256),
                                             Retention={"Mode": mode, "RetainUntilDate": until.astimezone(UTC)})
        except (ClientError, BotoCoreError) as exc:
            raise self._err(f"extend the retention of blob {sha256}", exc) from None

    def legal_hold(self, sha256: str, on: bool) -> None:
        """Set or clear the object's legal-hold flag (no-op on a bucket without Object Lock)."""
        self._require(sha256)
        if not self.object_lock_enabled():
            return
        try:
            self.client.put_object_legal_hold(Bucket=self.bucket, Key=self.key(sha256),
                                              LegalHold={"Status": "ON" if on else "OFF"})
        except (ClientError, BotoCoreError) as exc:
            raise self._err(f"set the legal hold of blob {sha256}", exc) from None

    def destroy(self, sha256: str) -> None:
        """Delete every version of the object; BlobLocked while retention runs or a legal hold is on."""
        key = self.key(sha256)
        try:
            status = self.lock_status(sha256)
        except BlobMissing:
            status = None
        if status is not None:
            if status.legal_hold:
                raise BlobLocked(f"blob {sha256} is under legal hold in {self.location}: not destroyed")
            if status.retain_until is not None and status.retain_until > datetime.now(UTC):
                raise BlobLocked(f"blob {sha256} is retained by Object Lock until "
                                 f"{status.retain_until.isoformat()}: not destroyed")
        # On a versioned bucket (Object Lock requires versioning) a plain DELETE only adds a delete
        # marker and the bytes stay: destruction deletes each version by id. Never bypasses governance.
        try:
            versions: list[str | None] = []
            for page in self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=key):
                for v in [*page.get("Versions", ()), *page.get("DeleteMarkers", ())]:
                    if v["Key"] == key:
                        versions.append(v.get("VersionId"))
            if not versions and status is not None:
                versions.append(None)
            for vid in versions:
                args = {"Bucket": self.bucket, "Key": key}
                if vid and vid != "null":
                    args["VersionId"] = vid
                self.client.delete_object(**args)
        except ClientError as exc:
            if _code(exc) == "AccessDenied" or _status(exc) == 403:
                raise BlobLocked(f"{self.location} refused to delete blob {sha256} (Object Lock or permissions): "
                                 "not destroyed") from None
            raise self._err(f"destroy blob {sha256}", exc) from None
        except BotoCoreError as exc:
            raise self._err(f"destroy blob {sha256}", exc) from None

