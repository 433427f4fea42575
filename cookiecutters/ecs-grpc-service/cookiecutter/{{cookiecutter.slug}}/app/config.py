"""Runtime settings, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_PORT = {{ cookiecutter.container_port }}
DEFAULT_MAX_WORKERS = 16
DEFAULT_GRACE_SECONDS = 20.0


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What the server needs to start.

    Attributes:
        host: Interface to bind; ``0.0.0.0`` in the container so the Service Connect proxy
            and the ECS health check can reach it.
        port: Port to bind; must match the task definition's ``grpc`` port mapping.
        max_workers: Size of the thread pool that runs RPC handlers.
        grace_seconds: How long in-flight RPCs may finish after SIGTERM. Keep it below the
            container's ``stopTimeout`` (30 s by default on Fargate).
        log_level: Name of the root log level.
    """

    host: str = "0.0.0.0"  # noqa: S104 - the task's only interface is its awsvpc ENI
    port: int = DEFAULT_PORT
    max_workers: int = DEFAULT_MAX_WORKERS
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    log_level: str = "INFO"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _number(
    env: Mapping[str, str], name: str, default: float, kind: type[float] | type[int]
) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``PORT``, ``HOST``, ``MAX_WORKERS``, ``GRACE_SECONDS``, ``LOG_LEVEL``.

    Raises:
        ValueError: A variable is set but is not a valid value.
    """
    env = os.environ if environ is None else environ
    defaults = Settings()
    settings = Settings(
        host=env.get("HOST", defaults.host),
        port=int(_number(env, "PORT", defaults.port, int)),
        max_workers=int(_number(env, "MAX_WORKERS", defaults.max_workers, int)),
        grace_seconds=_number(env, "GRACE_SECONDS", defaults.grace_seconds, float),
        log_level=env.get("LOG_LEVEL", defaults.log_level).upper(),
    )
    if not 0 <= settings.port <= 65535:
        raise ValueError(f"PORT must be between 0 and 65535, got {settings.port}")
    if settings.max_workers < 1:
        raise ValueError(f"MAX_WORKERS must be at least 1, got {settings.max_workers}")
    return settings
