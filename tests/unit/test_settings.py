"""Configuration loading: merge, ${ENV} substitution, SCAFFOLDER_* overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaffolder.errors import InputError
from scaffolder.settings import Settings, load_config, load_settings


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_documented_keys(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "a.yaml",
        """
backend:
  baseUrl: http://127.0.0.1:7007
  listen: { host: 127.0.0.1, port: 7007 }
  database: { connection: sqlite:///var/scaffolder.db }
  workingDirectory: ./var/work
scaffolder:
  concurrentTasksLimit: 10
catalog:
  locations:
    - { type: file, target: ./cookiecutters/*/template.yaml }
""",
    )
    settings = load_settings([path], environ={})
    assert settings.base_url == "http://127.0.0.1:7007"
    assert (settings.host, settings.port) == ("127.0.0.1", 7007)
    assert settings.database_url == "sqlite:///var/scaffolder.db"
    assert settings.working_directory == Path("./var/work").absolute()
    assert settings.concurrent_tasks_limit == 10
    assert settings.catalog_locations[0].target == "./cookiecutters/*/template.yaml"


def test_later_files_merge_over_earlier(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.yaml", "backend: {listen: {host: 0.0.0.0, port: 1}}\n")
    b = _write(tmp_path, "b.yaml", "backend: {listen: {port: 2}}\n")
    settings = load_settings([a, b], environ={})
    assert (settings.host, settings.port) == ("0.0.0.0", 2)


def test_env_substitution_and_escape(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "a.yaml",
        "backend: {baseUrl: 'http://${HOST}:7007', database: {connection: '$${LITERAL}'}}\n"
        "scaffolder: {defaultEnvironment: {parameters: {region: '${UNSET}'}}}\n",
    )
    config = load_config([path], environ={"HOST": "example.test"})
    assert config["backend"]["baseUrl"] == "http://example.test:7007"
    assert config["backend"]["database"]["connection"] == "${LITERAL}"
    assert config["scaffolder"]["defaultEnvironment"]["parameters"] == {}


def test_scaffolder_env_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.yaml", "backend: {listen: {port: 7007}}\n")
    settings = load_settings(
        [path],
        environ={
            "SCAFFOLDER_BACKEND__LISTEN__PORT": "7010",
            "SCAFFOLDER_SCAFFOLDER__CONCURRENT_TASKS_LIMIT": "3",
            "SCAFFOLDER_BACKEND__DATABASE__CONNECTION": "sqlite:///x.db",
            "SCAFFOLDER_IGNORED": "1",
        },
    )
    assert settings.port == 7010
    assert settings.concurrent_tasks_limit == 3
    assert settings.database_url == "sqlite:///x.db"


def test_static_tokens_and_bad_values(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "a.yaml",
        "backend: {auth: {externalAccess: [{type: static, options: {token: abcdefgh1, subject: ci}}]}}\n",
    )
    settings = load_settings([path], environ={})
    assert settings.static_tokens[0].token == "abcdefgh1"
    assert settings.static_tokens[0].subject == "ci"
    short = _write(
        tmp_path,
        "b.yaml",
        "backend: {auth: {externalAccess: [{type: static, options: {token: x}}]}}\n",
    )
    with pytest.raises(InputError, match="at least 8 characters"):
        load_settings([short], environ={})
    bad = _write(tmp_path, "c.yaml", "backend: {listen: {port: nope}}\n")
    with pytest.raises(InputError, match=r"backend\.listen\.port"):
        load_settings([bad], environ={})
    with pytest.raises(InputError, match="Cannot read config file"):
        load_settings([tmp_path / "missing.yaml"], environ={})


def test_defaults() -> None:
    settings = Settings.from_config({})
    assert settings.port == 7007
    assert settings.database_url == "sqlite:///var/scaffolder.db"
    assert settings.concurrent_tasks_limit == 10
    assert settings.auth_disabled is False
