"""The unit of work: replace the body of ``run`` with what this job does.

The example processes the day before the scheduled time, the usual shape of a nightly job:
the day is derived from ``scheduled_time`` rather than the clock, so a retry, a late start or
a manual re-run with ``SCHEDULED_TIME`` set processes the same day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from app.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Result:
    """What a run did, logged as the run's summary."""

    partition: date
    items: int
    written: bool


def run(settings: Settings) -> Result:
    """Process one partition; raise on any failure so the task exits non-zero."""
    partition = settings.scheduled_time.date() - timedelta(days=1)
    log.info("processing", extra={"partition": partition.isoformat()})
    items = 0  # Your job: read the partition's input here and count what it handled.
    if not settings.dry_run:
        pass  # Your job: write the results here, idempotently (keyed on `partition`).
    return Result(partition=partition, items=items, written=not settings.dry_run)
