from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.config import load_settings

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_scheduler_context_is_read_from_the_overrides() -> None:
    settings = load_settings(
        {
            "SCHEDULED_TIME": "2026-03-02T03:00:00Z",
            "EXECUTION_ID": "d32c5kddcf5bb8c3",
            "ATTEMPT_NUMBER": "2",
        }
    )
    assert settings.scheduled_time == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    assert (settings.execution_id, settings.attempt) == ("d32c5kddcf5bb8c3", 2)


def test_a_manual_run_falls_back_to_now() -> None:
    settings = load_settings({}, now=NOW)
    assert (settings.scheduled_time, settings.execution_id, settings.attempt) == (NOW, "manual", 1)


def test_offsets_are_normalised_to_utc() -> None:
    settings = load_settings({"SCHEDULED_TIME": "2026-03-02T04:00:00+01:00"})
    assert settings.scheduled_time == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "env",
    [
        {"SCHEDULED_TIME": "2026-03-02T03:00:00"},
        {"SCHEDULED_TIME": "not a time"},
        {"ATTEMPT_NUMBER": "0"},
        {"ATTEMPT_NUMBER": "first"},
        {"DRY_RUN": "maybe"},
        {"JOB_TIMEOUT_SECONDS": "-1"},
        {"LOG_LEVEL": "LOUD"},
    ],
)
def test_invalid_values_are_rejected(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        load_settings(env, now=NOW)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SCHEDULED_TIME": "yesterday"}, "SCHEDULED_TIME must be an ISO 8601 time"),
        ({"JOB_TIMEOUT_SECONDS": "1h"}, "JOB_TIMEOUT_SECONDS must be a number"),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_settings(env, now=NOW)
