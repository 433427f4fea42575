"""Request parsing in the way upstream's OpenAPI validator words its errors."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from flask import request

from scaffolder.api.errors import json_syntax_message
from scaffolder.errors import InputError


def check_query(allowed: Iterable[str]) -> None:
    """Reject query parameters the route does not document."""
    known = set(allowed)
    for key in request.args:
        if key not in known:
            raise InputError(f"Unknown query parameter '{key}'")


def query_int(name: str, *, minimum: int | None = 0) -> int | None:
    """An optional integer query parameter."""
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"request/query/{name} must be integer") from None
    if minimum is not None and value < minimum:
        raise InputError(f"request/query/{name} must be >= {minimum}")
    return value


def json_body(*, required: bool = True) -> Any:
    """The parsed JSON body (``None`` when absent and not required)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise InputError("request/body must be object")
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(json_syntax_message(exc, text)) from None


def require_object(body: Any, path: str = "request/body") -> dict[str, Any]:
    """``body`` as an object, or the validator's error."""
    if not isinstance(body, dict):
        raise InputError(f"{path} must be object")
    return body


def require_keys(body: Mapping[str, Any], *keys: str) -> None:
    """Every key present, or ``request/body must have required property '<k>'``."""
    for key in keys:
        if key not in body:
            raise InputError(f"request/body must have required property '{key}'")


def string_map(value: Any, path: str) -> dict[str, str] | None:
    """An optional ``{key: string}`` object (secrets)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError(f"{path} must be object")
    for key, item in value.items():
        if not isinstance(item, str):
            raise InputError(f"{path}/{key} must be string")
    return value
