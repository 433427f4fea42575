"""Fixtures shared by the task engine's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from scaffolder.services import Services, build_services
from scaffolder.settings import Settings


@pytest.fixture
def idle(make_settings: Callable[..., Settings]) -> Iterator[Services]:
    """Services with no worker (no janitor or recovery loop either): the test claims,
    recovers or plays the dead worker by hand."""
    services = build_services(
        make_settings({"scaffolder": {"concurrentTasksLimit": 0}}), with_worker=False
    )
    yield services
    services.close()
