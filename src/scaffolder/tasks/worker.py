"""The worker pool: claims open tasks, runs them, heartbeats, and stops them on cancel.

Four loops run beside the tasks: claiming (while there is room), heartbeating the running
tasks (and hearing of cancels and of tasks taken from us), recovering tasks whose worker
died (a heartbeat older than the stale timeout; CONTRACT §11.6), and the stale-task janitor
(a heartbeat older than ``scaffolder.taskTimeout``: the task fails; §11.4). `TaskWorker.stop`
drains: no new claims, running tasks get a grace period, then whatever still runs is handed
back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from scaffolder.actions.base import CancelSignal
from scaffolder.errors import ConflictError
from scaffolder.settings import (
    DEFAULT_RECOVERY_STALE_SECONDS,
    DEFAULT_SHUTDOWN_GRACE_SECONDS,
    DEFAULT_TASK_TIMEOUT_JANITOR_SECONDS,
    DEFAULT_TASK_TIMEOUT_SECONDS,
)
from scaffolder.tasks.broker import TaskBroker
from scaffolder.tasks.model import ClaimedTask, EventType, TaskStatus, utcnow
from scaffolder.tasks.runner import Redactor, RunResult, WorkflowRunner
from scaffolder.tasks.workspace import create_workspace, remove_workspace

log = logging.getLogger(__name__)

#: Back-off after the database failed us, so a broken database does not spin a core.
ERROR_BACKOFF_SECONDS = 1.0
#: Upstream looks for stale tasks every 10 s. A shorter stale timeout is looked for three
#: times per timeout, so a dead worker's task waits at most a third longer than the timeout.
RECOVERY_INTERVAL_SECONDS = 10.0
#: After the grace period, how long cancelled runs get to stop (and remove their workspace)
#: before their tasks are handed back.
RELEASE_WAIT_SECONDS = 5.0


@dataclass(kw_only=True)
class _TaskRun:
    """A claimed task as the runner sees it (implements `RunContext`)."""

    task_id: str
    spec: Mapping[str, Any]
    secrets: Mapping[str, str]
    workspace_path: Path
    broker: TaskBroker
    state: dict[str, Any]
    generation: int = 0
    signal: CancelSignal = field(default_factory=CancelSignal)
    is_dry_run: bool = False
    #: Set when the task is no longer this run's (handed back, or recovered by another
    #: process): the run stops, and nothing it still says reaches the task's log.
    released: threading.Event = field(default_factory=threading.Event)
    #: Set when the run is over (workspace removed, task completed or not).
    finished: threading.Event = field(default_factory=threading.Event)
    #: An earlier run of the same task in this process, taken from it (recovered while it was
    #: alive) and told to stop: this run waits for it, since they share a workspace.
    previous: _TaskRun | None = None

    def emit_log(self, body: dict[str, Any]) -> None:
        if not self.released.is_set():
            self.broker.emit(self.task_id, EventType.LOG, body)

    def save_state(self) -> None:
        # Even after a release: a checkpoint records a side effect that did happen.
        self.broker.store.save_state(self.task_id, self.state)

    def load_workspace(self) -> bytes | None:
        return self.broker.store.load_workspace(self.task_id)

    def save_workspace(self, archive: bytes | None) -> None:
        # Refused once the task is no longer this run's (its generation is past).
        self.broker.store.save_workspace(
            self.task_id, self.state, archive, generation=self.generation
        )


class TaskWorker:
    """Runs up to ``concurrency`` tasks at once, each in its own thread.

    Args:
        recovery_stale_seconds: recover tasks whose heartbeat is older than this (any
            process's, this one's included after a restart); ``None`` turns recovery off.
        shutdown_grace_seconds: what `stop` gives running tasks before handing them back.
        graceful_shutdown: ``False`` (``scaffolder.EXPERIMENTAL_gracefulShutdown: false``):
            `stop` hands running tasks back at once, whatever ``shutdown_grace_seconds``.
        task_timeout_seconds: the janitor fails tasks whose heartbeat is older than this.
        janitor_seconds: how often the janitor looks.
    """

    def __init__(
        self,
        *,
        broker: TaskBroker,
        runner: WorkflowRunner,
        working_directory: Path,
        concurrency: int,
        keep_workspaces: bool = False,
        heartbeat_seconds: float = 1.0,
        recovery_stale_seconds: float | None = DEFAULT_RECOVERY_STALE_SECONDS,
        shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS,
        graceful_shutdown: bool = True,
        task_timeout_seconds: float = DEFAULT_TASK_TIMEOUT_SECONDS,
        janitor_seconds: float = DEFAULT_TASK_TIMEOUT_JANITOR_SECONDS,
    ) -> None:
        self._broker = broker
        self._runner = runner
        self._working_directory = working_directory
        self._concurrency = concurrency
        self._keep_workspaces = keep_workspaces
        self._heartbeat_seconds = heartbeat_seconds
        self._recovery_stale_seconds = recovery_stale_seconds
        self._shutdown_grace_seconds = shutdown_grace_seconds if graceful_shutdown else 0.0
        self._graceful_shutdown = graceful_shutdown
        self._task_timeout_seconds = task_timeout_seconds
        self._janitor_seconds = janitor_seconds
        self._running: dict[str, _TaskRun] = {}
        self._lock = threading.Condition()
        self._stopping = threading.Event()  # no more claims
        self._stopped = threading.Event()  # heartbeat and recovery end too
        self._claim_thread: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        broker.hub.on_cancel(self._cancel_local)

    @property
    def running(self) -> list[str]:
        """Ids of the tasks running in this worker now."""
        with self._lock:
            return list(self._running)

    def start(self) -> None:
        """Start the claim, heartbeat, janitor and recovery loops (no-op when concurrency is 0)."""
        if self._concurrency <= 0 or self._threads:
            return
        self._working_directory.mkdir(parents=True, exist_ok=True)
        loops = [
            (self._claim_loop, "claim"),
            (self._heartbeat_loop, "heartbeat"),
            (self._janitor_loop, "janitor"),
        ]
        if self._recovery_stale_seconds is not None:
            loops.append((self._recovery_loop, "recovery"))
        for target, name in loops:
            thread = threading.Thread(target=target, name=f"scaffolder-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
            if name == "claim":
                self._claim_thread = thread

    def stop(self, timeout: float | None = None) -> None:
        """Drain: stop claiming, let running tasks finish, hand back the rest.

        Running tasks get ``timeout`` seconds (default: the shutdown grace period). Then each
        task still running is cancelled here and handed back: a ``startOver`` task is reopened
        for another worker, any other fails with a message saying why. None is left
        ``processing``.
        """
        grace = self._shutdown_grace_seconds if timeout is None else timeout
        deadline = time.monotonic() + grace
        self._stopping.set()
        self._broker.hub.work_available()
        with self._lock:
            self._lock.notify_all()
        # The claim loop first: a claim in flight when we stopped still launches its task,
        # which must be waited for too (else it runs on after the database is closed).
        if self._claim_thread is not None:
            self._claim_thread.join(timeout=max(grace, ERROR_BACKOFF_SECONDS))
        with self._lock:
            self._lock.wait_for(lambda: not self._running, max(deadline - time.monotonic(), 0.0))
            left = list(self._running.values())
        if left:
            self._hand_back(left, grace)
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout=ERROR_BACKOFF_SECONDS + self._heartbeat_seconds)
        self._threads.clear()
        self._claim_thread = None

    def _hand_back(self, runs: list[_TaskRun], grace: float) -> None:
        for run in runs:
            run.released.set()
            run.signal.cancel()
        with self._lock:
            self._lock.wait_for(
                lambda: not any(r.task_id in self._running for r in runs), RELEASE_WAIT_SECONDS
            )
        why = (
            f"the task did not finish within the shutdown grace period ({grace:g} s, "
            "scaffolder.shutdownGracePeriod)"
            if self._graceful_shutdown
            else "it does not wait for running tasks (scaffolder.EXPERIMENTAL_gracefulShutdown: "
            "false)"
        )
        reason = (
            f"The task failed because its worker shut down and {why}. Its template does not "
            "set EXPERIMENTAL_recovery.EXPERIMENTAL_strategy: startOver, so it was not handed "
            "to another worker; retry it to run it again"
        )
        for run in runs:
            try:
                released = self._broker.release(
                    run.task_id, generation=run.generation, reason=reason
                )
            except Exception:
                log.exception("handing back task %s failed", run.task_id)
                continue
            if released is not None:
                log.warning(
                    "shutting down: task %s %s",
                    run.task_id,
                    "reopened for another worker" if released.reopened else "failed",
                )

    # --- loops ---------------------------------------------------------------------------

    def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                self._lock.wait_for(
                    lambda: len(self._running) < self._concurrency or self._stopping.is_set()
                )
            if self._stopping.is_set():
                return
            generation = self._broker.hub.work_generation
            try:
                claimed = self._broker.store.claim_task()
            except Exception:
                log.exception("claiming a task failed")
                self._stopping.wait(ERROR_BACKOFF_SECONDS)
                continue
            if claimed is None:
                # Another process's dispatch wakes us only through PostgreSQL's NOTIFY; the
                # broker says how long we may sleep without it.
                self._broker.hub.wait_for_work(self._broker.poll_seconds, since=generation)
                continue
            self._launch(claimed)

    def _heartbeat_loop(self) -> None:
        while not self._stopped.wait(self._heartbeat_seconds):
            with self._lock:
                running = {
                    task_id: run
                    for task_id, run in self._running.items()
                    if not run.released.is_set()
                }
            if not running:
                continue
            runs = {task_id: run.generation for task_id, run in running.items()}
            try:
                self._broker.store.heartbeat(runs)
                cancelled, lost = self._broker.store.run_signals(runs)
            except Exception:
                log.exception("heartbeat failed")
                continue
            for task_id in cancelled:
                self._cancel_local(task_id)
            for task_id in lost:
                # That run, not whichever runs the task now (it may have been claimed again).
                self._lose_run(running[task_id])

    def _recovery_loop(self) -> None:
        stale = self._recovery_stale_seconds
        assert stale is not None
        interval = min(RECOVERY_INTERVAL_SECONDS, max(stale / 3, 0.1))
        while not self._stopped.wait(interval):
            if self._stopping.is_set():
                continue  # shutting down: the other workers recover
            try:
                recovered = self._broker.recover_stale(stale)
            except Exception:
                log.exception("recovering stale tasks failed")
                continue
            for task in recovered:
                log.warning(
                    "recovered task %s (no heartbeat for %g s): %s",
                    task.id,
                    stale,
                    "reopened to start over" if task.reopened else "failed",
                )

    def _janitor_loop(self) -> None:
        # At start too: a deployment coming back after an outage closes its stale tasks now.
        while True:
            if not self._stopping.is_set():
                try:
                    closed = self._broker.store.close_stale_tasks(
                        utcnow() - timedelta(seconds=self._task_timeout_seconds)
                    )
                except Exception:
                    log.exception("closing stale tasks failed")
                    closed = []
                for task_id in closed:
                    self._broker.hub.published(task_id)
                    log.warning(
                        "closed stale task %s (no heartbeat for %g s, scaffolder.taskTimeout)",
                        task_id,
                        self._task_timeout_seconds,
                    )
            if self._stopped.wait(self._janitor_seconds):
                return

    # --- one task ------------------------------------------------------------------------

    def _launch(self, claimed: ClaimedTask) -> None:
        self._runner.claimed(claimed)
        run = _TaskRun(
            task_id=claimed.id,
            spec=claimed.spec,
            secrets=claimed.secrets,
            workspace_path=self._working_directory / claimed.id,
            broker=self._broker,
            state=claimed.state,
            generation=claimed.generation,
        )
        with self._lock:
            run.previous = self._running.get(claimed.id)
            self._running[claimed.id] = run
        if run.previous is not None:
            self._lose_run(run.previous)
        thread = threading.Thread(
            target=self._run, args=(run,), name=f"task-{claimed.id[:8]}", daemon=True
        )
        thread.start()

    def _run(self, run: _TaskRun) -> None:
        redact = Redactor(run.secrets)
        try:
            previous = run.previous
            while previous is not None and not previous.finished.wait(0.05):
                if run.signal.cancelled:
                    break
            try:
                create_workspace(self._working_directory, run.task_id)
                result = self._runner.execute(run)
            except Exception as exc:  # a bug in the runner must not kill the worker
                log.exception("task %s crashed", run.task_id)
                result = RunResult(status="failed", error=exc)
            # The workspace goes before the task is reported finished: whoever sees the final
            # status can rely on nothing being left behind.
            if not self._keep_workspaces:
                remove_workspace(run.workspace_path)
            if run.released.is_set():
                return  # handed back or recovered elsewhere: not ours to complete
            try:
                self._broker.complete(
                    run.task_id,
                    TaskStatus(result.status),
                    result.completion_body(redact),
                    generation=run.generation,
                    # The completed steps a re-run skips, stored with the completion (a run
                    # that did not complete stored them with its workspace already).
                    state=run.state if run.state.get("steps") else None,
                )
            except ConflictError as exc:
                log.warning("task %s was not completed here: %s", run.task_id, exc.message)
            except Exception:
                log.exception("completing task %s failed", run.task_id)
        finally:
            if not self._keep_workspaces:
                remove_workspace(run.workspace_path)
            with self._lock:
                if self._running.get(run.task_id) is run:
                    del self._running[run.task_id]
                self._lock.notify_all()
            run.previous = None
            run.finished.set()

    def _cancel_local(self, task_id: str) -> None:
        with self._lock:
            run = self._running.get(task_id)
        if run is not None:
            run.signal.cancel()

    def _lose_run(self, run: _TaskRun) -> None:
        """The run's task was recovered (by any process) while it ran here: stop the run."""
        if run.released.is_set():
            return
        log.warning(
            "task %s was recovered (stale heartbeat?); stopping its earlier run here", run.task_id
        )
        run.released.set()
        run.signal.cancel()
