"""Task records and their wire form (Backstage's SerializedTask and SerializedTaskEvent)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


class TaskStatus(enum.StrEnum):
    """Status of a task (Backstage's TaskStatus enum)."""

    OPEN = "open"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


#: Statuses a task can be retried from.
TERMINAL_STATUSES = (
    TaskStatus.CANCELLED,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.SKIPPED,
)


class EventType(enum.StrEnum):
    """Type of a task event."""

    LOG = "log"
    COMPLETION = "completion"
    CANCELLED = "cancelled"
    RECOVERED = "recovered"


def utcnow() -> datetime:
    """Now, as the naive UTC datetime the tables store."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(value: datetime | None) -> str | None:
    """JavaScript's ``Date.toISOString()`` form: ``2026-11-27T17:03:26.123Z``."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def dumps(value: Any) -> str:
    """Compact JSON, as ``JSON.stringify`` writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def is_recoverable(spec: dict[str, Any]) -> bool:
    """Whether the template asked for ``EXPERIMENTAL_recovery: startOver``."""
    recovery = spec.get("EXPERIMENTAL_recovery")
    return isinstance(recovery, dict) and recovery.get("EXPERIMENTAL_strategy") == "startOver"


@dataclass(frozen=True, kw_only=True)
class Task:
    """A task row, secrets and state excluded."""

    id: str
    spec: dict[str, Any]
    status: TaskStatus
    created_at: datetime
    last_heartbeat_at: datetime | None
    created_by: str | None

    def to_json(self) -> dict[str, Any]:
        """SerializedTask: ``createdBy`` is left out when there is none."""
        body: dict[str, Any] = {
            "id": self.id,
            "spec": self.spec,
            "status": self.status.value,
            "createdAt": iso(self.created_at),
            "lastHeartbeatAt": iso(self.last_heartbeat_at),
        }
        if self.created_by is not None:
            body["createdBy"] = self.created_by
        return body


@dataclass(frozen=True, kw_only=True)
class TaskEvent:
    """One task event; ``id`` is from the one global event sequence."""

    id: int
    task_id: str
    type: EventType
    body: dict[str, Any]
    created_at: datetime

    def to_json(self, *, recoverable: bool) -> dict[str, Any]:
        """SerializedTaskEvent, in Backstage's key order."""
        return {
            "id": self.id,
            "isTaskRecoverable": recoverable,
            "taskId": self.task_id,
            "body": self.body,
            "type": self.type.value,
            "createdAt": iso(self.created_at),
        }


@dataclass(frozen=True, kw_only=True)
class ClaimedTask:
    """A task a worker has claimed: what the runner needs to run it."""

    id: str
    spec: dict[str, Any]
    secrets: dict[str, str]
    created_by: str | None
    state: dict[str, Any]
    #: Id of the task's last ``recovered`` event when it was claimed (0: none). A newer one
    #: means the task was taken from this run (recovered or handed back): the run may then
    #: neither complete it nor go on.
    generation: int = 0
    #: When the task was created, and whether this is its first run (no events yet): the
    #: claim latency metric counts first runs only.
    created_at: datetime | None = None
    first_run: bool = False


@dataclass(frozen=True, kw_only=True)
class RecoveredTask:
    """A task a recovery pass (or a shutting-down worker) took back from its run."""

    id: str
    #: ``startOver``: reopened for another run; ``none``: failed.
    strategy: str
    reopened: bool
