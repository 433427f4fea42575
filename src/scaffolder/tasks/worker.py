"""The worker pool: claims open tasks, runs them, heartbeats, and stops them on cancel."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaffolder.actions.base import CancelSignal
from scaffolder.tasks.broker import TaskBroker
from scaffolder.tasks.model import ClaimedTask, EventType, TaskStatus
from scaffolder.tasks.runner import Redactor, RunResult, WorkflowRunner
from scaffolder.tasks.workspace import create_workspace, remove_workspace

log = logging.getLogger(__name__)

#: Back-off after the database failed us, so a broken database does not spin a core.
ERROR_BACKOFF_SECONDS = 1.0


@dataclass(kw_only=True)
class _TaskRun:
    """A claimed task as the runner sees it (implements `RunContext`)."""

    task_id: str
    spec: Mapping[str, Any]
    secrets: Mapping[str, str]
    workspace_path: Path
    broker: TaskBroker
    state: dict[str, Any]
    signal: CancelSignal = field(default_factory=CancelSignal)
    is_dry_run: bool = False

    def emit_log(self, body: dict[str, Any]) -> None:
        self.broker.emit(self.task_id, EventType.LOG, body)

    def save_state(self) -> None:
        self.broker.store.save_state(self.task_id, self.state)


class TaskWorker:
    """Runs up to ``concurrency`` tasks at once, each in its own thread."""

    def __init__(
        self,
        *,
        broker: TaskBroker,
        runner: WorkflowRunner,
        working_directory: Path,
        concurrency: int,
        keep_workspaces: bool = False,
        heartbeat_seconds: float = 1.0,
    ) -> None:
        self._broker = broker
        self._runner = runner
        self._working_directory = working_directory
        self._concurrency = concurrency
        self._keep_workspaces = keep_workspaces
        self._heartbeat_seconds = heartbeat_seconds
        self._running: dict[str, _TaskRun] = {}
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        broker.hub.on_cancel(self._cancel_local)

    @property
    def running(self) -> list[str]:
        """Ids of the tasks running in this worker now."""
        with self._lock:
            return list(self._running)

    def start(self) -> None:
        """Start the claim loop and the heartbeat loop (no-op when concurrency is 0)."""
        if self._concurrency <= 0 or self._threads:
            return
        self._working_directory.mkdir(parents=True, exist_ok=True)
        for target, name in ((self._claim_loop, "claim"), (self._heartbeat_loop, "heartbeat")):
            thread = threading.Thread(target=target, name=f"scaffolder-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming, and wait up to ``timeout`` seconds for running tasks to finish."""
        self._stopping.set()
        self._broker.hub.work_available()
        with self._lock:
            self._lock.notify_all()
        # The claim loop first: a claim in flight when we stopped still launches its task,
        # which must be waited for too (else it runs on after the database is closed).
        for thread in self._threads:
            thread.join(timeout=timeout)
        with self._lock:
            self._lock.wait_for(lambda: not self._running, timeout)
        self._threads.clear()

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
        while not self._stopping.wait(self._heartbeat_seconds):
            ids = self.running
            if not ids:
                continue
            try:
                self._broker.store.heartbeat(ids)
                for task_id in self._broker.store.cancelled_among(ids):
                    self._cancel_local(task_id)
            except Exception:
                log.exception("heartbeat failed")

    # --- one task ------------------------------------------------------------------------

    def _launch(self, claimed: ClaimedTask) -> None:
        run = _TaskRun(
            task_id=claimed.id,
            spec=claimed.spec,
            secrets=claimed.secrets,
            workspace_path=self._working_directory / claimed.id,
            broker=self._broker,
            state=claimed.state,
        )
        with self._lock:
            self._running[claimed.id] = run
        thread = threading.Thread(
            target=self._run, args=(run,), name=f"task-{claimed.id[:8]}", daemon=True
        )
        thread.start()

    def _run(self, run: _TaskRun) -> None:
        redact = Redactor(run.secrets)
        try:
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
            try:
                self._broker.complete(
                    run.task_id, TaskStatus(result.status), result.completion_body(redact)
                )
            except Exception:
                log.exception("completing task %s failed", run.task_id)
        finally:
            if not self._keep_workspaces:
                remove_workspace(run.workspace_path)
            with self._lock:
                self._running.pop(run.task_id, None)
                self._lock.notify_all()

    def _cancel_local(self, task_id: str) -> None:
        with self._lock:
            run = self._running.get(task_id)
        if run is not None:
            run.signal.cancel()
