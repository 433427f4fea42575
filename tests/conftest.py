"""Shared fixtures: settings on a temp dir, the real services, the Flask app and client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scaffolder.app import create_app
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings, load_config

REPO = Path(__file__).resolve().parent.parent
FIXTURE_TEMPLATES = REPO / "tests" / "fixtures" / "templates"
HELLO_VALUES = {
    "name": "svc-one",
    "description": "First service",
    "owner": "group:default/platform",
    "language": "python",
    "port": 8080,
}


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings on a temp database and working directory, with extra config merged in."""

    def make(extra: dict[str, Any] | None = None, **backend: Any) -> Settings:
        config: dict[str, Any] = {
            "backend": {
                "database": {"connection": f"sqlite:///{tmp_path / 'db.sqlite'}"},
                "workingDirectory": str(tmp_path / "work"),
                "auth": {"dangerouslyDisableDefaultAuthPolicy": True},
                **backend,
            },
            "catalog": {
                "locations": [{"type": "file", "target": f"{FIXTURE_TEMPLATES}/*/template.yaml"}]
            },
        }
        for key, value in (extra or {}).items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        path = tmp_path / f"app-config-{len(list(tmp_path.glob('app-config-*')))}.yaml"
        import yaml

        path.write_text(yaml.safe_dump(config))
        return Settings.from_config(load_config([path], environ={}))

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings)
    yield built
    built.close()


@pytest.fixture
def app(services: Services) -> Flask:
    return create_app(services=services)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def wait_for_status(services: Services, task_id: str, timeout: float = 15.0) -> str:
    """Poll the store until the task is finished; return its status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = services.broker.store.get_task(task_id).status.value
        if status not in ("open", "processing"):
            return status
        time.sleep(0.01)
    raise AssertionError(f"task {task_id} did not finish in {timeout}s")
