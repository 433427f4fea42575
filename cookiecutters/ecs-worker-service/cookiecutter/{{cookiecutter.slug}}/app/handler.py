"""The work itself: one message in, nothing out. Pure Python, tested without AWS."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """A message that can never succeed; the worker deletes it instead of retrying."""


def handle(body: Any, *, message_id: str) -> None:
    """Process one message body (parsed JSON when the body is JSON, else the raw string).

    Raise to retry: the message comes back after the queue's visibility timeout and moves
    to the dead-letter queue after {{ cookiecutter.max_receive_count }} receives. Raise
    `PermanentError` to drop a message that retrying cannot fix.
    """
    if not isinstance(body, dict):
        raise PermanentError(f"expected a JSON object, got {type(body).__name__}")
    log.info("processed", extra={"message_id": message_id, "kind": body.get("kind")})
