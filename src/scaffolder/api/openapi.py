"""The scaffolder plugin's OpenAPI document (``GET /api/scaffolder/openapi.json``)."""

from __future__ import annotations

from functools import cache
from typing import Any

from scaffolder import __version__

_ERROR = {"$ref": "#/components/responses/ErrorResponse"}


def _op(
    summary: str,
    ok: str,
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    status: str = "200",
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {status: {"description": ok}, "default": _ERROR},
        "security": [{}, {"JWT": []}],
    }
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_STRINGS = {"type": "array", "items": {"type": "string"}}
_SECRETS = {"type": "object", "additionalProperties": {"type": "string"}}


@cache
def scaffolder_openapi() -> dict[str, Any]:
    """The document: every route, its parameters and its success status."""
    task = [_path("taskId")]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "scaffolder",
            "version": __version__,
            "description": "Backstage-compatible scaffolder API",
            # Tells clients (and our conformance suite) which implementation answers.
            "x-implementation": "scaffolder (Python)",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"JWT": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "responses": {
                "ErrorResponse": {
                    "description": "An error response from the backend.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "error": {"type": "object"},
                                    "request": {"type": "object"},
                                    "response": {"type": "object"},
                                },
                            }
                        }
                    },
                }
            },
        },
        "paths": {
            "/v2/templates/{namespace}/{kind}/{name}/parameter-schema": {
                "get": _op(
                    "Get a template's parameter schema.",
                    "The parameter schema.",
                    params=[_path("namespace"), _path("kind"), _path("name")],
                )
            },
            "/v2/actions": {"get": _op("List installed actions.", "The actions.")},
            "/v2/templating-extensions": {
                "get": _op("List templating filters and globals.", "The extensions.")
            },
            "/v2/tasks": {
                "get": _op(
                    "List tasks.",
                    "{tasks, totalTasks}",
                    params=[
                        _query("createdBy", _STRINGS),
                        _query("status", _STRINGS),
                        _query("limit", {"type": "integer", "minimum": 0}),
                        _query("offset", {"type": "integer", "minimum": 0}),
                        _query("order", _STRINGS),
                    ],
                ),
                "post": _op(
                    "Start a task.",
                    "{id}",
                    status="201",
                    body={
                        "type": "object",
                        "required": ["templateRef", "values"],
                        "properties": {
                            "templateRef": {"type": "string"},
                            "values": {"type": "object"},
                            "secrets": _SECRETS,
                        },
                    },
                ),
            },
            "/v2/tasks/{taskId}": {"get": _op("Get a task.", "The task.", params=task)},
            "/v2/tasks/{taskId}/eventstream": {
                "get": _op(
                    "Stream a task's events (SSE).",
                    "text/event-stream",
                    params=[*task, _query("after", {"type": "integer"})],
                )
            },
            "/v2/tasks/{taskId}/events": {
                "get": _op(
                    "Long-poll a task's events.",
                    "The events.",
                    params=[*task, _query("after", {"type": "integer"})],
                )
            },
            "/v2/tasks/{taskId}/cancel": {
                "post": _op("Cancel a task.", "{status: cancelled}", params=task)
            },
            "/v2/tasks/{taskId}/retry": {
                "post": _op("Retry a finished task.", "{id}", params=task, status="201")
            },
            "/v2/dry-run": {
                "post": _op(
                    "Run a template without side effects.",
                    "log, files, output",
                    body={
                        "type": "object",
                        "required": ["template", "values", "directoryContents"],
                        "properties": {
                            "template": {"type": "object"},
                            "values": {"type": "object"},
                            "secrets": _SECRETS,
                            "directoryContents": {"type": "array"},
                        },
                    },
                )
            },
        },
    }
