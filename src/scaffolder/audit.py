"""The audit trail: who created, cancelled, retried or dry-ran which task, as JSON lines.

Each record goes to the logger ``scaffolder.audit`` (INFO) and, when ``scaffolder.audit.file``
is set, is appended to that file (opened per record, so log rotation needs no signal). The
shape follows Backstage's auditor events: ``eventId``, ``severityLevel``, ``actor``,
``request``, ``meta`` (``actionType``, ``templateRef``, ``taskId``), ``status``, ``error``.
Task parameters are included truncated to ``scaffolder.auditor.taskParameterMaxLength``
characters per string (upstream's key and default; ``-1`` keeps them whole); secrets and
tokens never are.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scaffolder.errors import InputError, ScaffolderError

AUDIT_LOGGER = "scaffolder.audit"
#: Upstream's default for ``scaffolder.auditor.taskParameterMaxLength``.
DEFAULT_TASK_PARAMETER_MAX_LENGTH = 256
_TRUNCATED = "...<truncated>"

log = logging.getLogger(AUDIT_LOGGER)


@dataclass(frozen=True, kw_only=True)
class Actor:
    """Who made the request and from where (``forwarded_for`` as sent, not trusted)."""

    actor_id: str
    ip: str | None = None
    forwarded_for: str | None = None
    user_agent: str | None = None


class Auditor:
    """Writes audit records."""

    def __init__(
        self,
        *,
        file: Path | None = None,
        parameter_max_length: int = DEFAULT_TASK_PARAMETER_MAX_LENGTH,
    ) -> None:
        self._file = file
        self._max_length = parameter_max_length
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Auditor:
        """``scaffolder.audit.file`` and ``scaffolder.auditor.taskParameterMaxLength``."""
        scaffolder = config.get("scaffolder") or {}
        audit = scaffolder.get("audit") or {}
        auditor = scaffolder.get("auditor") or {}
        max_length = auditor.get("taskParameterMaxLength", DEFAULT_TASK_PARAMETER_MAX_LENGTH)
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < -1:
            raise InputError(
                "Invalid configuration for 'scaffolder.auditor.taskParameterMaxLength', got "
                f"{max_length}. Must be a positive integer or -1 to disable truncation."
            )
        file = audit.get("file")
        if file is not None and not isinstance(file, str):
            raise InputError("scaffolder.audit.file must be a path")
        return cls(file=Path(file).absolute() if file else None, parameter_max_length=max_length)

    @contextmanager
    def task_event(
        self,
        action_type: str,
        *,
        actor: Actor,
        request: Mapping[str, str],
        **meta: Any,
    ) -> Iterator[dict[str, Any]]:
        """Record an action on a task once it has succeeded or failed.

        The body may add to the yielded ``meta`` (the new task's id, say). ``parameters`` in
        ``meta`` are truncated.
        """
        record_meta: dict[str, Any] = {"actionType": action_type}
        for key, value in meta.items():
            if value is not None:
                record_meta[key] = self.truncate(value) if key == "parameters" else value
        try:
            yield record_meta
        except Exception as exc:
            self.write(
                event_id="task",
                actor=actor,
                request=request,
                meta=record_meta,
                status="failed",
                error=exc,
            )
            raise
        self.write(event_id="task", actor=actor, request=request, meta=record_meta)

    def write(
        self,
        *,
        event_id: str,
        actor: Actor,
        request: Mapping[str, str],
        meta: Mapping[str, Any],
        status: str = "succeeded",
        error: BaseException | None = None,
    ) -> None:
        """Write one record."""
        actor_json: dict[str, Any] = {"actorId": actor.actor_id}
        for key, value in (
            ("ip", actor.ip),
            ("forwardedFor", actor.forwarded_for),
            ("userAgent", actor.user_agent),
        ):
            if value:
                actor_json[key] = value
        record: dict[str, Any] = {
            "timestamp": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "plugin": "scaffolder",
            "eventId": event_id,
            "severityLevel": "medium",
            "actor": actor_json,
            "request": dict(request),
            "meta": dict(meta),
            "status": status,
        }
        if error is not None:
            record["error"] = {
                "name": error.name if isinstance(error, ScaffolderError) else type(error).__name__,
                "message": error.message if isinstance(error, ScaffolderError) else str(error),
            }
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)
        log.info(line)
        if self._file is not None:
            with self._lock:
                try:
                    self._file.parent.mkdir(parents=True, exist_ok=True)
                    with self._file.open("a", encoding="utf-8") as out:
                        out.write(line + "\n")
                except OSError:
                    logging.getLogger(__name__).exception("cannot append to %s", self._file)

    def truncate(self, value: Any) -> Any:
        """Strings longer than the limit cut, with upstream's ``...<truncated>`` marker."""
        if self._max_length == -1:
            return value
        if isinstance(value, str):
            if len(value) > self._max_length:
                return value[: self._max_length] + _TRUNCATED
            return value
        if isinstance(value, list):
            return [self.truncate(v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): self.truncate(v) for k, v in value.items()}
        return value
