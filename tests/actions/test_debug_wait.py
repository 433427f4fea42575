from __future__ import annotations

import threading
import time

import pytest

from scaffolder.actions.base import CancelSignal
from scaffolder.actions.builtin.debug_wait import create_debug_wait_action
from scaffolder.errors import ScaffolderError
from tests.actions.conftest import RunAction


def test_waits_for_the_sum_of_the_units(run_action: RunAction) -> None:
    started = time.monotonic()

    run = run_action(create_debug_wait_action(), {"seconds": 0.1, "milliseconds": 100})

    assert 0.19 <= time.monotonic() - started < 2
    assert run.lines == []


def test_cancel_stops_the_wait_at_once(run_action: RunAction) -> None:
    signal = CancelSignal()
    timer = threading.Timer(0.05, signal.cancel)
    timer.start()
    started = time.monotonic()
    try:
        run_action(create_debug_wait_action(), {"seconds": 30}, signal=signal)
    finally:
        timer.cancel()

    assert time.monotonic() - started < 1


def test_already_cancelled_returns_immediately(run_action: RunAction) -> None:
    signal = CancelSignal()
    signal.cancel()
    started = time.monotonic()

    # Exactly the maximum is allowed.
    run_action(create_debug_wait_action(), {"minutes": 10}, signal=signal)

    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    "input",
    [{"minutes": 11}, {"seconds": 601}, {"minutes": 10, "milliseconds": 1}],
)
def test_more_than_ten_minutes_is_refused(run_action: RunAction, input: dict[str, float]) -> None:
    with pytest.raises(ScaffolderError) as info:
        run_action(create_debug_wait_action(), input)

    assert info.value.message == (
        "Waiting duration is longer than the maximum threshold of 0 hours, 10 minutes, 0 seconds"
    )
    assert info.value.name == "Error"


def test_not_run_in_dry_run() -> None:
    assert not create_debug_wait_action().supports_dry_run
