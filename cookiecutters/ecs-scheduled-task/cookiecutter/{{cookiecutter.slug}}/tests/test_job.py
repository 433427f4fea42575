from __future__ import annotations

import json
import os
import signal
import time
from datetime import date

import pytest

from app import job
from app.config import Settings

SCHEDULED = {"SCHEDULED_TIME": "2026-03-02T03:00:00Z", "EXECUTION_ID": "abc123"}


def records(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]


def test_the_example_work_processes_the_day_before_the_schedule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert job.main(SCHEDULED) == job.EXIT_OK
    summary = records(capsys)[-1]
    assert summary["message"] == "job succeeded"
    assert summary["partition"] == "2026-03-01"
    assert summary["execution_id"] == "abc123"
    assert summary["written"] is True


def test_dry_run_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert job.main({**SCHEDULED, "DRY_RUN": "true"}) == job.EXIT_OK
    assert records(capsys)[-1]["written"] is False


def test_a_failing_unit_of_work_exits_non_zero_and_logs_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(_settings: Settings) -> None:
        raise RuntimeError("upstream unavailable")

    assert job.main(SCHEDULED, unit_of_work=broken) == job.EXIT_FAILED
    failure = records(capsys)[-1]
    assert failure["message"] == "job failed"
    assert failure["level"] == "ERROR"
    assert "upstream unavailable" in str(failure["exception"])


def test_bad_configuration_exits_2_before_any_work(capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[Settings] = []
    assert job.main({"SCHEDULED_TIME": "yesterday"}, unit_of_work=ran.append) == job.EXIT_CONFIG
    assert ran == []
    assert "invalid configuration" in capsys.readouterr().err


def test_work_that_outlives_its_timeout_exits_124() -> None:
    def slow(_settings: Settings) -> None:
        time.sleep(5)

    started = time.monotonic()
    assert job.main({"JOB_TIMEOUT_SECONDS": "0.2"}, unit_of_work=slow) == job.EXIT_TIMEOUT
    assert time.monotonic() - started < 2


def test_sigterm_stops_the_work_with_exit_143() -> None:
    def stopped(_settings: Settings) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    assert job.main({}, unit_of_work=stopped) == job.EXIT_TERMINATED


def test_signal_handlers_are_restored_after_a_run() -> None:
    before = signal.getsignal(signal.SIGTERM)
    job.main(SCHEDULED, unit_of_work=lambda _settings: None)
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_work_sees_the_scheduled_day_not_the_clock() -> None:
    seen: list[date] = []
    job.main(SCHEDULED, unit_of_work=lambda s: seen.append(s.scheduled_time.date()))
    assert seen == [date(2026, 3, 2)]
