"""Map our errors onto Backstage's error body, in one place.

Every non-2xx JSON answer has the shape
``{"error": {"name", "message"}, "request": {"method", "url"}, "response": {"statusCode"}}``
where ``request.url`` is relative to the plugin mount (``/v2/tasks?x=1``). JSON-schema
failures of template values are the one exception: a bare ``{"errors": [...]}``.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge

from scaffolder.errors import (
    AuthenticationError,
    ConflictError,
    InputError,
    NotAllowedError,
    NotFoundError,
    ScaffolderError,
    ValidationErrors,
)

log = logging.getLogger(__name__)

STATUS_BY_NAME = {
    InputError.name: 400,
    AuthenticationError.name: 401,
    NotAllowedError.name: 403,
    NotFoundError.name: 404,
    ConflictError.name: 409,
    "NotModifiedError": 304,
    "NotImplementedError": 501,
    "ServiceUnavailableError": 503,
}

#: A plugin mount, ``/api/<pluginId>``: ``request.url`` in an error body is relative to it.
MOUNT = re.compile(r"^/api/[^/]+(?=/|$)")


def json_response(body: Any, status: int = 200) -> Response:
    """A compact JSON response with Express's content type."""
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status=status,
        content_type="application/json; charset=utf-8",
    )


def relative_url() -> str:
    """The request path and query relative to its plugin mount."""
    path = MOUNT.sub("", request.path, count=1) or "/"
    query = request.query_string.decode("latin-1")
    return f"{path}?{query}" if query else path


def error_response(
    name: str, message: str, status: int, extra: dict[str, Any] | None = None
) -> Response:
    """Backstage's error body."""
    error: dict[str, Any] = {"name": name, "message": message}
    if extra:
        error.update(extra)
    body = {
        "error": error,
        "request": {"method": request.method, "url": relative_url()},
        "response": {"statusCode": status},
    }
    return json_response(body, status)


def register_error_handlers(app: Flask) -> None:
    """Install the handlers that turn exceptions into Backstage's bodies."""

    @app.errorhandler(ValidationErrors)
    def _validation(exc: ValidationErrors) -> Response:
        return json_response({"errors": exc.errors}, 400)

    @app.errorhandler(ScaffolderError)
    def _ours(exc: ScaffolderError) -> Response:
        status = STATUS_BY_NAME.get(exc.name, 500)
        body = exc.to_json()
        body.pop("name")
        body.pop("message")
        return error_response(exc.name, exc.message, status, body)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc: RequestEntityTooLarge) -> Response:
        return error_response("PayloadTooLargeError", "request entity too large", 413)

    @app.errorhandler(NotFound)
    def _no_route(_exc: NotFound) -> Response:
        # Backstage's root router answers unknown paths with an empty 404.
        return Response(b"", status=404)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 405:
            return Response(b"", status=404)
        return error_response("Error", exc.description or exc.name, status)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response("Error", "Internal server error", 500)


_PY_JSON = re.compile(r"^(?P<msg>.*?): line \d+ column \d+ \(char (?P<pos>\d+)\)$")


def json_syntax_message(exc: json.JSONDecodeError, text: str) -> str:
    """Phrase a JSON syntax error as V8's ``JSON.parse`` does (what upstream answers)."""
    pos = exc.pos
    if exc.msg.startswith("Expecting property name"):
        return f"Expected property name or '}}' in JSON at position {pos}"
    if exc.msg == "Expecting ',' delimiter":
        return f"Expected ',' or '}}' after property value in JSON at position {pos}"
    if exc.msg == "Expecting ':' delimiter":
        return f"Expected ':' after property name in JSON at position {pos}"
    if exc.msg == "Expecting value" and pos >= len(text):
        return "Unexpected end of JSON input"
    if pos < len(text):
        token = text[pos]
        return f"Unexpected token '{token}', \"{text[:32]}\" is not valid JSON"
    return f"{exc.msg} in JSON at position {pos}"
