"""Fixtures of the fault tests: the ``fault:*`` actions, and the API without workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from scaffolder.app import create_app
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from tests.faults.harness import install_plugin


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory with the ``fault:*`` actions installed, for a worker's ``PYTHONPATH``."""
    return install_plugin(tmp_path / "site")


@pytest.fixture
def api(make_settings: Callable[..., Settings]) -> Iterator[tuple[Services, FlaskClient]]:
    """The API on the test's database, with no worker: worker processes run the tasks."""
    services = build_services(
        make_settings({"scaffolder": {"concurrentTasksLimit": 0}}), with_worker=False
    )
    if services.broker.listener is not None:
        assert services.broker.listener.wait_connected(10)
    yield services, create_app(services=services).test_client()
    services.close()
