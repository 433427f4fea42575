"""Fixtures for the embedded catalog: real services on a temp SQLite, catalog files in a dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient

from scaffolder.app import create_app
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings

CATALOG = "/api/catalog"


def component(name: str, **spec: Any) -> dict[str, Any]:
    """A valid Component (owner team-a unless given)."""
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {"type": "service", "lifecycle": "production", "owner": "team-a", **spec},
    }


def group(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Group",
        "metadata": {"name": name},
        "spec": {"type": "team", "children": [], **spec},
    }


def write_yaml(path: Path, *documents: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    path = tmp_path / "catalog"
    path.mkdir()
    return path


@pytest.fixture
def make_catalog(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Services]]:
    """Build services whose catalog reads ``locations`` (no worker, no refresher thread).

    ``catalog`` is merged into the ``catalog`` config key; ``backend`` into ``backend``.
    """
    built: list[Services] = []

    def make(
        locations: list[dict[str, Any]] | None = None,
        *,
        with_worker: bool = False,
        catalog: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        **backend: Any,
    ) -> Services:
        config: dict[str, Any] = {"catalog": {"locations": locations or [], **(catalog or {})}}
        config.update(extra or {})
        services = build_services(make_settings(config, **backend), with_worker=with_worker)
        built.append(services)
        return services

    yield make
    for services in built:
        services.close()


@pytest.fixture
def file_catalog(
    make_catalog: Callable[..., Services], catalog_dir: Path
) -> Callable[..., tuple[Services, FlaskClient]]:
    """Services reading ``catalog_dir/*.yaml``, and a test client on them."""

    def make(**kwargs: Any) -> tuple[Services, FlaskClient]:
        services = make_catalog([{"type": "file", "target": f"{catalog_dir}/*.yaml"}], **kwargs)
        return services, create_app(services=services).test_client()

    return make


def refresh_all(services: Services) -> None:
    """Refresh every location source now (what the refresher thread does on its schedule)."""
    for key in services.catalog.store.source_keys():
        if not key.startswith("provider:"):
            services.catalog.refresh_source(key)
