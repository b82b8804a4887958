"""The config file: defaults, paths, env overrides, secrets, and one clear error per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.config import load_settings, settings_from_dict
from archiver.errors import ConfigError
from archiver.plugins import ConnectorRegistry

FULL = """
[agency]
name = "Andover Police Department"
bates_prefix = "APD"
state = "KS"
timezone = "America/Chicago"
custodian = "Records Custodian"

[storage]
database_url = "sqlite:///data/archive.db"
blobs = "data/blobs"
index_dir = "data/index"
exports_dir = "data/exports"

[retention]
default_series = "social-media-content"

[[accounts]]
name = "apd-facebook"
connector = "facebook"
page_id = "123456789"
access_token = "$env:APD_FB_TOKEN"
api_base = "http://127.0.0.1:9/v21.0"
every = "15m"
lookback = "30d"
series = "social-media-content"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "archiver.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_design_example_loads_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    reg = ConnectorRegistry.discover()
    s = load_settings(write(tmp_path, FULL), env={}, connector_keys=reg.key_specs())
    assert s.agency.bates_prefix == "APD"
    assert s.storage.database_url == f"sqlite:///{tmp_path}/data/archive.db"
    assert s.storage.blobs == str(tmp_path / "data/blobs")
    acc = s.account("apd-facebook")
    assert acc.every.total_seconds() == 900 and acc.lookback.days == 30
    assert acc.option("page_id") == "123456789"


def test_env_overrides_and_archiver_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path, FULL)
    monkeypatch.setenv("ARCHIVER_CONFIG", str(cfg))
    s = load_settings(None, env={"ARCHIVER_AGENCY_NAME": "Other PD", "ARCHIVER_STORAGE_BLOBS": "/srv/blobs"})
    assert s.agency.name == "Other PD"
    assert s.storage.blobs == "/srv/blobs"


def test_secrets_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token.txt").write_text("filetoken\n")
    s = load_settings(write(tmp_path, FULL.replace("$env:APD_FB_TOKEN", "$file:token.txt")), env={})
    assert s.account("apd-facebook").secret("access_token") == "filetoken"
    s = load_settings(write(tmp_path, FULL), env={})
    monkeypatch.setenv("APD_FB_TOKEN", "envtoken")
    assert s.account("apd-facebook").secret("access_token") == "envtoken"
    monkeypatch.delenv("APD_FB_TOKEN")
    with pytest.raises(ConfigError, match=r"accounts\[apd-facebook\]\.access_token: environment variable APD_FB_TOKEN is not set"):
        s.account("apd-facebook").secret("access_token")


@pytest.mark.parametrize("change, message", [
    (("[agency]", "[agency]\ncolour = 'blue'"), r"unknown key agency\.colour"),
    (("[storage]", "[storage]\nbucket = 'x'"), r"unknown key storage\.bucket"),
    (('every = "15m"', 'every = "soon"'), r"accounts\[apd-facebook\]\.every: 'soon' is not a duration"),
    (('lookback = "30d"', 'lookback = "0d"'), r"accounts\[apd-facebook\]\.lookback: '0d' must be greater"),
    (('state = "KS"', 'state = "Kansas"'), r"agency\.state must be a two-letter"),
    (('timezone = "America/Chicago"', 'timezone = "Mars/Olympus"'), r"agency\.timezone: unknown time zone"),
    (('bates_prefix = "APD"', 'bates_prefix = "../x"'), r"agency\.bates_prefix"),
    (('name = "apd-facebook"', 'name = "APD Facebook!"'), r"accounts\[0\]\.name must be a slug"),
    (('connector = "facebook"', 'connector = "myspace"'), r"unknown connector 'myspace'"),
    (('access_token = "$env:APD_FB_TOKEN"', 'access_token = "EAAB-literal-token"'),
     r"access_token: secrets must be given as \$env:NAME or \$file:PATH"),
    (('page_id = "123456789"', 'page_idd = "123456789"'), r"unknown key accounts\[apd-facebook\]\.page_idd"),
    (('database_url = "sqlite:///data/archive.db"', 'database_url = "mysql://x"'), r"storage\.database_url must start"),
    (("[retention]", "[retention]\nschedules = 5"), r"retention\.schedules must be a list"),
])
def test_bad_values_name_the_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    reg = ConnectorRegistry.discover()
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, FULL.replace(*change)), env={}, connector_keys=reg.key_specs())


def test_missing_required_connector_key(tmp_path: Path) -> None:
    reg = ConnectorRegistry.discover()
    with pytest.raises(ConfigError, match=r"accounts\[apd-facebook\]\.page_id is required"):
        load_settings(write(tmp_path, FULL.replace('page_id = "123456789"\n', "")), env={},
                      connector_keys=reg.key_specs())


def test_duplicate_account_names_and_unknown_section(tmp_path: Path) -> None:
    doubled = FULL + FULL[FULL.index("[[accounts]]"):]
    with pytest.raises(ConfigError, match="used twice"):
        load_settings(write(tmp_path, doubled), env={})
    with pytest.raises(ConfigError, match=r"unknown config section \[extras\]"):
        settings_from_dict({"extras": {}}, None)


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(write(tmp_path, "[agency\nname="), env={})
    (tmp_path / "bad.toml").write_bytes(b"[agency]\nname = \"\xff\"\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_settings(tmp_path / "bad.toml", env={})
