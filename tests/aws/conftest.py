"""AWS through moto in server mode: a real HTTP endpoint on loopback, boto3 pointed at it.

`moto_endpoint` starts one `ThreadedMotoServer` per session on a free 127.0.0.1 port, with
dummy credentials in the environment (here only); every test starts from an empty moto
(``POST /moto-api/reset``) with IAM enforcement off. Tests that need AWS to refuse
something create an IAM user in moto, turn enforcement on (`enforce_iam`) and call with
that user's keys: the AccessDenied comes from moto's own policy evaluation.

Two things moto does not do are added here, in front of it or inside it, and nowhere else:
`FaultProxy` answers chosen operations with throttling errors before forwarding, and
`cloudformation_rollbacks` makes a failing resource roll its stack back as CloudFormation
does (moto raises instead: "TODO: handle execution errors and implement rollback").
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import jsonschema
import pytest
import requests
from moto.server import ThreadedMotoServer

from scaffolder.actions.base import ActionContext, ActionLogger, CancelSignal, TemplateAction
from scaffolder.integrations.aws import AwsClients
from tests.actions.conftest import ActionRun

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}
#: Set to a path that does not exist, so a developer's own ~/.aws never takes part.
_NO_FILES = ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a moto server running for the whole session."""
    missing = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in DUMMY_ENV.items():
            mp.setenv(key, value)
        for key in _NO_FILES:
            mp.setenv(key, str(missing))
        mp.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(autouse=True)
def _fresh_moto(moto_endpoint: str) -> Iterator[None]:
    requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"inf", timeout=5)
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=5)
    yield
    requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"inf", timeout=5)


def aws_config(endpoint: str, **extra: Any) -> dict[str, Any]:
    """A configuration tree whose ``aws`` section points at ``endpoint``."""
    return {"aws": {"region": REGION, "endpointUrl": endpoint, "maxAttempts": 3, **extra}}


@pytest.fixture
def aws(moto_endpoint: str) -> AwsClients:
    """The scaffolder's client factory, configured for moto."""
    return AwsClients.from_config(aws_config(moto_endpoint))


@pytest.fixture
def boto(moto_endpoint: str) -> Callable[[str], Any]:
    """A plain boto3 client on moto, to look at what the actions made."""

    def make(service: str) -> Any:
        return boto3.client(service, endpoint_url=moto_endpoint, region_name=REGION)

    return make


# --- IAM enforcement ------------------------------------------------------------------------


@dataclass
class LimitedUser:
    """An IAM user in moto whose keys the default chain hands to the scaffolder."""

    name: str
    access_key: str
    secret_key: str


@pytest.fixture
def enforce_iam(
    moto_endpoint: str, boto: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., LimitedUser]:
    """``enforce_iam(["ecr:CreateRepository", ...])``: act as a user allowed only that.

    Enforcement stays on until `relax_iam` or the end of the test; ``grant`` more actions
    with ``enforce_iam.grant(user, [...])`` (enforcement is paused for the change).
    """

    def policy(actions: list[str]) -> str:
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
            }
        )

    def enforce(actions: list[str]) -> LimitedUser:
        iam = boto("iam")
        iam.create_user(UserName="scaffolder")
        iam.put_user_policy(UserName="scaffolder", PolicyName="p", PolicyDocument=policy(actions))
        key = iam.create_access_key(UserName="scaffolder")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        monkeypatch.delenv("AWS_SESSION_TOKEN")
        requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"0", timeout=5)
        return LimitedUser("scaffolder", key["AccessKeyId"], key["SecretAccessKey"])

    def grant(user: LimitedUser, actions: list[str]) -> None:
        requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"inf", timeout=5)
        boto("iam").put_user_policy(
            UserName=user.name, PolicyName="p", PolicyDocument=policy(actions)
        )
        requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"0", timeout=5)

    enforce.grant = grant  # type: ignore[attr-defined]
    return enforce


def relax_iam(endpoint: str) -> None:
    """Turn moto's IAM enforcement off (to look at its state with the dummy keys)."""
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf", timeout=5)


# --- running actions ------------------------------------------------------------------------


@dataclass
class Checkpoints:
    """The runner's checkpoint rules: a success is kept and returned, a failure runs again."""

    stored: dict[str, Any] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)

    def __call__(self, key: str, fn: Callable[[], Any]) -> Any:
        found = self.stored.get(key)
        if isinstance(found, dict) and found.get("status") == "success":
            return found["value"]
        self.ran.append(key)
        try:
            value = fn()
        except Exception as exc:
            self.stored[key] = {"status": "failed", "reason": str(exc)}
            raise
        # Stored as JSON, as the task state is: what is not JSON fails here, not in a task.
        self.stored[key] = {"status": "success", "value": json.loads(json.dumps(value))}
        return value


@pytest.fixture
def aws_workspace(tmp_path: Path) -> Path:
    """The task workspace the actions under test see."""
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def aws_context(aws_workspace: Path) -> Callable[..., ActionRun]:
    """An `ActionRun` whose context is what the runner would give ``action`` (not run yet)."""

    def make(
        action: TemplateAction,
        input: Mapping[str, Any],
        *,
        checkpoints: Checkpoints | None = None,
        secrets: Mapping[str, str] | None = None,
        is_dry_run: bool = False,
        template_ref: str = "template:default/service",
        signal: CancelSignal | None = None,
        task_id: str = "task-1",
    ) -> ActionRun:
        assert action.input_schema is not None
        jsonschema.Draft7Validator(action.input_schema).validate(dict(input))
        result = ActionRun(ctx=None)  # type: ignore[arg-type]
        result.ctx = ActionContext(
            input=dict(input),
            workspace_path=aws_workspace,
            logger=ActionLogger(result.lines.append),
            signal=signal or CancelSignal(),
            task_id=task_id,
            step_id="step-1",
            step_name="Step 1",
            is_dry_run=is_dry_run,
            template_info={"entityRef": template_ref},
            secrets=dict(secrets or {}),
            _output=result.outputs.__setitem__,
            _checkpoint=checkpoints if checkpoints is not None else Checkpoints(),
        )
        return result

    return make


@pytest.fixture
def run_aws(aws_context: Callable[..., ActionRun]) -> Callable[..., ActionRun]:
    """Validate the input against the action's schema, then run it as the runner does."""

    def run(action: TemplateAction, input: Mapping[str, Any], **kwargs: Any) -> ActionRun:
        result = aws_context(action, input, **kwargs)
        action.handler(result.ctx)
        return result

    return run


# --- throttling ---------------------------------------------------------------------------


class FaultProxy:
    """A loopback HTTP proxy in front of moto that throttles chosen operations.

    ``throttle("CreateRepository", times=2)`` answers the next two CreateRepository calls
    with a JSON-protocol ``ThrottlingException`` (HTTP 400), then forwards again. Every
    request is counted by operation in ``seen``.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.seen: dict[str, int] = {}
        self._throttles: dict[str, int] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                proxy._handle(self)

            do_GET = do_POST
            do_PUT = do_POST
            do_DELETE = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def throttle(self, operation: str, *, times: int) -> None:
        with self._lock:
            self._throttles[operation] = times

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        operation = _operation(request.headers.get("X-Amz-Target"), body)
        with self._lock:
            self.seen[operation] = self.seen.get(operation, 0) + 1
            throttled = self._throttles.get(operation, 0) > 0
            if throttled:
                self._throttles[operation] -= 1
        if throttled:
            payload = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
            self._reply(
                request, 400, {"Content-Type": "application/x-amz-json-1.1"}, payload.encode()
            )
            return
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        headers["Host"] = self.upstream.netloc
        conn.request(request.command, request.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        passed = {
            k: v
            for k, v in response.getheaders()
            if k.lower() not in ("content-length", "connection", "transfer-encoding")
        }
        conn.close()
        self._reply(request, response.status, passed, data)

    @staticmethod
    def _reply(
        request: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str], body: bytes
    ) -> None:
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


def _operation(target: str | None, body: bytes) -> str:
    if target:
        return target.rsplit(".", 1)[-1]
    found = re.search(rb"(?:^|&)Action=([A-Za-z]+)", body)
    return found.group(1).decode() if found else "?"


@pytest.fixture
def fault_proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_endpoint)
    yield proxy
    proxy.close()


# --- CloudFormation rollbacks ---------------------------------------------------------------


@pytest.fixture
def cloudformation_rollbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's stack creation fail the way CloudFormation does.

    moto (running in this process) creates a stack's resources synchronously and lets a
    resource's exception escape, leaving the stack ``CREATE_IN_PROGRESS`` with what it
    already made. Patched here: each resource made gets ``CREATE_COMPLETE``, the failing one
    ``CREATE_FAILED`` with the error as its reason, the ones made are deleted again, and the
    stack ends ``ROLLBACK_COMPLETE``, as on AWS.
    """
    from moto.cloudformation.models import Stack

    original = Stack.create_resources

    def create_resources(self: Any) -> None:
        try:
            original(self)
            return
        except Exception as exc:
            reason = getattr(exc, "message", None) or str(exc)
            failure = reason
        resource_map = self.resource_map
        order = resource_map._ResourceMap__get_resources_in_dependency_order()
        made = [r for r in order if r in resource_map._parsed_resources]
        failed = next(r for r in order if r not in resource_map._parsed_resources)
        kinds = {k: v.get("Type", "?") for k, v in self.template_dict["Resources"].items()}
        for logical in made:
            self.events.append(_event(self, logical, kinds[logical], "CREATE_COMPLETE", None))
        self.events.append(_event(self, failed, kinds[failed], "CREATE_FAILED", failure))
        self._add_stack_event(
            "ROLLBACK_IN_PROGRESS",
            resource_status_reason=f"The following resource(s) failed to create: [{failed}]. ",
        )
        resource_map.delete()
        for logical in reversed(made):
            self.events.append(_event(self, logical, kinds[logical], "DELETE_COMPLETE", None))
        self._add_stack_event("ROLLBACK_COMPLETE")
        self.status = "ROLLBACK_COMPLETE"
        self.output_map = _NoOutputs()  # a rolled-back stack has none

    monkeypatch.setattr(Stack, "create_resources", create_resources)


class _NoOutputs(dict[str, Any]):
    exports: list[Any] = []


def _event(stack: Any, logical: str, kind: str, status: str, reason: str | None) -> Any:
    from moto.cloudformation.models import Event

    return Event(
        stack_id=stack.stack_id,
        stack_name=stack.name,
        logical_resource_id=logical,
        physical_resource_id="",
        resource_type=kind,
        resource_status=status,
        resource_status_reason=reason,
        resource_properties=None,
    )
