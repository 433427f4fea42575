"""Backstage's Actions Registry protocol, served under ``/api/<pluginId>/.backstage/actions``.

The routes, bodies, statuses and auth rules of upstream's ``DefaultActionsRegistryService``
(``@backstage/backend-defaults``, ``dist/alpha/entrypoints/actionsRegistry``), which is what
a Backstage backend's ``DefaultActionsService`` calls for each plugin in
``backend.actions.pluginSources``:

* ``GET /v1/actions``: ``{"actions": [...]}``;
* ``GET /v1/status``: ``{"hasActions": bool}``, for service principals only;
* ``POST /v1/actions/<id>/invoke``: the body is the input; ``POST /v2/actions/<id>/invoke``:
  ``{"input", "secrets"}``; both answer ``{"output": {...}}``.

Auth is the scaffolder's gate (`scaffolder.api.auth`): Backstage plugin tokens whose ``aud`` is
our plugin id, user tokens, static tokens; no token is 401. With auth disabled (loopback only)
the none principal may invoke too, where upstream answers 403 ``Actions must be invoked by an
authenticated principal``: that is how a Backstage running without auth calls us (its plugin
token is then empty).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from scaffolder.api.auth import current_caller
from scaffolder.api.errors import json_response
from scaffolder.api.request import json_body, require_object
from scaffolder.audit import Actor
from scaffolder.errors import AuthenticationError, NotAllowedError
from scaffolder.remote_actions import RemoteActionRegistry
from scaffolder.services import get_services

bp = Blueprint("actions_registry", __name__)

EXTENSION_KEY = "scaffolder.actions_registry"


def mount(app: Flask, registry: RemoteActionRegistry) -> None:
    """Serve ``registry`` under ``/api/<its plugin id>/.backstage/actions``."""
    app.extensions[EXTENSION_KEY] = registry
    app.register_blueprint(bp, url_prefix=f"/api/{registry.plugin_id}/.backstage/actions")


def _registry() -> RemoteActionRegistry:
    registry: RemoteActionRegistry = current_app.extensions[EXTENSION_KEY]
    return registry


@bp.get("/v1/actions")
def list_actions() -> Response:
    return json_response(_registry().list_json())


@bp.get("/v1/status")
def status() -> Response:
    caller = current_caller()
    # Upstream asks for service credentials here: no one, or a user, is refused.
    if caller.user_ref:
        raise NotAllowedError("This endpoint does not allow 'user' credentials")
    if not caller.subject:
        raise AuthenticationError("Missing credentials")
    return json_response({"hasActions": len(_registry()) > 0})


@bp.post("/v1/actions/<action_id>/invoke")
def invoke_v1(action_id: str) -> Response:
    body = json_body(required=False)
    # An absent body is {} (Express's JSON parser), so the schema's required keys speak.
    return _invoke(action_id, {} if body is None else body, None)


@bp.post("/v2/actions/<action_id>/invoke")
def invoke_v2(action_id: str) -> Response:
    body = require_object(json_body(required=False) or {})
    return _invoke(action_id, body.get("input"), body.get("secrets"))


def _invoke(action_id: str, raw_input: Any, raw_secrets: Any) -> Response:
    caller = current_caller()
    services = get_services()
    registry = _registry()
    action, call = registry.prepare(action_id, raw_input, raw_secrets, caller)
    if action.audit_as is None:
        return json_response({"output": registry.run(action_id, action, call)})
    actor = Actor(
        actor_id=caller.principal,
        ip=request.remote_addr,
        forwarded_for=request.headers.get("X-Forwarded-For"),
        user_agent=request.headers.get("User-Agent"),
    )
    with services.auditor.task_event(
        action.audit_as,
        actor=actor,
        request={"method": request.method, "url": request.path},
        actionId=action_id,
        parameters=call.input,
    ) as meta:
        call.audit = meta
        output = registry.run(action_id, action, call)
    return json_response({"output": output})
