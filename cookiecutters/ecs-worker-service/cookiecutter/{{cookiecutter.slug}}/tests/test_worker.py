from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from app.handler import PermanentError
from app.worker import Worker, parse_body

ROOT = Path(__file__).resolve().parent.parent
QUEUE_URL = "https://sqs.{{ cookiecutter.aws_region }}.amazonaws.com/123456789012/{{ cookiecutter.slug }}"


class FakeSqs:
    """Serves queued batches, records deletes; stands in for boto3's SQS client."""

    def __init__(self, *batches):
        self.batches = list(batches)
        self.receives = []
        self.deleted = []

    def receive_message(self, **kwargs):
        self.receives.append(kwargs)
        return {"Messages": self.batches.pop(0)} if self.batches else {}

    def delete_message_batch(self, **kwargs):
        assert kwargs["QueueUrl"] == QUEUE_URL
        self.deleted.extend(entry["Id"] for entry in kwargs["Entries"])
        return {"Successful": kwargs["Entries"], "Failed": []}


def message(message_id, body):
    return {"MessageId": message_id, "ReceiptHandle": f"rh-{message_id}", "Body": body}


def test_done_and_permanently_bad_messages_are_deleted_failures_stay():
    def handler(body, *, message_id):
        if body == {"fail": True}:
            raise RuntimeError("downstream is down")
        if body == "garbage":
            raise PermanentError("not an object")

    sqs = FakeSqs(
        [
            message("ok", json.dumps({"kind": "x"})),
            message("retry", json.dumps({"fail": True})),
            message("bad", "garbage"),
        ]
    )
    assert Worker(client=sqs, queue_url=QUEUE_URL, handler=handler).poll_once() == 2
    assert sqs.deleted == ["ok", "bad"]


def test_long_polls_a_full_batch():
    sqs = FakeSqs()
    Worker(client=sqs, queue_url=QUEUE_URL, handler=lambda body, *, message_id: None).poll_once()
    assert sqs.receives[0]["WaitTimeSeconds"] == 20
    assert sqs.receives[0]["MaxNumberOfMessages"] == 10


def test_run_stops_when_asked():
    stop = threading.Event()
    seen = []

    def handler(body, *, message_id):
        seen.append(message_id)
        stop.set()

    sqs = FakeSqs([message("a", "{}")], [message("b", "{}")])
    Worker(client=sqs, queue_url=QUEUE_URL, handler=handler).run(stop)
    assert seen == ["a"]


def test_bodies_are_json_when_they_can_be():
    assert parse_body('{"a": 1}') == {"a": 1}
    assert parse_body("plain text") == "plain text"


def test_importing_the_app_does_not_need_boto3():
    # boto3 is imported lazily, in main(): with it made unimportable, the app still imports.
    code = "import sys; sys.modules['boto3'] = None; import app.__main__, app.worker, app.handler"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
