"""Runtime settings and the run's identity, read once from the environment.

EventBridge Scheduler fills ``SCHEDULED_TIME``, ``EXECUTION_ID`` and ``ATTEMPT_NUMBER``
through the schedule's container overrides (see infra/service.yaml). They are absent when the
job is started by hand, so each has a fallback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_TIMEOUT_SECONDS = 3300.0
LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What one run needs to know.

    Attributes:
        scheduled_time: The time the schedule fired for (UTC). Retries of the same
            invocation carry the same value, so work keyed on it is idempotent.
        execution_id: Scheduler's id for this invocation attempt, for correlating logs.
        attempt: 1 for the first attempt, higher for Scheduler's retries.
        dry_run: Do everything except the writes.
        timeout_seconds: Give up (exit 124) after this long; 0 disables. Keep it shorter
            than the schedule's interval so runs never overlap.
        log_level: Name of the root log level.
    """

    scheduled_time: datetime
    execution_id: str = "manual"
    attempt: int = 1
    dry_run: bool = False
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    log_level: str = "INFO"


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"SCHEDULED_TIME must be an ISO 8601 time, got {value!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"SCHEDULED_TIME must include a UTC offset, got {value!r}")
    return parsed.astimezone(UTC)


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes"}:
        return True
    if lowered in {"", "0", "false", "no"}:
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def _number(
    env: Mapping[str, str], name: str, default: float, kind: type[float] | type[int]
) -> float:
    raw = env.get(name) or None
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def load_settings(
    environ: Mapping[str, str] | None = None, *, now: datetime | None = None
) -> Settings:
    """Build settings from the environment.

    Args:
        environ: Variables to read; ``os.environ`` when omitted.
        now: Fallback for ``SCHEDULED_TIME``; the current time when omitted.

    Raises:
        ValueError: A variable is set but is not a valid value.
    """
    env = os.environ if environ is None else environ
    raw_time = env.get("SCHEDULED_TIME", "")
    settings = Settings(
        scheduled_time=_parse_time(raw_time) if raw_time else (now or datetime.now(UTC)),
        execution_id=env.get("EXECUTION_ID") or "manual",
        attempt=int(_number(env, "ATTEMPT_NUMBER", 1, int)),
        dry_run=_parse_bool("DRY_RUN", env.get("DRY_RUN", "")),
        timeout_seconds=_number(env, "JOB_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS, float),
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
    )
    if settings.attempt < 1:
        raise ValueError(f"ATTEMPT_NUMBER must be at least 1, got {settings.attempt}")
    if settings.timeout_seconds < 0:
        raise ValueError("JOB_TIMEOUT_SECONDS must not be negative")
    if settings.log_level not in LOG_LEVELS:
        raise ValueError(f"LOG_LEVEL must be one of {sorted(LOG_LEVELS)}")
    return settings
