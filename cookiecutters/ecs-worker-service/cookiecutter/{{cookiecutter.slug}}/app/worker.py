"""Long-poll an SQS queue and hand each message to `handler.handle`."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from app.handler import PermanentError

log = logging.getLogger(__name__)

WAIT_SECONDS = 20  # SQS long polling: at most 20 s, and no empty-receive charges meanwhile
BATCH_SIZE = 10  # SQS's maximum per ReceiveMessage


class SqsClient(Protocol):
    """The three calls the worker makes; boto3's SQS client has them, so does a test fake."""

    def receive_message(self, **kwargs: Any) -> dict[str, Any]: ...

    def delete_message_batch(self, **kwargs: Any) -> dict[str, Any]: ...


Handler = Callable[..., None]


def parse_body(raw: str) -> Any:
    """JSON when it parses, the raw string otherwise."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class Worker:
    """Receives batches, runs the handler on each message, deletes what is done."""

    def __init__(self, *, client: SqsClient, queue_url: str, handler: Handler) -> None:
        self._client = client
        self._queue_url = queue_url
        self._handler = handler

    def poll_once(self) -> int:
        """One long poll; returns how many messages were deleted (done or permanently bad)."""
        response = self._client.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=BATCH_SIZE,
            WaitTimeSeconds=WAIT_SECONDS,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        done = []
        for message in response.get("Messages", []):
            message_id = message["MessageId"]
            try:
                self._handler(parse_body(message["Body"]), message_id=message_id)
            except PermanentError as exc:
                log.error("dropping message %s: %s", message_id, exc)
            except Exception:
                # Left on the queue: it returns after the visibility timeout, and the
                # redrive policy moves it to the dead-letter queue after maxReceiveCount.
                log.exception("message %s failed; it will be retried", message_id)
                continue
            done.append({"Id": message_id, "ReceiptHandle": message["ReceiptHandle"]})
        if done:
            result = self._client.delete_message_batch(QueueUrl=self._queue_url, Entries=done)
            for failure in result.get("Failed", []):
                log.warning("could not delete %s: %s", failure.get("Id"), failure.get("Message"))
        return len(done)

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set; a batch in progress is always finished first."""
        log.info("polling %s", self._queue_url)
        while not stop.is_set():
            self.poll_once()
        log.info("stopped")
