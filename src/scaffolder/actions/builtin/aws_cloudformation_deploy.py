"""``aws:cloudformation:deploy``: create or update a stack from a workspace template."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from scaffolder.actions.base import ActionContext, ActionExample, TemplateAction
from scaffolder.actions.builtin.aws_common import (
    REGION_SCHEMA,
    TAGS_SCHEMA,
    client,
    region_of,
    skipped,
    tag_list,
)
from scaffolder.errors import InputError, ScaffolderError
from scaffolder.integrations.aws import AwsClient, AwsClients
from scaffolder.integrations.aws_errors import AwsInputError, AwsNotFoundError

ACTION_ID = "aws:cloudformation:deploy"
#: CloudFormation's limit on an inline TemplateBody.
MAX_TEMPLATE_BYTES = 51_200
DEFAULT_TIMEOUT_MINUTES = 60
DEFAULT_POLL_SECONDS = 5.0
SUCCEEDED = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
#: A failed create leaves the stack in this state, empty: it is deleted before a new create.
ROLLED_BACK_CREATE = frozenset({"ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS"})
_NO_CHANGES = "No updates are to be performed"

DESCRIPTION = (
    "Creates or updates a CloudFormation stack from a template in the workspace, with "
    "parameters and tags, streaming the stack events to the task log until it settles, and "
    "outputs the stack outputs. A failure names the failing resources and their reasons; "
    "CloudFormation rolls the stack back."
)

INPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["stackName", "templatePath"],
    "additionalProperties": False,
    "properties": {
        "stackName": {
            "title": "Stack name",
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z0-9-]{0,127}$",
        },
        "templatePath": {
            "title": "Template path",
            "description": "YAML or JSON template, relative to the workspace.",
            "type": "string",
            "minLength": 1,
        },
        "parameters": {
            "title": "Parameters",
            "description": "Stack parameters; lists are joined with commas.",
            "type": "object",
            "additionalProperties": {
                "type": ["string", "number", "boolean", "array"],
                "items": {"type": ["string", "number"]},
            },
        },
        "tags": TAGS_SCHEMA,
        "capabilities": {
            "title": "Capabilities",
            "type": "array",
            "items": {
                "type": "string",
                "enum": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
            },
            "uniqueItems": True,
            "default": ["CAPABILITY_IAM"],
        },
        "region": REGION_SCHEMA,
        "roleArn": {
            "title": "Service role",
            "description": "Role CloudFormation uses for the stack operations.",
            "type": "string",
            "pattern": "^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$",
        },
        "timeoutMinutes": {
            "title": "Timeout (minutes)",
            "description": "How long to wait for the stack to settle.",
            "type": "integer",
            "minimum": 1,
            "maximum": 720,
            "default": DEFAULT_TIMEOUT_MINUTES,
        },
    },
}

OUTPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "stackId": {"type": "string"},
        "outputs": {
            "type": "object",
            "description": "The stack outputs, OutputKey -> OutputValue",
            "additionalProperties": {"type": "string"},
        },
    },
}

_EXAMPLE = """\
steps:
  - id: stack
    name: Deploy the infrastructure
    action: aws:cloudformation:deploy
    input:
      stackName: ${{ parameters.name }}
      templatePath: infra/service.yaml
      parameters:
        ClusterName: platform
        ImageUri: public.ecr.aws/nginx/nginx:stable
      tags:
        component: ${{ parameters.name }}
"""


def create_aws_cloudformation_deploy_action(
    *, aws: AwsClients, poll_seconds: float = DEFAULT_POLL_SECONDS
) -> TemplateAction:
    """Build ``aws:cloudformation:deploy``.

    A missing stack is created (``OnFailure: ROLLBACK``), an existing one updated ("no
    updates" is success). A stack left ``ROLLBACK_COMPLETE`` by an earlier failed create holds
    nothing and cannot be updated, so it is deleted and created again; a stack that is busy
    is waited for first. The deploy is one checkpoint: a retry of the task after a later
    step failed does not deploy again. A cancel during an update cancels the update (which
    rolls back); a create goes on and rolls back on its own if it fails.

    Args:
        aws: the client factory.
        poll_seconds: time between two looks at the stack's events.
    """

    def handler(ctx: ActionContext) -> None:
        if skipped(ctx, aws, ACTION_ID):
            return
        name = str(ctx.input["stackName"])
        region = region_of(ctx, aws)
        user_path = str(ctx.input["templatePath"])
        body = _read_template(ctx, user_path)
        parameters = {
            str(k): _parameter_value(v) for k, v in (ctx.input.get("parameters") or {}).items()
        }
        tags = dict(ctx.input.get("tags") or {})
        capabilities = list(ctx.input.get("capabilities", ["CAPABILITY_IAM"]))
        if ctx.is_dry_run:
            ctx.logger.info(
                f"Would create or update CloudFormation stack {name} in {region} from "
                f"{user_path} ({len(body.encode())} bytes) with parameters {parameters}, "
                f"tags {tags} and capabilities {capabilities}, then wait for it and output "
                "its outputs"
            )
            return
        request: dict[str, Any] = {
            "TemplateBody": body,
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            "Tags": tag_list(tags),
            "Capabilities": capabilities,
        }
        if ctx.input.get("roleArn"):
            request["RoleARN"] = str(ctx.input["roleArn"])
        deployment = _Deployment(
            ctx,
            client(ctx, aws, "cloudformation", ACTION_ID),
            name,
            poll_seconds=poll_seconds,
            timeout_seconds=60.0 * int(ctx.input.get("timeoutMinutes", DEFAULT_TIMEOUT_MINUTES)),
        )
        result = ctx.checkpoint(
            f"cloudformation.stack.{region}.{name}", lambda: deployment.run(request)
        )
        ctx.output("stackId", result["stackId"])
        ctx.output("outputs", result["outputs"])

    return TemplateAction(
        id=ACTION_ID,
        handler=handler,
        description=DESCRIPTION,
        input_schema=INPUT_SCHEMA,
        output_schema=OUTPUT_SCHEMA,
        examples=(ActionExample(description="Deploy a service stack", example=_EXAMPLE),),
        supports_dry_run=True,
    )


def _read_template(ctx: ActionContext, user_path: str) -> str:
    path = ctx.resolve_path(user_path, input_name="templatePath")
    try:
        body = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Invalid input 'templatePath' ({user_path!r}): {exc}") from exc
    size = len(body.encode())
    if size > MAX_TEMPLATE_BYTES:
        raise InputError(
            f"Invalid input 'templatePath' ({user_path!r}): {size} bytes; CloudFormation takes "
            f"at most {MAX_TEMPLATE_BYTES} bytes inline"
        )
    return body


def _parameter_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


class _Deployment:
    """One create or update of one stack, watched until it settles."""

    def __init__(
        self,
        ctx: ActionContext,
        cfn: AwsClient,
        name: str,
        *,
        poll_seconds: float,
        timeout_seconds: float,
    ) -> None:
        self._ctx = ctx
        self._cfn = cfn
        self._name = name
        self._poll = poll_seconds
        self._deadline = time.monotonic() + timeout_seconds
        self._seen: str | None = None  # the newest event already logged
        self._events: list[dict[str, Any]] = []

    def run(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update, wait, and return ``{"stackId", "outputs"}``."""
        stack = self._describe(self._name)
        if stack is not None and stack["StackStatus"].endswith("_IN_PROGRESS"):
            self._ctx.logger.info(
                f"Stack {self._name} is {stack['StackStatus']}; waiting for it to settle"
            )
            self._mark_seen(stack["StackId"])
            stack = self._wait(stack["StackId"], "settle")
        if stack is not None and stack["StackStatus"] in ROLLED_BACK_CREATE:
            self._ctx.logger.info(
                f"Stack {self._name} is {stack['StackStatus']} after a failed create and holds "
                "no resources; deleting it to create it again"
            )
            self._mark_seen(stack["StackId"])
            self._cfn.delete_stack(StackName=stack["StackId"])
            self._wait(stack["StackId"], "delete")
            stack = None
        if stack is not None and stack["StackStatus"].endswith("_FAILED"):
            raise ScaffolderError(
                f"Stack {self._name} is {stack['StackStatus']}: fix it in CloudFormation "
                "(continue the rollback, or delete it) before deploying again"
            )
        if stack is None:
            stack_id = str(
                self._cfn.create_stack(StackName=self._name, OnFailure="ROLLBACK", **request)[
                    "StackId"
                ]
            )
            self._ctx.logger.info(f"Creating stack {stack_id}")
            final = self._wait(stack_id, "create")
        else:
            stack_id = str(stack["StackId"])
            self._mark_seen(stack_id)
            try:
                self._cfn.update_stack(StackName=stack_id, **request)
            except AwsInputError as exc:
                if _NO_CHANGES not in exc.aws_message:
                    raise
                self._ctx.logger.info(f"Stack {self._name} is up to date: no changes")
                return _result(stack)
            self._ctx.logger.info(f"Updating stack {stack_id}")
            final = self._wait(stack_id, "update")
        if final["StackStatus"] not in SUCCEEDED:
            raise ScaffolderError(self._failure(final))
        self._ctx.logger.info(f"Stack {self._name} is {final['StackStatus']}")
        return _result(final)

    def _describe(self, stack: str) -> dict[str, Any] | None:
        try:
            found = self._cfn.describe_stacks(StackName=stack)["Stacks"]
        except AwsNotFoundError:
            return None
        if not found or found[0]["StackStatus"] == "DELETE_COMPLETE":
            return None
        return dict(found[0])

    def _wait(self, stack_id: str, operation: str) -> dict[str, Any]:
        """Log new events until the stack is no longer ``*_IN_PROGRESS``; return it."""
        while True:
            stack = self._describe(stack_id)
            self._log_new_events(stack_id)
            if stack is None:
                return {"StackId": stack_id, "StackStatus": "DELETE_COMPLETE"}
            status = str(stack["StackStatus"])
            if not status.endswith("_IN_PROGRESS"):
                return stack
            if time.monotonic() > self._deadline:
                raise ScaffolderError(
                    f"Stack {self._name} is still {status} after the step's timeout; "
                    "CloudFormation goes on with it"
                )
            if self._ctx.signal.wait(self._poll):
                self._on_cancel(stack_id, operation, status)
                self._ctx.signal.raise_if_cancelled()

    def _on_cancel(self, stack_id: str, operation: str, status: str) -> None:
        if operation == "update" and status == "UPDATE_IN_PROGRESS":
            self._cfn.cancel_update_stack(StackName=stack_id)
            self._ctx.logger.warn(f"Cancelled: the update of {self._name} is rolling back")
        else:
            self._ctx.logger.warn(
                f"Cancelled while stack {self._name} is {status}; CloudFormation finishes it "
                "(a failed create rolls back on its own)"
            )

    def _mark_seen(self, stack_id: str) -> None:
        page = self._cfn.describe_stack_events(StackName=stack_id)
        events = page.get("StackEvents") or []
        self._seen = str(events[0]["EventId"]) if events else None

    def _log_new_events(self, stack_id: str) -> None:
        fresh: list[dict[str, Any]] = []
        for page in self._cfn.paginate("describe_stack_events", StackName=stack_id):
            events = page.get("StackEvents") or []
            stop = next((i for i, e in enumerate(events) if e["EventId"] == self._seen), None)
            fresh.extend(events if stop is None else events[:stop])
            if stop is not None:
                break
        if not fresh:
            return
        self._seen = str(fresh[0]["EventId"])
        for event in reversed(fresh):  # AWS lists the newest first
            self._events.append(event)
            line = (
                f"{event['LogicalResourceId']} ({event.get('ResourceType', '?')}): "
                f"{event['ResourceStatus']}"
            )
            reason = event.get("ResourceStatusReason")
            if reason:
                line += f" - {reason}"
            if event["ResourceStatus"].endswith("_FAILED"):
                self._ctx.logger.error(line)
            else:
                self._ctx.logger.info(line)

    def _failure(self, stack: Mapping[str, Any]) -> str:
        status = str(stack["StackStatus"])
        failed = [
            e
            for e in self._events
            if e["ResourceStatus"].endswith("_FAILED")
            and not (
                e.get("ResourceType") == "AWS::CloudFormation::Stack"
                and e["LogicalResourceId"] == self._name
            )
        ]
        if status in ("ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
            head = f"Stack {self._name} failed and was rolled back ({status})"
        else:
            head = f"Stack {self._name} failed ({status})"
        lines = [
            f"- {e['LogicalResourceId']} ({e.get('ResourceType', '?')}) {e['ResourceStatus']}: "
            f"{e.get('ResourceStatusReason') or 'no reason given'}"
            for e in failed
        ]
        if not lines and stack.get("StackStatusReason"):
            lines = [f"- {stack['StackStatusReason']}"]
        return "\n".join([head + ":", *lines]) if lines else head


def _result(stack: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "stackId": str(stack["StackId"]),
        "outputs": {
            str(o["OutputKey"]): str(o.get("OutputValue", "")) for o in stack.get("Outputs") or []
        },
    }
