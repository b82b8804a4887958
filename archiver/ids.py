"""Deterministic identifiers, so a re-run or a resumed harvest names everything the same way."""

from __future__ import annotations

import hashlib


def record_id(account: str, native_id: str) -> str:
    """The archive's id of an item: stable for (account, native id), safe in paths and URLs."""
    digest = hashlib.sha256(f"{account}\x1f{native_id}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"rec_{digest[:20]}"
