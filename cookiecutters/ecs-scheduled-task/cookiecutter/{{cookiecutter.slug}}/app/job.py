"""The job's entry point: one unit of work, then an exit status ECS records.

Exit status: 0 done, 1 the work failed, 2 bad configuration, 124 timed out, 143 stopped by
SIGTERM (``aws ecs stop-task``, or Fargate capacity reclaimed). The status is visible as the
container's ``exitCode`` in ``aws ecs describe-tasks`` and in the task's stopped reason.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from types import FrameType

from app import logs, work
from app.config import Settings, load_settings

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_TIMEOUT = 124
EXIT_TERMINATED = 143


class _Timeout(BaseException):
    """Raised in the main thread by SIGALRM; a BaseException so work can't swallow it."""


class _Terminated(BaseException):
    """Raised in the main thread by SIGTERM."""


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _Timeout


def _on_term(_signum: int, _frame: FrameType | None) -> None:
    raise _Terminated


def main(
    environ: Mapping[str, str] | None = None,
    *,
    unit_of_work: Callable[[Settings], object] = work.run,
) -> int:
    """Run one unit of work and return the process exit status.

    Args:
        environ: Environment to read settings from; ``os.environ`` when omitted.
        unit_of_work: The work to run; the tests pass their own.
    """
    try:
        settings = load_settings(environ)
    except ValueError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(settings.log_level)
    run_fields = {
        "scheduled_time": settings.scheduled_time.isoformat(),
        "execution_id": settings.execution_id,
        "attempt": settings.attempt,
        "dry_run": settings.dry_run,
    }
    previous_term = signal.signal(signal.SIGTERM, _on_term)
    previous_alarm = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout_seconds)
    log.info("job started", extra=run_fields)
    try:
        result = unit_of_work(settings)
    except _Timeout:
        log.error("job timed out", extra={**run_fields, "timeout": settings.timeout_seconds})
        return EXIT_TIMEOUT
    except _Terminated:
        log.warning("job stopped by SIGTERM", extra=run_fields)
        return EXIT_TERMINATED
    except Exception:
        log.exception("job failed", extra=run_fields)
        return EXIT_FAILED
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
        signal.signal(signal.SIGTERM, previous_term)
    is_record = is_dataclass(result) and not isinstance(result, type)
    summary = asdict(result) if is_record else {"result": result}
    log.info("job succeeded", extra={**run_fields, **summary})
    return EXIT_OK
