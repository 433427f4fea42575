"""``POST /api/scaffolder/v2/autocomplete/{provider}/{resource}`` (CONTRACT §2.11)."""

from __future__ import annotations

from flask import Blueprint, Response

from scaffolder.api.errors import json_response
from scaffolder.api.request import check_query, json_body, require_keys, require_object
from scaffolder.errors import InputError
from scaffolder.services import get_services

bp = Blueprint("autocomplete", __name__, url_prefix="/api/scaffolder")


@bp.post("/v2/autocomplete/<provider>/<resource>")
def autocomplete(provider: str, resource: str) -> Response:
    check_query(())
    body = require_object(json_body())
    require_keys(body, "context", "token")
    context = require_object(body["context"], "request/body/context")
    for key, value in context.items():
        if not isinstance(value, str):
            raise InputError(f"request/body/context/{key} must be string")
    token = body["token"]
    if not isinstance(token, str):
        raise InputError("request/body/token must be string")
    if not token:
        raise InputError("Missing token query parameter")
    handler = get_services().autocomplete.get(provider)
    if handler is None:
        raise InputError(f"Unsupported provider: {provider}")
    return json_response({"results": handler(resource, token, context)})
