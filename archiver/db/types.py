"""Column types that keep hostile text exact on every database and times in UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# PostgreSQL text cannot hold U+0000. Values that contain it (or that start with the marker, so the
# encoding stays reversible) are stored as marker + JSON string; everything else is stored as is.
_MARK = "\ufdd0"


class ExactText(TypeDecorator[str]):
    """Text that round-trips every Python string exactly, NUL characters included."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if dialect.name == "postgresql" and ("\x00" in value or value.startswith(_MARK)):
            return _MARK + json.dumps(value)
        if not value.isascii() and (value.startswith(_MARK) or _has_surrogate(value)):
            # Lone surrogates cannot be encoded by any driver; keep them recoverable.
            return _MARK + json.dumps(value)
        return value

    def bind_processor(self, dialect: Dialect):  # type: ignore[no-untyped-def]
        # A plain function instead of TypeDecorator's layered processors: this runs for every text
        # value of every captured item, and ASCII text (most of it) needs no work at all.
        slow = self.process_bind_param
        pg = dialect.name == "postgresql"

        def process(value: str | None) -> str | None:
            if value is None or (value.isascii() and not (pg and "\x00" in value)):
                return value
            return slow(value, dialect)

        return process

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is not None and value.startswith(_MARK):
            try:
                decoded = json.loads(value[1:])
            except ValueError:
                return value
            return decoded if isinstance(decoded, str) else value
        return value


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and returned aware (UTC) on every database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: give a UTC-aware time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def dumps(value: Any) -> str:
    """Canonical JSON used for every JSON text column and for hashing."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
