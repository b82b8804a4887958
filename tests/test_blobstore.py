"""Contract tests every blob store must pass: the local directory, and S3 (moto's server over HTTP) with
and without Object Lock; then what only one kind of store does (read-only files, checksums, locks)."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from archiver.blobstore import BlobStore, LocalBlobStore, LockStatus, open_blobstore, sha256_hex
from archiver.blobstore.s3 import S3BlobStore
from archiver.errors import BlobCorrupt, BlobError, BlobLocked, BlobMissing, ConfigError
from tests.conftest import make_settings, new_bucket

LOCK_DAYS = 30


@pytest.fixture(params=["local", "local-fsync-per-file", "s3", "s3-object-lock"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BlobStore:
    if request.param.startswith("local"):
        if request.param == "local-fsync-per-file":
            monkeypatch.setenv("ARCHIVER_BLOB_FSYNC", "per-file")
        s: BlobStore = LocalBlobStore(tmp_path / "blobs")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = new_bucket(request.getfixturevalue("s3_client"), object_lock=request.param == "s3-object-lock")
        s = S3BlobStore(f"s3://{bucket}/archive/blobs", endpoint_url=endpoint, lock_days=LOCK_DAYS)
    s.init()
    return s


def overwrite_behind_its_back(store: BlobStore, sha: str, data: bytes) -> None:
    """Replace the stored bytes without the store (a disk fault, an administrator, a bad replica)."""
    if isinstance(store, LocalBlobStore):
        p = store.path(sha)
        os.chmod(p, 0o644)
        p.write_bytes(data)
    else:
        assert isinstance(store, S3BlobStore)
        store.client.put_object(Bucket=store.bucket, Key=store.key(sha), Body=data)


def versions_of(store: S3BlobStore, sha: str) -> list[dict[str, Any]]:
    resp = store.client.list_object_versions(Bucket=store.bucket, Prefix=store.key(sha))
    return [v for v in resp.get("Versions", []) if v["Key"] == store.key(sha)]


# -- the contract ------------------------------------------------------------------------------------
def test_put_get_roundtrip_is_addressed_by_sha256(store: BlobStore) -> None:
    data = b"\x00\xff<script>alert(1)</script>\xe2\x80\xae"
    sha = store.put(data)
    assert sha == sha256_hex(data)
    assert store.exists(sha)
    assert store.get(sha) == data
    store.verify(sha)


def test_put_many_dedupes_and_iterate_lists_every_blob(store: BlobStore) -> None:
    blobs = [b"a", b"b", b"a", b"", bytes(range(256)) * 100]
    shas = store.put_many(blobs)
    assert shas == [sha256_hex(b) for b in blobs]
    assert sorted(store.iterate()) == sorted(set(shas))
    for sha, data in zip(shas, blobs, strict=True):
        assert store.get(sha) == data


def test_put_existing_address_is_a_noop(store: BlobStore) -> None:
    sha = store.put(b"once")
    if isinstance(store, LocalBlobStore):
        before = store.path(sha).stat()
        assert store.put(b"once") == sha
        after = store.path(sha).stat()
        assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    else:
        assert isinstance(store, S3BlobStore)
        before = versions_of(store, sha)
        assert store.put_many([b"once", b"once"]) == [sha, sha]
        assert versions_of(store, sha) == before  # no second version, no new write
    assert store.get(sha) == b"once"


def test_flipped_byte_is_detected_on_read_and_verify(store: BlobStore) -> None:
    sha = store.put(b"evidence of record")
    overwrite_behind_its_back(store, sha, b"evidence of recorD")
    with pytest.raises(BlobCorrupt) as err:
        store.get(sha)
    assert err.value.sha256 == sha and err.value.actual == sha256_hex(b"evidence of recorD")
    with pytest.raises(BlobCorrupt):
        store.verify(sha)


def test_missing_blob(store: BlobStore) -> None:
    with pytest.raises(BlobMissing):
        store.get("0" * 64)
    with pytest.raises(BlobMissing):
        store.verify("0" * 64)
    assert not store.exists("0" * 64)
    with pytest.raises(BlobMissing):
        store.lock_status("0" * 64)
    with pytest.raises(BlobMissing):
        store.protect("0" * 64, datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(BlobMissing):
        store.legal_hold("0" * 64, True)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "0" * 63, "g" * 64, "0" * 64 + "/x"])
def test_addresses_that_are_not_sha256_are_refused(store: BlobStore, bad: str) -> None:
    with pytest.raises(BlobError):
        store.get(bad)
    with pytest.raises(BlobError):
        store.exists(bad)
    with pytest.raises(BlobError):
        store.destroy(bad)


def test_destroy_removes_the_blob_and_is_idempotent(store: BlobStore) -> None:
    keep, sha = store.put_many([b"kept"]), store.put(b"to be disposed of")
    if isinstance(store, S3BlobStore) and store.object_lock_enabled():
        with pytest.raises(BlobLocked):
            store.destroy(sha)  # still within the store's minimum retention
        assert store.get(sha) == b"to be disposed of"
        return
    store.destroy(sha)
    assert not store.exists(sha)
    with pytest.raises(BlobMissing):
        store.get(sha)
    store.destroy(sha)  # a disposition retried after a crash
    assert list(store.iterate()) == keep
    if isinstance(store, S3BlobStore):
        assert versions_of(store, sha) == []


# -- local only ------------------------------------------------------------------------------------
@pytest.fixture
def local(tmp_path: Path) -> LocalBlobStore:
    s = LocalBlobStore(tmp_path / "blobs")
    s.init()
    return s


def test_local_blobs_are_read_only_and_no_temp_files_left(local: LocalBlobStore) -> None:
    shas = local.put_many([b"a", b"b", b"a", b""])
    for sha in set(shas):
        mode = local.path(sha).stat().st_mode
        assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert list(local.root.glob("**/.*.tmp")) == []


def test_local_store_enforces_no_lock_and_destroys_in_a_read_only_folder(local: LocalBlobStore) -> None:
    sha = local.put(b"record")
    local.protect(sha, datetime.now(UTC) + timedelta(days=3650))
    local.legal_hold(sha, True)
    assert local.lock_status(sha) == LockStatus(retain_until=None, mode=None, legal_hold=False)
    os.chmod(local.path(sha).parent, stat.S_IRUSR | stat.S_IXUSR)
    try:
        local.destroy(sha)  # the database, not the disk, said no to disposition before this call
    finally:
        os.chmod(local.path(sha).parent, stat.S_IRWXU)
    assert not local.exists(sha)


def test_full_disk_is_a_clear_error_and_keeps_existing_blobs(tmp_path: Path) -> None:
    """A tiny tmpfs-like limit: RLIMIT_FSIZE makes writes fail like a full disk would."""
    import resource
    import signal

    s = LocalBlobStore(tmp_path / "b")
    s.init()
    kept = s.put(b"kept")
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, old[1]))
    try:
        with pytest.raises(BlobError):
            s.put(b"x" * 4096)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert s.get(kept) == b"kept"
    assert list(s.root.glob("**/.*.tmp")) == []
    assert not s.exists(sha256_hex(b"x" * 4096))


# -- S3 only ----------------------------------------------------------------------------------------
StoreFactory = Callable[..., S3BlobStore]


@pytest.fixture
def s3_store(s3_endpoint: str, s3_client: Any) -> StoreFactory:
    def make(*, object_lock: bool = True, **kw: Any) -> S3BlobStore:
        bucket = new_bucket(s3_client, object_lock=object_lock)
        s = S3BlobStore(f"s3://{bucket}/p", endpoint_url=s3_endpoint, **{"lock_days": LOCK_DAYS, **kw})
        s.init()
        return s
    return make


def test_s3_layout_and_sha256_checksum_sent_with_every_put(s3_store: StoreFactory) -> None:
    s = s3_store(object_lock=False)
    data = b"checksummed by S3 on arrival"
    sha = s.put(data)
    head = s.client.head_object(Bucket=s.bucket, Key=f"p/{sha[:2]}/{sha}", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    # Objects under the prefix that are not blobs are not listed as blobs.
    s.client.put_object(Bucket=s.bucket, Key="p/README", Body=b"x")
    s.client.put_object(Bucket=s.bucket, Key=f"p/zz/{sha}", Body=data)
    assert list(s.iterate()) == [sha]


def test_s3_put_is_conditional_so_a_racing_writer_never_overwrites(s3_store: StoreFactory,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer stored the address between our HEAD and our PUT: If-None-Match makes S3 refuse."""
    for lock in (False, True):
        s = s3_store(object_lock=lock)
        sha = s.put(b"first writer")
        before = versions_of(s, sha)
        monkeypatch.setattr(s, "exists", lambda _sha: False)  # the HEAD that missed the other writer
        assert s.put(b"first writer") == sha  # same bytes: 412, checked, a no-op
        assert versions_of(s, sha) == before
        # Corrupt bytes already at an address are reported, and still not overwritten.
        bad = sha256_hex(b"intended")
        s.client.put_object(Bucket=s.bucket, Key=s.key(bad), Body=b"something else")
        with pytest.raises(BlobCorrupt):
            s.put(b"intended")
        assert s.get_unchecked(bad) == b"something else"
        monkeypatch.undo()


def test_s3_object_lock_retention_is_set_at_put_and_only_extended(s3_store: StoreFactory) -> None:
    s = s3_store(lock_mode="COMPLIANCE")
    t0 = datetime.now(UTC)
    sha = s.put(b"locked record")
    st = s.lock_status(sha)
    assert st.mode == "COMPLIANCE" and not st.legal_hold
    assert st.retain_until is not None
    assert abs(st.retain_until - (t0 + timedelta(days=LOCK_DAYS))) < timedelta(minutes=1)
    # A caller that knows the disposition date gives it at put time.
    later = (t0 + timedelta(days=400)).replace(microsecond=0)
    sha2 = s.put(b"record with a known disposition date", retain_until=later)
    assert s.lock_status(sha2).retain_until == later
    # protect(): later dates extend, earlier ones leave it alone.
    extended = (t0 + timedelta(days=800)).replace(microsecond=0)
    s.protect(sha, extended)
    assert s.lock_status(sha).retain_until == extended
    s.protect(sha, t0 + timedelta(days=1))
    assert s.lock_status(sha).retain_until == extended
    assert s.lock_status(sha).mode == "COMPLIANCE"
    with pytest.raises(BlobLocked):
        s.destroy(sha)
    assert s.get(sha) == b"locked record"


def test_s3_governance_mode_and_bucket_without_lock(s3_store: StoreFactory) -> None:
    g = s3_store(lock_mode="GOVERNANCE")
    sha = g.put(b"governed")
    assert g.lock_status(sha).mode == "GOVERNANCE"
    plain = s3_store(object_lock=False)
    sha = plain.put(b"plain")
    plain.protect(sha, datetime.now(UTC) + timedelta(days=10))
    plain.legal_hold(sha, True)
    assert plain.lock_status(sha) == LockStatus(retain_until=None, mode=None, legal_hold=False)


def test_s3_destroy_waits_for_expiry_and_for_the_legal_hold(s3_store: StoreFactory,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    s = s3_store()
    soon = datetime.now(UTC) + timedelta(seconds=2)
    held, free = s.put(b"held past its date", retain_until=soon), s.put(b"free at its date", retain_until=soon)
    s.legal_hold(held, True)
    assert s.lock_status(held).legal_hold
    with pytest.raises(BlobLocked, match="legal hold"):
        s.destroy(held)
    with pytest.raises(BlobLocked, match="retained by Object Lock until"):
        s.destroy(free)
    # Our own check is not the only guard: told the lock is gone, we still meet S3's refusal.
    real = s.lock_status
    monkeypatch.setattr(s, "lock_status", lambda sha: LockStatus(None, None, False) if real(sha) else None)
    with pytest.raises(BlobLocked, match="refused to delete"):
        s.destroy(free)
    monkeypatch.undo()
    assert s.exists(free)

    deadline = time.monotonic() + 5
    while s.lock_status(free).retain_until > datetime.now(UTC):  # type: ignore[operator]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.05)
    with pytest.raises(BlobLocked, match="legal hold"):
        s.destroy(held)
    s.destroy(free)
    assert not s.exists(free) and versions_of(s, free) == []
    s.legal_hold(held, False)
    assert not s.lock_status(held).legal_hold
    s.destroy(held)
    assert not s.exists(held)


def test_s3_missing_bucket_and_settings(s3_endpoint: str, tmp_path: Path) -> None:
    s = S3BlobStore("s3://no-such-bucket-here/x", endpoint_url=s3_endpoint)
    with pytest.raises(BlobError, match="does not exist"):
        s.init()
    settings = make_settings(tmp_path, "sqlite:///x.db", storage={
        "blobs": "s3://bucket/a/b/", "s3_endpoint_url": s3_endpoint, "s3_lock_mode": "governance",
        "s3_lock_days": 7, "s3_region": "us-west-2"})
    opened = open_blobstore(settings.storage)
    assert isinstance(opened, S3BlobStore)
    assert (opened.location, opened.lock_mode, opened.lock_days) == ("s3://bucket/a/b", "GOVERNANCE", 7)
    for key, value, msg in [("s3_lock_mode", "LEGAL", "s3_lock_mode"), ("s3_lock_days", -1, "s3_lock_days"),
                            ("s3_lock_days", "soon", "s3_lock_days"), ("blobs", "s3://", "storage.blobs"),
                            ("s3_endpoint_url", "127.0.0.1:9000", "s3_endpoint_url")]:
        with pytest.raises(ConfigError, match=msg):
            make_settings(tmp_path, "sqlite:///x.db", storage={key: value})
