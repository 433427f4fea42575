"""``scaffolder.EXPERIMENTAL_gracefulShutdown`` (CONTRACT §11.9): ``false`` does not wait for
running tasks at shutdown; they are handed back at once (``startOver`` reopened, the others
failed with a message naming the key). Absent or ``true`` drains (``test_recovery``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scaffolder.services import build_services
from scaffolder.settings import Settings
from scaffolder.tasks.model import TaskStatus
from tests.faults.harness import all_events
from tests.tasks.test_recovery import stop_while_two_tasks_run

pytestmark = pytest.mark.both_engines


def test_graceful_shutdown_false_hands_running_tasks_back_without_waiting(
    make_settings: Callable[..., Settings],
) -> None:
    # The default grace period (20 s) would otherwise let the tasks run on, and the failed
    # one's message would name scaffolder.shutdownGracePeriod.
    services = build_services(
        make_settings({"scaffolder": {"EXPERIMENTAL_gracefulShutdown": False}})
    )
    try:
        again, once = stop_while_two_tasks_run(services)
        worker = services.worker
        assert worker is not None
        store = services.broker.store
        assert worker.running == []
        assert store.get_task(again).status is TaskStatus.OPEN
        assert all_events(store, again)[-1] == ("recovered", {"recoverStrategy": "startOver"})
        assert store.get_task(once).status is TaskStatus.FAILED
        completion = all_events(store, once)[-1]
        assert completion[0] == "completion"
        message = completion[1]["error"]["message"]
        assert "scaffolder.EXPERIMENTAL_gracefulShutdown: false" in message
        assert "shutdownGracePeriod" not in message
    finally:
        services.close()
