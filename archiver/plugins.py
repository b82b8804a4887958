"""Connector discovery through the ``archiver.connectors`` entry-point group."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from .connectors.base import Connector
from .errors import ConfigError

log = logging.getLogger(__name__)
GROUP = "archiver.connectors"


@dataclass
class ConnectorRegistry:
    """Installed connectors by name, plus the ones that failed to load (a warning, not a crash)."""

    connectors: dict[str, type[Connector]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def discover(cls) -> ConnectorRegistry:
        """Load every entry point in the group; a broken one is logged and skipped."""
        reg = cls()
        for ep in entry_points(group=GROUP):
            try:
                obj = ep.load()
                if not (isinstance(obj, type) and issubclass(obj, Connector)):
                    raise TypeError(f"{ep.value} is not a Connector subclass")
            except Exception as exc:  # noqa: BLE001 - any plugin failure must not stop the archiver
                reg.errors[ep.name] = f"{type(exc).__name__}: {exc}"
                log.warning("connector %r (%s) failed to load: %s", ep.name, ep.value, exc)
                continue
            reg.connectors[ep.name] = obj
            dist = getattr(ep, "dist", None)
            reg.origins[ep.name] = f"{dist.name} {dist.version}" if dist else ep.value
        return reg

    def get(self, name: str) -> type[Connector]:
        """The connector class registered under ``name`` (ConfigError naming what is installed)."""
        if name in self.connectors:
            return self.connectors[name]
        if name in self.errors:
            raise ConfigError(f"connector {name!r} is installed but failed to load: {self.errors[name]}")
        known = ", ".join(sorted(self.connectors)) or "none"
        raise ConfigError(f"unknown connector {name!r} (installed: {known})")

    def key_specs(self) -> dict[str, dict[str, Any]]:
        """Config-key specs for load_settings' validation of [[accounts]] entries."""
        specs: dict[str, dict[str, Any]] = {
            name: {"keys": set(c.config_keys), "required": tuple(c.required_keys), "secrets": tuple(c.secret_keys)}
            for name, c in self.connectors.items()}
        # A connector that failed to load is not checked here: its accounts fail at harvest time instead.
        specs.update({name: {"keys": None} for name in self.errors})
        return specs
