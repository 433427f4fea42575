"""The recovery and shutdown keys: upstream's names, defaults and duration forms."""

from __future__ import annotations

from typing import Any

import pytest

from scaffolder.errors import InputError
from scaffolder.settings import Settings


def _settings(scaffolder: dict[str, Any]) -> Settings:
    return Settings.from_config({"scaffolder": scaffolder})


def test_defaults() -> None:
    settings = _settings({})
    assert settings.task_recovery_enabled is True
    assert settings.task_recovery_stale_seconds == 30.0
    assert settings.shutdown_grace_seconds == 20.0
    assert settings.task_timeout_seconds == 24 * 3600.0
    assert settings.task_timeout_janitor_seconds == 300.0
    assert settings.graceful_shutdown is True
    assert settings.task_recovery_workspace_max_bytes == 64 * 1024 * 1024


@pytest.mark.parametrize("value", [0, 1024, "2048"])
def test_workspace_max_bytes(value: Any) -> None:
    settings = _settings({"taskRecovery": {"workspaceMaxBytes": value}})
    assert settings.task_recovery_workspace_max_bytes == int(value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ({"seconds": 45}, 45.0),
        ({"minutes": 1, "seconds": 30}, 90.0),
        ({"milliseconds": 1500}, 1.5),
        ("PT2M", 120.0),
        ("PT0.5S", 0.5),
        ("P1DT1H", 90000.0),
    ],
)
def test_stale_timeout_forms(value: Any, seconds: float) -> None:
    settings = _settings({"taskRecovery": {"staleTimeout": value}})
    assert settings.task_recovery_stale_seconds == seconds


def test_upstreams_older_keys_are_fallbacks() -> None:
    settings = _settings(
        {"EXPERIMENTAL_recoverTasks": False, "EXPERIMENTAL_recoverTasksTimeout": {"minutes": 2}}
    )
    assert settings.task_recovery_enabled is False
    assert settings.task_recovery_stale_seconds == 120.0
    newer = _settings({"EXPERIMENTAL_recoverTasks": False, "taskRecovery": {"enabled": True}})
    assert newer.task_recovery_enabled is True


@pytest.mark.parametrize(
    ("value", "seconds"),
    [({"hours": 2}, 7200.0), ("PT90M", 5400.0), ({"days": 1, "minutes": 30}, 88200.0)],
)
def test_task_timeout_and_janitor_frequency_forms(value: Any, seconds: float) -> None:
    settings = _settings({"taskTimeout": value, "taskTimeoutJanitorFrequency": value})
    assert settings.task_timeout_seconds == seconds
    assert settings.task_timeout_janitor_seconds == seconds


def test_grace_period_may_be_zero() -> None:
    assert _settings({"shutdownGracePeriod": {"seconds": 0}}).shutdown_grace_seconds == 0.0


def test_graceful_shutdown_false_means_no_grace_period() -> None:
    off = _settings({"EXPERIMENTAL_gracefulShutdown": False})
    assert off.graceful_shutdown is False
    assert off.shutdown_grace_seconds == 0.0
    explicit_zero = {"EXPERIMENTAL_gracefulShutdown": False, "shutdownGracePeriod": "PT0S"}
    assert _settings(explicit_zero).shutdown_grace_seconds == 0.0
    on = _settings({"EXPERIMENTAL_gracefulShutdown": True, "shutdownGracePeriod": "PT5S"})
    assert on.graceful_shutdown is True
    assert on.shutdown_grace_seconds == 5.0
    assert _settings({"EXPERIMENTAL_gracefulShutdown": True}).shutdown_grace_seconds == 20.0


def test_graceful_shutdown_false_with_a_grace_period_is_refused() -> None:
    with pytest.raises(InputError, match="EXPERIMENTAL_gracefulShutdown is false"):
        _settings({"EXPERIMENTAL_gracefulShutdown": False, "shutdownGracePeriod": {"seconds": 5}})


@pytest.mark.parametrize(
    "scaffolder",
    [
        {"taskRecovery": {"staleTimeout": 30}},
        {"taskRecovery": {"staleTimeout": {"seconds": 0}}},
        {"taskRecovery": {"staleTimeout": {"fortnights": 1}}},
        {"taskRecovery": {"staleTimeout": "30s"}},
        {"taskRecovery": {"enabled": "yes"}},
        {"shutdownGracePeriod": {"seconds": -1}},
        {"taskTimeout": {"seconds": 0}},
        {"taskTimeout": 3600},
        {"taskTimeoutJanitorFrequency": "5m"},
        {"EXPERIMENTAL_gracefulShutdown": "false"},
        {"taskRecovery": {"workspaceMaxBytes": -1}},
        {"taskRecovery": {"workspaceMaxBytes": "64MiB"}},
        {"taskRecovery": {"workspaceMaxBytes": True}},
    ],
)
def test_bad_values_are_refused_with_the_key(scaffolder: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="scaffolder"):
        _settings(scaffolder)
