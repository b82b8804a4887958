"""Injectable time and randomness, so harvests and tests are deterministic when they need to be."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Source of 'now' (aware UTC) and of sleeping."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Current time, aware, in UTC."""
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to (sleeping advances it instantly)."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
        self.slept: list[float] = []

    def now(self) -> datetime:
        """The fake current time."""
        return self._now

    def sleep(self, seconds: float) -> None:
        """Record the sleep and move time forward by it."""
        self.slept.append(seconds)
        self._now += timedelta(seconds=max(seconds, 0))

    def advance(self, **kw: float) -> None:
        """Move time forward by a timedelta's keyword arguments."""
        self._now += timedelta(**kw)


def make_rng(seed: int | None = None) -> random.Random:
    """A random generator for jitter; seeded in tests."""
    return random.Random(seed)
