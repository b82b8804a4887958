"""Local-directory blob store: temp file, fsync, rename, read-only; sharded by address prefix."""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from ..errors import BlobError, BlobMissing
from .base import SHA256_RE, BlobStore, check_address, sha256_hex

_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


class LocalBlobStore(BlobStore):
    """Blobs as files ``<root>/ab/cd/<sha256>``, written atomically and made read-only."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.location = str(self.root)
        self._syncfs = _load_syncfs()
        self._dirs: set[str] = set()

    def path(self, sha256: str) -> Path:
        """Where a blob lives on disk (one level of 256 folders, as git does)."""
        check_address(sha256)
        return self.root / sha256[:2] / sha256

    def init(self) -> None:
        """Create the root and remove temp files a killed writer left behind (never a finished blob)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob("??/.*.tmp"):
            stale.unlink(missing_ok=True)

    def put_many(self, blobs: Iterable[bytes], *, retain_until: datetime | None = None) -> list[str]:
        """Write every new blob to a temp name, make them durable together, then rename into place.

        ``retain_until`` is ignored: a local disk cannot enforce retention (see protect()).
        """
        addresses: list[str] = []
        pending: list[tuple[str, str]] = []
        seen: set[str] = set()
        root = str(self.root)
        try:
            for data in blobs:
                sha = sha256_hex(data)
                addresses.append(sha)
                folder = f"{root}/{sha[:2]}"
                final = f"{folder}/{sha}"
                if sha in seen or os.path.exists(final):
                    continue
                seen.add(sha)
                if folder not in self._dirs:
                    os.makedirs(folder, exist_ok=True)
                    self._dirs.add(folder)
                # The temp file sits beside its final name (a rename within one folder) and is created
                # read-only: the open descriptor may still write it, nobody can reopen it for writing.
                tmp = f"{folder}/.{sha}.{secrets.token_hex(4)}.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _READ_ONLY)
                pending.append((tmp, final))
                try:
                    _write_all(fd, data)
                    if self._syncfs is None:
                        os.fsync(fd)
                finally:
                    os.close(fd)
            if not pending:
                return addresses
            # One barrier for the whole batch: every temp file is on disk before any rename.
            self._barrier()
            dirs: set[str] = set()
            for tmp, final in pending:
                os.replace(tmp, final)  # same bytes if another writer got there first: still a no-op
                dirs.add(os.path.dirname(final))
            # And one after: the new names are durable before the metadata that refers to them.
            if self._syncfs is None:
                for d in dirs:
                    _fsync_dir(Path(d))
            else:
                self._barrier()
            return addresses
        except OSError as exc:
            for tmp, _ in pending:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            if exc.errno == errno.ENOSPC:
                raise BlobError(f"blob store {self.root} is full (no space left on device); nothing was stored") from None
            raise BlobError(f"cannot write to blob store {self.root}: {exc.strerror}") from None

    def _barrier(self) -> None:
        if self._syncfs is not None:
            fd = os.open(self.root, os.O_RDONLY)
            try:
                if self._syncfs(fd) != 0:
                    raise OSError(ctypes.get_errno(), "syncfs failed")
            finally:
                os.close(fd)

    def get_unchecked(self, sha256: str) -> bytes:
        """The file's bytes."""
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(sha256) from None
        except OSError as exc:
            raise BlobError(f"cannot read blob {sha256}: {exc.strerror}") from None

    def exists(self, sha256: str) -> bool:
        """Whether the file is there."""
        return self.path(sha256).exists()

    def iterate(self) -> Iterator[str]:
        """Every blob file under the root (temp files excluded)."""
        if not self.root.exists():
            return
        for top in sorted(self.root.iterdir()):
            if len(top.name) != 2 or not top.is_dir():
                continue
            for f in sorted(top.iterdir()):
                if SHA256_RE.match(f.name):
                    yield f.name

    # protect(), legal_hold() and lock_status() are the base class's: a local disk cannot stop its
    # administrator deleting a file, so they enforce nothing; disposition checks the database's dates
    # and holds before calling destroy().

    def destroy(self, sha256: str) -> None:
        """Remove a blob for disposition (the caller has checked holds and eligibility); missing is a no-op."""
        p = self.path(sha256)
        if not os.path.lexists(p):
            return
        try:
            os.chmod(p, stat.S_IRUSR | stat.S_IWUSR)
            try:
                p.unlink()
            except PermissionError:
                # A folder made read-only by an administrator: allow the removal of this one entry.
                os.chmod(p.parent, stat.S_IRWXU)
                p.unlink()
            _fsync_dir(p.parent)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BlobError(f"cannot destroy blob {sha256}: {exc.strerror}") from None

    def delete(self, sha256: str) -> None:
        """Old name of destroy()."""
        self.destroy(sha256)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs():  # type: ignore[no-untyped-def]
    """Linux's syncfs(2) flushes a whole batch in one call; elsewhere fall back to fsync per file."""
    if os.environ.get("ARCHIVER_BLOB_FSYNC") == "per-file":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn
