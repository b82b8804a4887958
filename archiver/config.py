"""The one settings schema: archiver.toml, overridden by ARCHIVER_* environment variables and flags."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .durations import parse_interval
from .errors import ConfigError

DEFAULT_CONFIG = "archiver.toml"
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SECRET_RE = re.compile(r"^\$(env|file):(.+)$")

# Keys every [[accounts]] entry may have; the rest belong to its connector.
ACCOUNT_KEYS = {"name", "connector", "every", "cron", "lookback", "series", "enabled", "max_wait"}


@dataclass(frozen=True)
class AgencySettings:
    """Who the archive belongs to."""

    name: str = "Police Department"
    bates_prefix: str = "DOC"
    state: str = "KS"
    timezone: str = "America/Chicago"
    custodian: str = "Records Custodian"
    holidays: tuple[str, ...] = ()  # ISO dates the agency is closed (KORA business days skip them)
    templates_dir: str | None = None  # as written; relative to the config file's directory


@dataclass(frozen=True)
class StorageSettings:
    """Where metadata, blobs, the index and exports live."""

    database_url: str
    blobs: str
    index_dir: Path
    exports_dir: Path
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_lock_mode: str = "COMPLIANCE"
    s3_lock_days: int = 730  # minimum Object Lock retention of a new blob (0: none at put time)


@dataclass(frozen=True)
class RetentionSettings:
    """Which schedule files apply and which series records get by default."""

    schedules: tuple[str, ...] = ()
    default_series: str = "social-media-content"


@dataclass(frozen=True)
class SchedulerSettings:
    """How `archiver run` schedules work."""

    fixity_days: int = 30  # re-verify each blob at least this often (daily sweep)
    backoff_max: timedelta = timedelta(hours=6)  # longest delay after consecutive failed runs
    misfire_grace: timedelta = timedelta(minutes=5)  # a run later than this after its time is skipped


@dataclass(frozen=True)
class AccountConfig:
    """One [[accounts]] entry; connector-specific keys are kept in ``options``."""

    name: str
    connector: str
    every: timedelta = timedelta(minutes=15)
    cron: str | None = None
    lookback: timedelta = timedelta(days=30)
    series: str | None = None
    enabled: bool = True
    max_wait: timedelta = timedelta(minutes=5)
    options: Mapping[str, Any] = field(default_factory=dict)
    base_dir: Path = Path(".")

    def option(self, key: str, default: Any = None) -> Any:
        """A connector option as written in the config (secrets still as $env:/$file: references)."""
        return self.options.get(key, default)

    def secret(self, key: str) -> str | None:
        """Resolve a secret option ($env:NAME or $file:PATH); None when the key is absent."""
        value = self.options.get(key)
        if value is None:
            return None
        return resolve_secret(str(value), self.base_dir, f"accounts[{self.name}].{key}")


@dataclass(frozen=True)
class Settings:
    """Everything the archiver is configured with."""

    config_path: Path | None
    agency: AgencySettings
    storage: StorageSettings
    retention: RetentionSettings
    accounts: tuple[AccountConfig, ...]
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def base_dir(self) -> Path:
        """Directory that relative paths in the config are relative to."""
        return self.config_path.parent if self.config_path else Path.cwd()

    def account(self, name: str) -> AccountConfig:
        """The named account, or a ConfigError listing the known ones."""
        for acc in self.accounts:
            if acc.name == name:
                return acc
        known = ", ".join(a.name for a in self.accounts) or "none"
        raise ConfigError(f"no account named {name!r} in the config (accounts: {known})")


def resolve_secret(value: str, base_dir: Path, key: str) -> str:
    """Turn '$env:NAME' or '$file:PATH' into the secret; anything else is a ConfigError."""
    m = SECRET_RE.match(value)
    if not m:
        raise ConfigError(f"{key}: secrets must be given as $env:NAME or $file:PATH, not literally")
    kind, ref = m.groups()
    if kind == "env":
        if ref not in os.environ or not os.environ[ref]:
            raise ConfigError(f"{key}: environment variable {ref} is not set")
        return os.environ[ref]
    path = Path(ref)
    if not path.is_absolute():
        path = base_dir / path
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read secret file {path}: {exc.strerror}") from None


def find_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """--config, else $ARCHIVER_CONFIG, else ./archiver.toml."""
    return Path(explicit or os.environ.get("ARCHIVER_CONFIG") or DEFAULT_CONFIG)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    connector_keys: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Load and validate the config file, then apply ARCHIVER_<SECTION>_<KEY> env vars and overrides.

    ``connector_keys`` maps connector name -> {"keys": set, "required": tuple, "secrets": tuple}; when
    given, each account's connector-specific keys are checked against it.
    """
    cfg_path = find_config_path(path)
    env = os.environ if env is None else env
    try:
        raw = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {cfg_path} (pass --config PATH or set ARCHIVER_CONFIG)"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{cfg_path}: not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{cfg_path}: invalid TOML: {exc}") from None
    return settings_from_dict(raw, cfg_path.resolve(), env, overrides, connector_keys)


_SECTIONS: dict[str, set[str]] = {
    "agency": {"name", "bates_prefix", "state", "timezone", "custodian", "holidays", "templates_dir"},
    "storage": {"database_url", "blobs", "index_dir", "exports_dir", "s3_endpoint_url", "s3_region",
                "s3_lock_mode", "s3_lock_days"},
    "retention": {"schedules", "default_series"},
    "scheduler": {"fixity_days", "backoff_max", "misfire_grace"},
    "accounts": set(),
}


def settings_from_dict(
    raw: Mapping[str, Any],
    config_path: Path | None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    connector_keys: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Validate a parsed config mapping (see load_settings)."""
    env = {} if env is None else env
    data: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    for key in data:
        if key not in _SECTIONS:
            raise ConfigError(f"unknown config section [{key}] (known: {', '.join(sorted(_SECTIONS))})")
    for section, keys in _SECTIONS.items():
        if section == "accounts":
            continue
        sec = data.setdefault(section, {})
        if not isinstance(sec, dict):
            raise ConfigError(f"[{section}] must be a table")
        for key in sec:
            if key not in keys:
                raise ConfigError(f"unknown key {section}.{key} (known: {', '.join(sorted(keys))})")
        for key in keys:
            ev = env.get(f"ARCHIVER_{section.upper()}_{key.upper()}")
            if ev is not None:
                sec[key] = ev
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        data.setdefault(section, {})[key] = value

    base = config_path.parent if config_path else Path.cwd()
    agency = _agency(data["agency"])
    storage = _storage(data["storage"], base)
    retention = _retention(data["retention"])
    accounts = _accounts(data.get("accounts", []), base, retention.default_series, connector_keys)
    return Settings(config_path, agency, storage, retention, accounts, scheduler=_scheduler(data["scheduler"]), raw=raw)


def _str(sec: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{sec}.{key} must be a non-empty string, not {value!r}")
    return value


def _agency(sec: dict[str, Any]) -> AgencySettings:
    a = AgencySettings()
    vals: dict[str, Any] = {}
    for key in ("name", "bates_prefix", "state", "timezone", "custodian"):
        if key in sec:
            vals[key] = _str("agency", key, sec[key])
    if "bates_prefix" in vals and not re.fullmatch(r"[A-Z0-9][A-Z0-9-]{0,15}", vals["bates_prefix"]):
        raise ConfigError("agency.bates_prefix must be 1-16 capital letters, digits or '-', e.g. \"APD\"")
    if "state" in vals:
        vals["state"] = vals["state"].upper()
        if not re.fullmatch(r"[A-Z]{2}", vals["state"]):
            raise ConfigError(f"agency.state must be a two-letter state code such as KS or CA, not {sec['state']!r}")
    tz = vals.get("timezone", a.timezone)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"agency.timezone: unknown time zone {tz!r} (use e.g. America/Chicago)") from None
    if "holidays" in sec:
        vals["holidays"] = _holidays(sec["holidays"])
    if "templates_dir" in sec:
        vals["templates_dir"] = _str("agency", "templates_dir", sec["templates_dir"])
    return AgencySettings(**{**a.__dict__, **vals})


def _holidays(hol: Any) -> tuple[str, ...]:
    if not isinstance(hol, list):
        raise ConfigError("agency.holidays must be a list of dates like [\"2026-12-24\"]")
    out = []
    for h in hol:
        # TOML has a native date type: an unquoted 2026-12-24 arrives as a date.
        text = h.isoformat() if isinstance(h, date) and not isinstance(h, datetime) else h
        try:
            if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                raise ValueError
            date.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"agency.holidays: {h!r} is not a date like \"2026-12-24\"") from None
        out.append(text)
    return tuple(out)


def _path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _storage(sec: dict[str, Any], base: Path) -> StorageSettings:
    db = sec.get("database_url", "sqlite:///data/archive.db")
    db = _str("storage", "database_url", db)
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", db):
        raise ConfigError(f"storage.database_url must start with sqlite:/// or postgresql+psycopg://, not {db!r}")
    if db.startswith("sqlite") and db not in ("sqlite://", "sqlite:///:memory:"):
        m = re.match(r"^(sqlite(?:\+\w+)?:///)(.*)$", db)
        if not m or not m.group(2):
            raise ConfigError(f"storage.database_url: cannot read a file path from {db!r}")
        db = m.group(1) + str(_path(base, m.group(2)))
    blobs = _str("storage", "blobs", sec.get("blobs", "data/blobs"))
    if not blobs.startswith("s3://"):
        blobs = str(_path(base, blobs))
    mode = str(sec.get("s3_lock_mode", "COMPLIANCE")).upper()
    if mode not in ("COMPLIANCE", "GOVERNANCE"):
        raise ConfigError(f"storage.s3_lock_mode must be COMPLIANCE or GOVERNANCE, not {mode!r}")
    lock_days = sec.get("s3_lock_days", 730)
    try:
        lock_days = int(lock_days)  # an env override arrives as a string
    except (TypeError, ValueError):
        lock_days = -1
    if isinstance(sec.get("s3_lock_days"), bool) or lock_days < 0:
        raise ConfigError(f"storage.s3_lock_days must be a whole number of days >= 0, not {sec.get('s3_lock_days')!r}")
    for key in ("s3_endpoint_url", "s3_region"):
        if key in sec:
            _str("storage", key, sec[key])
    if "s3_endpoint_url" in sec and not re.match(r"^https?://", sec["s3_endpoint_url"]):
        raise ConfigError(f"storage.s3_endpoint_url must be an http:// or https:// URL, not {sec['s3_endpoint_url']!r}")
    if blobs.startswith("s3://") and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?", blobs):
        raise ConfigError(f"storage.blobs: {blobs!r} is not s3://bucket or s3://bucket/prefix")
    return StorageSettings(
        database_url=db,
        blobs=blobs,
        index_dir=_path(base, _str("storage", "index_dir", sec.get("index_dir", "data/index"))),
        exports_dir=_path(base, _str("storage", "exports_dir", sec.get("exports_dir", "data/exports"))),
        s3_endpoint_url=sec.get("s3_endpoint_url"),
        s3_region=sec.get("s3_region"),
        s3_lock_mode=mode,
        s3_lock_days=lock_days,
    )


def _scheduler(sec: dict[str, Any]) -> SchedulerSettings:
    vals: dict[str, Any] = {}
    if "fixity_days" in sec:
        try:
            vals["fixity_days"] = int(sec["fixity_days"])
        except (TypeError, ValueError):
            vals["fixity_days"] = 0
        if vals["fixity_days"] < 1:
            raise ConfigError(f"scheduler.fixity_days must be a whole number of days >= 1, not {sec['fixity_days']!r}")
    for key in ("backoff_max", "misfire_grace"):
        if key in sec:
            try:
                vals[key] = parse_interval(sec[key])
            except ValueError as exc:
                raise ConfigError(f"scheduler.{key}: {exc}") from None
    return SchedulerSettings(**vals)


def _retention(sec: dict[str, Any]) -> RetentionSettings:
    sch = sec.get("schedules", [])
    if isinstance(sch, str):
        sch = [sch]
    if not isinstance(sch, list) or not all(isinstance(s, str) for s in sch):
        raise ConfigError("retention.schedules must be a list of file patterns like [\"schedules/*.yaml\"]")
    return RetentionSettings(tuple(sch), _str("retention", "default_series",
                                              sec.get("default_series", "social-media-content")))


def _accounts(
    items: Any, base: Path, default_series: str, connector_keys: Mapping[str, Mapping[str, Any]] | None
) -> tuple[AccountConfig, ...]:
    if not isinstance(items, list):
        raise ConfigError("accounts must be written as [[accounts]] tables")
    seen: set[str] = set()
    out = []
    for i, acc in enumerate(items):
        where = f"accounts[{i}]"
        if not isinstance(acc, Mapping):
            raise ConfigError(f"{where} must be a table")
        name = acc.get("name")
        if not isinstance(name, str) or not SLUG_RE.match(name):
            raise ConfigError(f"{where}.name must be a slug of lowercase letters, digits, '-' or '_' (got {name!r})")
        where = f"accounts[{name}]"
        if name in seen:
            raise ConfigError(f"{where}: account name {name!r} is used twice")
        seen.add(name)
        connector = acc.get("connector")
        if not isinstance(connector, str) or not connector:
            raise ConfigError(f"{where}.connector is required (e.g. \"facebook\")")
        vals: dict[str, Any] = {"name": name, "connector": connector, "base_dir": base}
        for key in ("every", "lookback", "max_wait"):
            if key in acc:
                try:
                    vals[key] = parse_interval(acc[key])
                except ValueError as exc:
                    raise ConfigError(f"{where}.{key}: {exc}") from None
        if "cron" in acc:
            vals["cron"] = _str(where, "cron", acc["cron"])
            try:
                from apscheduler.triggers.cron import CronTrigger

                CronTrigger.from_crontab(vals["cron"])
            except ValueError as exc:
                raise ConfigError(f"{where}.cron: {vals['cron']!r} is not a crontab expression ({exc})") from None
        if "enabled" in acc:
            if not isinstance(acc["enabled"], bool):
                raise ConfigError(f"{where}.enabled must be true or false")
            vals["enabled"] = acc["enabled"]
        vals["series"] = _str(where, "series", acc.get("series", default_series))
        options = {k: v for k, v in acc.items() if k not in ACCOUNT_KEYS}
        if connector_keys is not None:
            spec = connector_keys.get(connector)
            if spec is None:
                known = ", ".join(sorted(connector_keys)) or "none installed"
                raise ConfigError(f"{where}.connector: unknown connector {connector!r} (installed: {known})")
            if spec.get("keys") is None:
                spec = {"keys": set(options)}
            for key in options:
                if key not in spec["keys"]:
                    raise ConfigError(
                        f"unknown key {where}.{key} for connector {connector!r} "
                        f"(known: {', '.join(sorted(spec['keys']))})"
                    )
            for key in spec.get("required", ()):
                if key not in options:
                    raise ConfigError(f"{where}.{key} is required by the {connector!r} connector")
            for key in spec.get("secrets", ()):
                if key in options and not (isinstance(options[key], str) and SECRET_RE.match(options[key])):
                    raise ConfigError(f"{where}.{key}: secrets must be given as $env:NAME or $file:PATH, not literally")
        vals["options"] = options
        out.append(AccountConfig(**vals))
    return tuple(out)
