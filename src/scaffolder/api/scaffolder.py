"""The scaffolder plugin's routes under ``/api/scaffolder`` (CONTRACT §2)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from flask import Blueprint, Response, request, stream_with_context

from scaffolder.api.auth import current_caller
from scaffolder.api.errors import json_response
from scaffolder.api.openapi import scaffolder_openapi
from scaffolder.api.request import (
    check_query,
    json_body,
    query_int,
    require_keys,
    require_object,
    string_map,
)
from scaffolder.audit import Actor
from scaffolder.errors import InputError
from scaffolder.services import get_services
from scaffolder.tasks.model import EventType, is_recoverable
from scaffolder.tasks.store import ORDER_FIELDS, TaskFilter

bp = Blueprint("scaffolder", __name__, url_prefix="/api/scaffolder")

#: How long ``GET /v2/tasks/:id/events`` waits for a first event (Backstage: 30 s).
LONG_POLL_SECONDS = 30.0
#: How long an event stream waits between database checks when nothing wakes it.
STREAM_WAIT_SECONDS = 15.0


@bp.get("/v2/templates/<namespace>/<kind>/<name>/parameter-schema")
def parameter_schema(namespace: str, kind: str, name: str) -> Response:
    check_query(())
    return json_response(get_services().scaffolder.parameter_schema(namespace, kind, name))


@bp.get("/v2/actions")
def list_actions() -> Response:
    check_query(())
    return json_response([action.to_json() for action in get_services().registry])


@bp.get("/v2/templating-extensions")
def templating_extensions() -> Response:
    check_query(())
    return json_response(get_services().templater.extensions())


@bp.post("/v2/tasks")
def create_task() -> Response:
    check_query(())
    body = require_object(json_body())
    require_keys(body, "templateRef", "values")
    template_ref = body["templateRef"]
    if not isinstance(template_ref, str):
        raise InputError("request/body/templateRef must be string")
    values = require_object(body["values"], "request/body/values")
    secrets = string_map(body.get("secrets"), "request/body/secrets")
    with _audited("create", templateRef=template_ref, parameters=values) as meta:
        task_id = get_services().scaffolder.create_task(
            template_ref=template_ref, values=values, secrets=secrets, caller=current_caller()
        )
        meta["taskId"] = task_id
    return json_response({"id": task_id}, 201)


@bp.get("/v2/tasks")
def list_tasks() -> Response:
    check_query(("createdBy", "status", "limit", "offset", "order"))
    order = []
    for raw in request.args.getlist("order"):
        direction, sep, field = raw.partition(":")
        if not sep or direction not in ("asc", "desc") or not field:
            raise InputError(
                f'Invalid order parameter "{raw}", expected "<asc or desc>:<field name>"'
            )
        if field not in ORDER_FIELDS:
            raise InputError(f'Invalid order field "{field}"')
        order.append((field, direction))
    query = TaskFilter(
        created_by=request.args.getlist("createdBy"),
        status=request.args.getlist("status"),
        limit=query_int("limit"),
        offset=query_int("offset"),
        order=order or (("created_at", "desc"),),
    )
    tasks, total = get_services().broker.store.list_tasks(query)
    return json_response({"tasks": [t.to_json() for t in tasks], "totalTasks": total})


@bp.get("/v2/tasks/<task_id>")
def get_task(task_id: str) -> Response:
    check_query(())
    return json_response(get_services().broker.store.get_task(task_id).to_json())


@bp.get("/v2/tasks/<task_id>/eventstream")
def event_stream(task_id: str) -> Response:
    after = _after()
    broker = get_services().broker
    task = broker.store.get_task(task_id)  # 404 before any SSE header
    recoverable = is_recoverable(task.spec)

    clients = get_services().metrics.event_stream_clients

    def frames() -> Iterator[str]:
        last = after
        first = True
        stop = threading.Event()
        clients.inc()
        try:
            with broker.hub.listen(task_id) as reader:
                while True:
                    events = broker.wait_for_events(
                        task_id, last, STREAM_WAIT_SECONDS, stop, new_only=not first, reader=reader
                    )
                    first = False
                    done = False
                    chunk = []
                    for event in events:
                        data = _dumps(event.to_json(recoverable=recoverable))
                        chunk.append(f"event: {event.type.value}\ndata: {data}\n\n")
                        last = event.id if last is None else max(last, event.id)
                        done = done or (event.type is EventType.COMPLETION and not recoverable)
                    if chunk:
                        yield "".join(chunk)
                    if done:
                        return
        finally:
            stop.set()
            clients.dec()

    response = Response(stream_with_context(frames()), status=200)
    response.headers["Connection"] = "keep-alive"
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Type"] = "text/event-stream"
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.get("/v2/tasks/<task_id>/events")
def list_events(task_id: str) -> Response:
    check_query(("after",))
    after = _after()
    broker = get_services().broker
    task = broker.store.get_task(task_id)
    events = broker.wait_for_events(task_id, after, LONG_POLL_SECONDS)
    recoverable = is_recoverable(task.spec)
    return json_response([e.to_json(recoverable=recoverable) for e in events])


@bp.post("/v2/tasks/<task_id>/cancel")
def cancel_task(task_id: str) -> Response:
    check_query(())
    services = get_services()
    with _audited("cancel", taskId=task_id) as meta:
        meta["templateRef"] = _template_ref(task_id)
        services.broker.cancel(task_id)
    return json_response({"status": "cancelled"})


@bp.post("/v2/tasks/<task_id>/retry")
def retry_task(task_id: str) -> Response:
    check_query(())
    body = require_object(json_body(required=False) or {})
    secrets = string_map(body.get("secrets"), "request/body/secrets")
    with _audited("retry", taskId=task_id) as meta:
        meta["templateRef"] = _template_ref(task_id)
        get_services().scaffolder.retry_task(task_id, secrets=secrets, caller=current_caller())
    return json_response({"id": task_id}, 201)


@bp.post("/v2/dry-run")
def dry_run() -> Response:
    check_query(())
    body = require_object(json_body())
    require_keys(body, "template", "values", "directoryContents")
    template = require_object(body["template"], "request/body/template")
    values = require_object(body["values"], "request/body/values")
    secrets = string_map(body.get("secrets"), "request/body/secrets")
    contents = body["directoryContents"]
    if not isinstance(contents, list) or not all(
        isinstance(c, dict) and isinstance(c.get("path"), str) for c in contents
    ):
        raise InputError("request/body/directoryContents must be array of {path, base64Content}")
    metadata = template.get("metadata") or {}
    template_ref = f"template:{metadata.get('namespace', 'default')}/{metadata.get('name')}"
    with _audited("dry-run", templateRef=template_ref, parameters=values):
        result = get_services().scaffolder.dry_run(
            template=template,
            values=values,
            secrets=secrets,
            directory_contents=contents,
            caller=current_caller(),
        )
    return json_response(result)


@bp.get("/openapi.json")
def openapi() -> Response:
    return json_response(scaffolder_openapi())


def _audited(action_type: str, **meta: Any) -> AbstractContextManager[dict[str, Any]]:
    """An audit record of this request's action on a task, written when it ends."""
    actor = Actor(
        actor_id=current_caller().principal,
        ip=request.remote_addr,
        forwarded_for=request.headers.get("X-Forwarded-For"),
        user_agent=request.headers.get("User-Agent"),
    )
    return get_services().auditor.task_event(
        action_type, actor=actor, request={"method": request.method, "url": request.path}, **meta
    )


def _template_ref(task_id: str) -> str | None:
    """The template a task was created from (for the audit record); 404 for no such task."""
    spec = get_services().broker.store.get_task(task_id).spec
    ref = (spec.get("templateInfo") or {}).get("entityRef")
    return str(ref) if ref is not None else None


def _after() -> int | None:
    raw = request.args.get("after")
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InputError("request/query/after must be integer") from None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
