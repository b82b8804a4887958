"""Models of open-records requests (KORA, CPRA): the request, its records, redactions and exports."""

from __future__ import annotations

from .models import Base  # noqa: F401
