"""Entry point of the container: ``python -m app``."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from app.handler import handle
from app.worker import Worker


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
    # Imported here, not at module level: the handler and its tests never need the SDK.
    import boto3

    client = boto3.client("sqs", region_name=os.environ.get("AWS_REGION", "{{ cookiecutter.aws_region }}"))
    stop = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        # ECS sends SIGTERM, then SIGKILL after the stop timeout: finish the batch, then exit.
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    Worker(client=client, queue_url=os.environ["QUEUE_URL"], handler=handle).run(stop)


if __name__ == "__main__":
    main()
