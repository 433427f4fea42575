"""Request checks and response writing for the catalog routes (upstream's validator wording).

Upstream validates catalog requests against its OpenAPI document (unknown query parameters,
empty values, body types) and answers lists by splicing stored entity JSON into the response;
these helpers do both for `scaffolder.api.catalog`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from flask import Response, request

from scaffolder.api.errors import json_syntax_message
from scaffolder.api.request import check_query
from scaffolder.catalog import ajv
from scaffolder.catalog.query import (
    Predicate,
    Projection,
    decode_json_base64,
    encode_cursor,
    parse_fields,
    parse_filter_params,
    parse_query,
)
from scaffolder.catalog.stitching import to_json
from scaffolder.errors import InputError

JSON_TYPE = "application/json; charset=utf-8"
STRINGS = {"type": "array", "items": {"type": "string"}}
OBJECT = {"type": "object"}
TRUTHY = {"y", "yes", "true", "t", "1", "on"}


# --- request helpers -----------------------------------------------------------------------


def check_params(allowed: Sequence[str], *, required: Sequence[str] = ()) -> None:
    """Unknown parameters, empty values and missing required ones, as the validator says."""
    check_query(allowed)
    for key in allowed:
        if any(v == "" for v in request.args.getlist(key)):
            raise InputError(f"Empty value found for query parameter '{key}'")
    for key in required:
        if key not in request.args:
            raise InputError(f"request/query must have required property '{key}'")


def int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"request/query/{name} must be integer") from None
    if value < 0:
        raise InputError(f"request/query/{name} must be >= 0")
    return value


def enum_arg(name: str, allowed: Sequence[str]) -> str | None:
    raw = request.args.get(name)
    if raw is not None and raw not in allowed:
        raise InputError(
            f"request/query/{name} must be equal to one of the allowed values: {', '.join(allowed)}"
        )
    return raw


def checked_body(schema: dict[str, Any], *, required: bool) -> Any:
    """The JSON body, checked against ``schema`` (first error, validator wording)."""
    raw = request.get_data(cache=True)
    if not request.content_type:
        if required:
            raise InputError("unsupported media type undefined")
        return None
    if request.mimetype != "application/json":
        raise InputError(f"unsupported media type {request.mimetype}")
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        body: Any = {}
    else:
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(json_syntax_message(exc, text)) from None
    errors = ajv.validate(schema, body)
    if errors:
        first = errors[0]
        message = first.message
        if first.keyword == "enum":
            allowed = ", ".join(str(v) for v in first.params["allowedValues"])
            message = f"{message}: {allowed}"
        raise InputError(f"request/body{first.instance_path} {message}")
    return body


def fields_param(extra: Sequence[str] = ()) -> Projection | None:
    return parse_fields(request.args.getlist("fields"), extra)


def filter_param() -> Predicate | None:
    return parse_filter_params(request.args.getlist("filter"))


# --- response helpers ----------------------------------------------------------------------


def project(items: Sequence[str | None], projection: Projection | None) -> list[str]:
    if projection is None:
        return ["null" if text is None else text for text in items]
    return ["null" if text is None else to_json(projection(json.loads(text))) for text in items]


def raw_json(text: str, status: int = 200) -> Response:
    return Response(text, status=status, content_type=JSON_TYPE)


def wrapped(items: list[str], meta: dict[str, Any] | None = None) -> Response:
    tail = to_json(meta)[1:] if meta else "}"
    joiner = "," if meta else ""
    return raw_json('{"items":[' + ",".join(items) + "]" + joiner + tail)


def page_info(next_cursor: Any, prev_cursor: Any) -> dict[str, str]:
    info: dict[str, str] = {}
    if next_cursor:
        info["nextCursor"] = encode_cursor(next_cursor)
    if prev_cursor:
        info["prevCursor"] = encode_cursor(prev_cursor)
    return info


def decode_cursor(raw: str) -> dict[str, Any]:
    try:
        cursor = decode_json_base64(raw)
    except ValueError as exc:
        raise InputError(f"Malformed cursor: SyntaxError: {exc}") from None
    if (
        not isinstance(cursor, dict)
        or not isinstance(cursor.get("orderFields"), list)
        or not isinstance(cursor.get("orderFieldValues"), list)
        or not isinstance(cursor.get("isPrevious"), bool)
    ):
        raise InputError("Malformed cursor: ZodError: the cursor is not a catalog cursor")
    order = (
        "orderFields",
        "fullTextFilter",
        "orderFieldValues",
        "filter",
        "isPrevious",
        "query",
        "firstSortFieldValues",
        "totalItems",
    )  # zod's output order
    if cursor.get("query") is not None:
        cursor["query"] = parse_query(cursor["query"], "Malformed cursor: ")
    return {k: cursor[k] for k in order if k in cursor}


def location_input(body: dict[str, Any]) -> tuple[str, str, str | None]:
    """The zod ``locationInput`` check (strict; ``presence`` optional)."""
    extra = [k for k in body if k not in ("type", "target", "presence")]
    if extra:
        issue = {
            "code": "unrecognized_keys",
            "keys": extra,
            "path": [],
            "message": "Unrecognized key(s) in object: " + ", ".join(f"'{k}'" for k in extra),
        }
        raise InputError(f"Malformed request: {json.dumps([issue], indent=2)}")
    presence = body.get("presence")
    if "presence" in body and presence not in ("required", "optional"):
        branches: list[dict[str, Any]] = [
            {
                "issues": [
                    {
                        "received": presence,
                        "code": "invalid_literal",
                        "expected": literal,
                        "path": ["presence"],
                        "message": f'Invalid literal value, expected "{literal}"',
                    }
                ],
                "name": "ZodError",
            }
            for literal in ("required", "optional")
        ]
        union: dict[str, Any] = {
            "code": "invalid_union",
            "unionErrors": branches,
            "path": ["presence"],
            "message": "Invalid input",
        }
        raise InputError(f"Malformed request: {json.dumps([union], indent=2)}")
    return str(body["type"]), str(body["target"]), presence


def whole(value: Any) -> int | None:
    if value is None:
        return None
    return max(int(value), 0)
