from __future__ import annotations

import pytest

from app.config import DEFAULT_PORT, load_settings


def test_defaults_bind_every_interface_on_the_service_port() -> None:
    settings = load_settings({})
    assert settings.address == f"0.0.0.0:{DEFAULT_PORT}"


def test_environment_overrides_defaults() -> None:
    settings = load_settings({"PORT": "6000", "MAX_WORKERS": "2", "LOG_LEVEL": "debug"})
    assert (settings.port, settings.max_workers, settings.log_level) == (6000, 2, "DEBUG")


@pytest.mark.parametrize("env", [{"PORT": "70000"}, {"PORT": "http"}, {"MAX_WORKERS": "0"}])
def test_invalid_values_are_rejected(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        load_settings(env)


def test_errors_name_the_variable() -> None:
    with pytest.raises(ValueError, match="PORT must be a number, got 'http'"):
        load_settings({"PORT": "http"})
