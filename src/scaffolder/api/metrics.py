"""``GET /metrics``: Prometheus text exposition (no token needed unless configured)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from scaffolder.api.errors import error_response
from scaffolder.services import get_services

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    registry = get_services().metrics
    header = request.headers.get("Authorization")
    if not registry.authorized(header):
        message = "Illegal token" if header else "Missing credentials"
        return error_response("AuthenticationError", message, 401)
    body, content_type = registry.exposition(request.headers.get("Accept"))
    return Response(body, status=200, content_type=content_type)
