"""The actions we serve to other scaffolders and AI agents (``ecs:*`` by default).

Each is a whole capability, since a remote caller cannot lend us its workspace: list our
templates, run one as a task (and wait for it), read a task's log, dry-run a template, and the
golden path in one call, create an ECS service from one of the bundled ``ecs-*`` templates.
Tasks run exactly as if created through ``POST /v2/tasks`` by the same caller: template
allow-lists apply, the caller (or the user a Backstage plugin acts for) is ``createdBy``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from scaffolder.catalog.model import parse_entity_ref
from scaffolder.catalog.service import CatalogService
from scaffolder.errors import InputError, ScaffolderError, ValidationErrors
from scaffolder.remote_actions.registry import (
    ActionAttributes,
    ActionCall,
    ActionExample,
    RemoteAction,
)
from scaffolder.tasks.broker import TaskBroker
from scaffolder.tasks.model import EventType, TaskEvent
from scaffolder.tasks.service import ScaffolderService, serialize_directory, template_base_url
from scaffolder.validation import error_stacks

#: The bundled ECS templates ``create-ecs-service`` may run (``cookiecutters/``).
ECS_TEMPLATES = ("ecs-web-service", "ecs-worker-service", "ecs-scheduled-task", "ecs-grpc-service")
#: How long ``wait`` waits by default. Backstage calls us with Node's fetch, whose headers
#: timeout (undici) is 300 s: an answer later than that never reaches the caller.
DEFAULT_WAIT_SECONDS = 240
MAX_WAIT_SECONDS = 290
#: At most this many events per ``get-task-logs`` answer (follow with ``after``).
MAX_LOG_EVENTS = 500

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TEMPLATE_REF = {
    "type": "string",
    "minLength": 1,
    "description": (
        "The template's entity ref, 'template:default/<name>' or just '<name>' (see "
        "list-templates)."
    ),
}
_VALUES = {
    "type": "object",
    "description": (
        "The template's parameters, by name, as its parameter schemas in list-templates "
        "describe them; defaults are filled in for those left out."
    ),
}
_WAIT_SECONDS = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_WAIT_SECONDS,
    "description": f"How long to wait for the task to finish (default {DEFAULT_WAIT_SECONDS}).",
}
_LINK = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "url": {"type": "string"},
        "entityRef": {"type": "string"},
        "icon": {"type": "string"},
    },
}
_TEXT = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "content": {"type": "string"},
        "icon": {"type": "string"},
        "default": {"type": "boolean"},
    },
}
_STATUS = {
    "type": "string",
    "enum": ["open", "processing", "completed", "failed", "cancelled", "skipped"],
    "description": "The task's status.",
}
_SECRETS = {
    "type": "object",
    "additionalProperties": {"type": "string"},
    "description": "Secrets the template asks for (spec.secrets); never logged or stored.",
}


@dataclass(frozen=True, kw_only=True)
class Finished:
    """A task as a waiting action reports it."""

    task_id: str
    status: str
    output: dict[str, Any]
    error: str | None


def create_ecs_actions(
    *, scaffolder: ScaffolderService, broker: TaskBroker, catalog: CatalogService
) -> list[RemoteAction]:
    """The five actions, closed over the services they use."""
    return [
        create_list_templates_action(scaffolder=scaffolder, catalog=catalog),
        create_execute_template_action(scaffolder=scaffolder, broker=broker),
        create_get_task_logs_action(broker=broker),
        create_dry_run_template_action(scaffolder=scaffolder),
        create_ecs_service_action(scaffolder=scaffolder, broker=broker),
    ]


# --- list-templates ----------------------------------------------------------------------


def create_list_templates_action(
    *, scaffolder: ScaffolderService, catalog: CatalogService
) -> RemoteAction:
    """``list-templates``: our templates with their parameter schemas."""

    def handler(call: ActionCall) -> dict[str, Any]:
        tag = call.input.get("tag")
        templates = []
        for entity in catalog.list_entities([{"kind": ["template"]}]):
            metadata = entity.get("metadata") or {}
            tags = [t for t in metadata.get("tags") or [] if isinstance(t, str)]
            if tag is not None and tag not in tags:
                continue
            namespace = str(metadata.get("namespace", "default"))
            name = str(metadata.get("name"))
            try:
                form = scaffolder.parameter_schema(namespace, "template", name)
            except ScaffolderError:
                continue  # not a template we can run (e.g. an unsupported apiVersion)
            item: dict[str, Any] = {
                "ref": f"template:{namespace}/{name}",
                "name": name,
                "title": str(form.get("title") or name),
                "description": str(metadata.get("description") or ""),
                "tags": tags,
                "parameters": form.get("steps", []),
            }
            secrets = ((entity.get("spec") or {}).get("secrets") or {}).get("schema")
            if isinstance(secrets, Mapping):
                item["secrets"] = dict(secrets)
            templates.append(item)
        return {"templates": templates}

    return RemoteAction(
        name="list-templates",
        title="List scaffolder templates",
        description=(
            "Lists the software templates this scaffolder can run (ECS services and others), "
            "each with its entity ref, title, description, tags and parameter schemas: one "
            "JSON schema per form page, whose properties are the values execute-template, "
            "dry-run-template and create-ecs-service take. Call it first to learn which "
            "template fits and which values it needs."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "tag": {
                    "type": "string",
                    "description": "Only templates with this tag (for example 'ecs').",
                }
            },
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "templates": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "ref": {"type": "string"},
                            "name": {"type": "string"},
                            "title": {"type": "string"},
                            "description": {"type": "string"},
                            "tags": {"type": "array", "items": {"type": "string"}},
                            "parameters": {
                                "type": "array",
                                "description": "Form pages: {title, description?, schema}.",
                                "items": {"type": "object"},
                            },
                            "secrets": {"type": "object"},
                        },
                        "required": ["ref", "name", "title", "description", "parameters"],
                    },
                }
            },
            "required": ["templates"],
            "additionalProperties": False,
        },
        attributes=ActionAttributes(read_only=True, destructive=False, idempotent=True),
        handler=handler,
        examples=(
            ActionExample(title="All templates", input={}),
            ActionExample(title="The ECS templates", input={"tag": "ecs"}),
        ),
    )


# --- execute-template --------------------------------------------------------------------


def create_execute_template_action(
    *, scaffolder: ScaffolderService, broker: TaskBroker
) -> RemoteAction:
    """``execute-template``: run one of our templates as a task, optionally to its end."""

    def handler(call: ActionCall) -> dict[str, Any]:
        template_ref = _template_ref(call.input["templateRef"])
        call.audit["templateRef"] = template_ref
        task_id = _create_task(
            scaffolder,
            template_ref=template_ref,
            values=dict(call.input.get("values") or {}),
            call=call,
        )
        call.audit["taskId"] = task_id
        if not call.input.get("wait", False):
            return {"taskId": task_id}
        finished = _wait(broker, task_id, call.input.get("timeoutSeconds"))
        out: dict[str, Any] = {"taskId": task_id, "status": finished.status}
        if finished.status in ("open", "processing"):
            return out
        out["links"] = _list(finished.output.get("links"))
        out["text"] = _list(finished.output.get("text"))
        out["output"] = finished.output
        if finished.error is not None:
            out["error"] = finished.error
        return out

    return RemoteAction(
        name="execute-template",
        title="Run a scaffolder template",
        description=(
            "Runs one of this scaffolder's templates as a task with the given values, exactly "
            "as a user would from the Backstage form: it may publish repositories, register "
            "catalog entities and create cloud resources, depending on the template. Returns "
            "the taskId at once; with wait: true it waits for the task to end (at most "
            "timeoutSeconds) and also returns its final status, the template's output links "
            "and text, and the error message if it failed. Use list-templates for the "
            "templates and their values, dry-run-template to check values without side "
            "effects, and get-task-logs to follow a task. Secrets the template asks for go in "
            "the invocation's secrets (v2)."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "templateRef": _TEMPLATE_REF,
                "values": _VALUES,
                "wait": {
                    "type": "boolean",
                    "default": False,
                    "description": "Wait for the task to finish and return its outcome.",
                },
                "timeoutSeconds": _WAIT_SECONDS,
            },
            "required": ["templateRef", "values"],
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "taskId": {"type": "string", "description": "The task's id."},
                "status": _STATUS,
                "links": {"type": "array", "items": _LINK},
                "text": {"type": "array", "items": _TEXT},
                "output": {"type": "object", "description": "The template's whole output."},
                "error": {"type": "string", "description": "Why the task failed."},
            },
            "required": ["taskId"],
            "additionalProperties": False,
        },
        secrets_schema=_SECRETS,
        attributes=ActionAttributes(read_only=False, destructive=True, idempotent=False),
        handler=handler,
        examples=(
            ActionExample(
                title="Run a template and wait for it",
                input={
                    "templateRef": "template:default/ecs-worker-service",
                    "values": {"name": "billing-worker", "owner": "group:default/payments"},
                    "wait": True,
                },
                output={
                    "taskId": "0d8c9c4e-51cf-4bd4-9a33-3f7d0c0c1b5e",
                    "status": "completed",
                    "links": [
                        {"title": "Repository", "url": "https://git.example.com/billing-worker"}
                    ],
                    "text": [],
                    "output": {},
                },
            ),
            ActionExample(
                title="Start a template and follow it with get-task-logs",
                input={"templateRef": "ecs-web-service", "values": {"name": "orders-api"}},
                output={"taskId": "0d8c9c4e-51cf-4bd4-9a33-3f7d0c0c1b5e"},
            ),
        ),
        audit_as="create",
    )


# --- get-task-logs -----------------------------------------------------------------------


def create_get_task_logs_action(*, broker: TaskBroker) -> RemoteAction:
    """``get-task-logs``: a task's status and its events after an id."""

    def handler(call: ActionCall) -> dict[str, Any]:
        task_id = str(call.input["taskId"])
        after = call.input.get("after")
        task = broker.store.get_task(task_id)  # 404 for an unknown task
        events = [
            e for e in broker.store.list_events(task_id, after) if after is None or e.id > after
        ][:MAX_LOG_EVENTS]
        return {
            "taskId": task_id,
            "status": task.status.value,
            "events": [_event(e) for e in events],
            "lastEventId": events[-1].id if events else after,
        }

    return RemoteAction(
        name="get-task-logs",
        title="Read a scaffolder task's log",
        description=(
            "Returns a task's current status and its log events (oldest first, at most "
            f"{MAX_LOG_EVENTS}) after the event id 'after'. To follow a running task, call "
            "again with after set to the lastEventId of the previous answer until the status "
            "is completed, failed or cancelled."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "taskId": {"type": "string", "minLength": 1, "description": "The task's id."},
                "after": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Only events after this event id (lastEventId).",
                },
            },
            "required": ["taskId"],
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "taskId": {"type": "string"},
                "status": _STATUS,
                "events": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "integer"},
                            "type": {
                                "type": "string",
                                "enum": ["log", "completion", "cancelled", "recovered"],
                            },
                            "createdAt": {"type": ["string", "null"]},
                            "stepId": {"type": "string"},
                            "status": {"type": "string"},
                            "message": {"type": "string"},
                        },
                        "required": ["id", "type"],
                    },
                },
                "lastEventId": {"type": ["integer", "null"]},
            },
            "required": ["taskId", "status", "events", "lastEventId"],
            "additionalProperties": False,
        },
        attributes=ActionAttributes(read_only=True, destructive=False, idempotent=True),
        handler=handler,
        examples=(
            ActionExample(
                title="Read a task's log from the start",
                input={"taskId": "0d8c9c4e-51cf-4bd4-9a33-3f7d0c0c1b5e"},
            ),
            ActionExample(
                title="Only what is new since the last read",
                input={"taskId": "0d8c9c4e-51cf-4bd4-9a33-3f7d0c0c1b5e", "after": 1042},
            ),
        ),
    )


# --- dry-run-template --------------------------------------------------------------------


def create_dry_run_template_action(*, scaffolder: ScaffolderService) -> RemoteAction:
    """``dry-run-template``: a dry run of one of our templates: the files it renders, its log."""

    def handler(call: ActionCall) -> dict[str, Any]:
        template_ref = _template_ref(call.input["templateRef"])
        call.audit["templateRef"] = template_ref
        ref = parse_entity_ref(template_ref, default_kind="template")
        template = scaffolder.find_template(ref.namespace, ref.kind, ref.name)
        try:
            result = scaffolder.dry_run(
                template=_as_authored(template),
                values=dict(call.input.get("values") or {}),
                secrets=_secrets(call),
                directory_contents=_template_files(template, template_ref),
                caller=call.caller,
            )
        except ValidationErrors as exc:
            raise _invalid_values(template_ref, exc) from None
        return {
            "files": [str(item["path"]) for item in result["directoryContents"]],
            "log": [_message(entry.get("body") or {}) for entry in result["log"]],
            "output": result["output"],
        }

    return RemoteAction(
        name="dry-run-template",
        title="Dry-run a scaffolder template",
        description=(
            "Runs one of this scaffolder's templates in a throwaway workspace without side "
            "effects: steps that would publish, register or create cloud resources are "
            "skipped. Returns the paths of the files the template renders, the run's log and "
            "its output. Use it to check values before execute-template or "
            "create-ecs-service; invalid values are reported with the schema's messages."
        ),
        input_schema={
            "type": "object",
            "properties": {"templateRef": _TEMPLATE_REF, "values": _VALUES},
            "required": ["templateRef", "values"],
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "files": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Paths of the rendered files, relative to the workspace.",
                },
                "log": {"type": "array", "items": {"type": "string"}},
                "output": {"type": "object"},
            },
            "required": ["files", "log", "output"],
            "additionalProperties": False,
        },
        secrets_schema=_SECRETS,
        attributes=ActionAttributes(read_only=True, destructive=False, idempotent=True),
        handler=handler,
        examples=(
            ActionExample(
                title="Preview an ECS web service",
                input={
                    "templateRef": "template:default/ecs-web-service",
                    "values": {"name": "orders-api", "owner": "group:default/payments"},
                },
            ),
        ),
        audit_as="dry-run",
    )


# --- create-ecs-service ------------------------------------------------------------------


def create_ecs_service_action(*, scaffolder: ScaffolderService, broker: TaskBroker) -> RemoteAction:
    """``create-ecs-service``: one of the bundled ECS templates, run to its end."""

    def handler(call: ActionCall) -> dict[str, Any]:
        name = str(call.input.get("template", ECS_TEMPLATES[0]))
        template_ref = f"template:default/{name}"
        values = dict(call.input.get("values") or {})
        for key in ("name", "owner", "description", "repoUrl", "bootstrapAws"):
            if key in call.input:
                values[key] = call.input[key]
        call.audit["templateRef"] = template_ref
        task_id = _create_task(scaffolder, template_ref=template_ref, values=values, call=call)
        call.audit["taskId"] = task_id
        finished = _wait(broker, task_id, call.input.get("timeoutSeconds"))
        if finished.status in ("open", "processing"):
            raise ScaffolderError(
                f"Task {task_id} is still {finished.status} after the wait; follow it with "
                "get-task-logs"
            )
        if finished.status != "completed":
            raise ScaffolderError(
                f"Task {task_id} {finished.status}: {finished.error or 'no error message'}"
            )
        links = _list(finished.output.get("links"))
        out: dict[str, Any] = {"taskId": task_id, "status": finished.status}
        repository = _repository_url(links)
        if repository is not None:
            out["repositoryUrl"] = repository
        entity_ref = next((str(x["entityRef"]) for x in links if x.get("entityRef")), None)
        if entity_ref is not None:
            out["entityRef"] = entity_ref
        out["links"] = links
        out["text"] = _list(finished.output.get("text"))
        return out

    return RemoteAction(
        name="create-ecs-service",
        title="Create an ECS service",
        description=(
            "Creates a new service on Amazon ECS Fargate from one of the platform's templates, "
            "in one step: renders the service's repository (app, tests, Dockerfile, "
            "CloudFormation, CI and deploy workflows, catalog-info.yaml), publishes it as a "
            "new repository, registers it in the software catalog and, with bootstrapAws, "
            "creates its ECR repository and deploy role. Waits for the run to finish and "
            "returns the repository URL, the catalog entity ref and the links; fails with the "
            "task's error if a step fails. Kinds: ecs-web-service (HTTP behind the shared "
            "ALB), ecs-worker-service (SQS consumer), ecs-scheduled-task (cron job), "
            "ecs-grpc-service (internal gRPC). Other template parameters (cpu, memory, "
            "desired_count, ...) go in values; list-templates shows them."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "template": {
                    "type": "string",
                    "enum": list(ECS_TEMPLATES),
                    "default": ECS_TEMPLATES[0],
                    "description": "Which kind of ECS service.",
                },
                "name": {
                    "type": "string",
                    "pattern": "^[a-z][a-z0-9-]{1,30}[a-z0-9]$",
                    "description": (
                        "Service name, a DNS label (lower case, digits, '-'): also the "
                        "repository, ECS service and stack name."
                    ),
                },
                "owner": {
                    "type": "string",
                    "description": "Owning team's entity ref, e.g. group:default/payments.",
                },
                "description": {"type": "string", "maxLength": 200},
                "repoUrl": {
                    "type": "string",
                    "description": (
                        "Where to publish, in Backstage's RepoUrlPicker form: "
                        "'github.com?owner=<org>&repo=<name>'; left out, the scaffolder's "
                        "own git host."
                    ),
                },
                "bootstrapAws": {
                    "type": "boolean",
                    "description": (
                        "Also create the ECR repository and the GitHub deploy role (needs a "
                        "github.com repoUrl and AWS configured on the scaffolder)."
                    ),
                },
                "values": {
                    "type": "object",
                    "description": "Further template parameters (see list-templates).",
                },
                "timeoutSeconds": _WAIT_SECONDS,
            },
            "required": ["name", "owner"],
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "taskId": {"type": "string"},
                "status": _STATUS,
                "repositoryUrl": {"type": "string", "description": "The new repository."},
                "entityRef": {"type": "string", "description": "The new catalog entity."},
                "links": {"type": "array", "items": _LINK},
                "text": {"type": "array", "items": _TEXT},
            },
            "required": ["taskId", "status", "links", "text"],
            "additionalProperties": False,
        },
        secrets_schema=_SECRETS,
        # It only creates (a new repository, entity and AWS resources; an existing
        # repository makes the publish step fail rather than be overwritten).
        attributes=ActionAttributes(read_only=False, destructive=False, idempotent=False),
        handler=handler,
        examples=(
            ActionExample(
                title="A web service on GitHub with its AWS pipeline",
                input={
                    "template": "ecs-web-service",
                    "name": "orders-api",
                    "owner": "group:default/payments",
                    "repoUrl": "github.com?owner=acme&repo=orders-api",
                    "bootstrapAws": True,
                    "values": {"cpu": 512, "memory": 1024},
                },
                output={
                    "taskId": "0d8c9c4e-51cf-4bd4-9a33-3f7d0c0c1b5e",
                    "status": "completed",
                    "repositoryUrl": "https://github.com/acme/orders-api",
                    "entityRef": "component:default/orders-api",
                    "links": [
                        {"title": "Repository", "url": "https://github.com/acme/orders-api"},
                        {
                            "title": "Open in catalog",
                            "icon": "catalog",
                            "entityRef": "component:default/orders-api",
                        },
                    ],
                    "text": [],
                },
            ),
            ActionExample(
                title="A worker on the scaffolder's own git host",
                input={
                    "template": "ecs-worker-service",
                    "name": "billing-worker",
                    "owner": "group:default/payments",
                },
            ),
        ),
        audit_as="create",
    )


# --- helpers -----------------------------------------------------------------------------


def _template_ref(raw: Any) -> str:
    try:
        return str(parse_entity_ref(str(raw), default_kind="template"))
    except InputError as exc:
        raise InputError(f"Invalid templateRef {raw!r}: {exc.message}") from None


def _secrets(call: ActionCall) -> dict[str, str] | None:
    return {str(k): str(v) for k, v in call.secrets.items()} if call.secrets else None


def _create_task(
    scaffolder: ScaffolderService, *, template_ref: str, values: dict[str, Any], call: ActionCall
) -> str:
    try:
        return scaffolder.create_task(
            template_ref=template_ref, values=values, secrets=_secrets(call), caller=call.caller
        )
    except ValidationErrors as exc:
        raise _invalid_values(template_ref, exc) from None


def _invalid_values(template_ref: str, exc: ValidationErrors) -> InputError:
    """Template parameter failures as an action error (not the scaffolder API's bare body)."""
    return InputError(f"Invalid values for {template_ref}: {error_stacks(exc.errors)}")


def _wait(broker: TaskBroker, task_id: str, timeout: Any) -> Finished:
    """Wait for the task's completion event (at most ``timeout`` seconds)."""
    seconds = float(timeout) if timeout is not None else float(DEFAULT_WAIT_SECONDS)
    deadline = time.monotonic() + seconds
    after: int | None = None
    completion: TaskEvent | None = None
    while completion is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        events = broker.wait_for_events(task_id, after, remaining, new_only=after is not None)
        for event in events:
            if event.type is EventType.COMPLETION:
                completion = event
            after = event.id if after is None else max(after, event.id)
    status = broker.store.get_task(task_id).status.value
    if completion is None or status in ("open", "processing"):
        return Finished(task_id=task_id, status=status, output={}, error=None)
    body = completion.body
    error = body.get("error")
    return Finished(
        task_id=task_id,
        status=status,
        output=dict(body.get("output") or {}),
        error=str(error.get("message")) if isinstance(error, Mapping) else None,
    )


def _list(value: Any) -> list[dict[str, Any]]:
    return [dict(item) for item in value if isinstance(item, Mapping)] if value else []


def _repository_url(links: list[dict[str, Any]]) -> str | None:
    """The bundled templates' "Repository" link (or the first link with a URL)."""
    for link in links:
        if str(link.get("title", "")).lower() == "repository" and link.get("url"):
            return str(link["url"])
    return next((str(link["url"]) for link in links if link.get("url")), None)


def _event(event: TaskEvent) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": event.id,
        "type": event.type.value,
        "createdAt": event.to_json(recoverable=False)["createdAt"],
    }
    for key in ("stepId", "status"):
        if isinstance(event.body.get(key), str):
            item[key] = event.body[key]
    message = _message(event.body)
    if message:
        item["message"] = message
    return item


def _message(body: Mapping[str, Any]) -> str:
    """A log body's message without winston's colour codes (an agent reads plain text)."""
    message = body.get("message")
    if not isinstance(message, str):
        error = body.get("error")
        message = str(error.get("message", "")) if isinstance(error, Mapping) else ""
    return _ANSI.sub("", message)


def _as_authored(entity: Mapping[str, Any]) -> dict[str, Any]:
    """A catalog entity as its author wrote it: what the catalog stitched on is left out."""
    metadata = {
        k: v
        for k, v in (entity.get("metadata") or {}).items()
        if k not in ("uid", "etag", "generation")
    }
    return {
        "apiVersion": entity.get("apiVersion"),
        "kind": entity.get("kind"),
        "metadata": metadata,
        "spec": entity.get("spec") or {},
    }


def _template_files(template: Mapping[str, Any], template_ref: str) -> list[dict[str, Any]]:
    """The files beside a template read from a file location, as a dry run uploads them."""
    base = template_base_url(template)
    if base is None or not base.startswith("file://"):
        raise InputError(
            f"{template_ref} is not read from a file on this scaffolder; only those can be "
            "dry-run here"
        )
    directory = Path(unquote(urlsplit(base).path)).parent
    if not directory.is_dir():
        raise InputError(f"The files of {template_ref} are gone from {directory}")
    return serialize_directory(directory)
