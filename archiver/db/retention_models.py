"""Models of retention management: per-record series assignments, legal holds, dispositions, leases."""

from __future__ import annotations

from .models import Base  # noqa: F401
