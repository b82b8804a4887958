"""Parse the short durations the config file uses ('15m', '30d', '2y')."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

_RE = re.compile(r"^\s*(\d+)\s*([smhdwy]|mo)\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_interval(text: str) -> timedelta:
    """'90s', '15m', '1h', '30d', '2w' -> timedelta; raises ValueError with what was wrong."""
    m = _RE.match(str(text))
    if not m or m.group(2) not in _SECONDS:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 1h, 30d or 2w")
    value = int(m.group(1))
    if value <= 0:
        raise ValueError(f"{text!r} must be greater than zero")
    return timedelta(seconds=value * _SECONDS[m.group(2)])


@dataclass(frozen=True)
class RetentionPeriod:
    """A retention period in calendar units ('2y', '18m', '90d') or permanent."""

    days: int = 0
    months: int = 0
    years: int = 0
    permanent: bool = False

    @classmethod
    def parse(cls, text: str) -> RetentionPeriod:
        """'2y', '18m', '90d' or 'permanent'."""
        t = str(text).strip().lower()
        if t == "permanent":
            return cls(permanent=True)
        m = re.match(r"^(\d+)\s*([dmy])$", t)
        if not m:
            raise ValueError(f"{text!r} is not a retention period like 90d, 18m, 2y or permanent")
        n, unit = int(m.group(1)), m.group(2)
        if unit == "d":
            return cls(days=n)
        return cls(months=n) if unit == "m" else cls(years=n)

    def after(self, start: datetime) -> datetime | None:
        """The moment this period ends when it starts at ``start`` (None when permanent)."""
        if self.permanent:
            return None
        months = self.months + 12 * self.years
        y, mth = divmod(start.month - 1 + months, 12)
        year, month = start.year + y, mth + 1
        day = min(start.day, _days_in_month(year, month))
        return start.replace(year=year, month=month, day=day) + timedelta(days=self.days)

    def __str__(self) -> str:
        if self.permanent:
            return "permanent"
        if self.years:
            return f"{self.years}y"
        if self.months:
            return f"{self.months}m"
        return f"{self.days}d"


def _days_in_month(year: int, month: int) -> int:
    nxt = date(year + (month // 12), month % 12 + 1, 1)
    return (nxt - timedelta(days=1)).day
