"""Backstage-style health endpoints."""

from __future__ import annotations

from flask import Blueprint, Response

from scaffolder.api.errors import json_response
from scaffolder.services import get_services

bp = Blueprint("health", __name__, url_prefix="/.backstage/health/v1")


@bp.get("/liveness")
def liveness() -> Response:
    return json_response({"status": "ok"})


@bp.get("/readiness")
def readiness() -> Response:
    if not get_services().ready:
        return json_response({"status": "error", "message": "Backend has not started yet"}, 503)
    return json_response({"status": "ok"})
