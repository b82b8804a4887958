"""Contract tests every blob store must pass (the S3 store will join the parametrization)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from archiver.blobstore import LocalBlobStore, sha256_hex
from archiver.errors import BlobCorrupt, BlobError, BlobMissing


@pytest.fixture(params=["local", "local-fsync-per-file"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalBlobStore:
    if request.param == "local-fsync-per-file":
        monkeypatch.setenv("ARCHIVER_BLOB_FSYNC", "per-file")
    s = LocalBlobStore(tmp_path / "blobs")
    s.init()
    return s


def test_put_get_roundtrip_is_addressed_by_sha256(store: LocalBlobStore) -> None:
    data = b"\x00\xff<script>alert(1)</script>\xe2\x80\xae"
    sha = store.put(data)
    assert sha == sha256_hex(data)
    assert store.exists(sha)
    assert store.get(sha) == data


def test_put_existing_address_is_a_noop(store: LocalBlobStore) -> None:
    sha = store.put(b"once")
    path = store.path(sha)
    before = path.stat()
    assert store.put(b"once") == sha
    after = path.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_blobs_are_read_only_and_no_temp_files_left(store: LocalBlobStore) -> None:
    shas = store.put_many([b"a", b"b", b"a", b""])
    assert len(shas) == 4 and shas[0] == shas[2]
    for sha in set(shas):
        mode = store.path(sha).stat().st_mode
        assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert list(store.root.glob("**/.*.tmp")) == []
    assert sorted(store.iterate()) == sorted(set(shas))


def test_flipped_byte_is_detected_on_read_and_verify(store: LocalBlobStore) -> None:
    sha = store.put(b"evidence of record")
    p = store.path(sha)
    os.chmod(p, 0o644)
    raw = bytearray(p.read_bytes())
    raw[3] ^= 0x01
    p.write_bytes(bytes(raw))
    with pytest.raises(BlobCorrupt) as err:
        store.get(sha)
    assert err.value.sha256 == sha
    with pytest.raises(BlobCorrupt):
        store.verify(sha)


def test_missing_blob(store: LocalBlobStore) -> None:
    with pytest.raises(BlobMissing):
        store.get("0" * 64)
    assert not store.exists("0" * 64)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "0" * 63, "g" * 64, "0" * 64 + "/x"])
def test_addresses_that_are_not_sha256_are_refused(store: LocalBlobStore, bad: str) -> None:
    with pytest.raises(BlobError):
        store.get(bad)
    with pytest.raises(BlobError):
        store.exists(bad)


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
