"""The catalog routes this service serves under ``/api/catalog`` (CONTRACT §8, a subset)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from scaffolder.api.errors import json_response
from scaffolder.api.request import check_query
from scaffolder.catalog.store import Filter
from scaffolder.errors import InputError, NotFoundError
from scaffolder.services import get_services

bp = Blueprint("catalog", __name__, url_prefix="/api/catalog")


def parse_filters(raw_filters: list[str]) -> list[Filter]:
    """``filter=kind=template,spec.type=service`` (same key ORed; separate filters ORed)."""
    filters: list[Filter] = []
    for raw in raw_filters:
        condition: dict[str, list[str | None]] = {}
        for statement in raw.split(","):
            key, sep, value = statement.partition("=")
            key = key.strip()
            if not key:
                raise InputError(
                    f"Invalid filter, '{statement}' is not a valid statement (expected a string "
                    "on the form a=b or a= or a)"
                )
            condition.setdefault(key, []).append(value.strip() if sep else None)
        filters.append(condition)
    return filters


@bp.get("/entities")
def list_entities() -> Response:
    check_query(("filter", "fields", "order", "offset", "limit", "after"))
    entities = get_services().catalog.list_entities(parse_filters(request.args.getlist("filter")))
    fields = [f for raw in request.args.getlist("fields") for f in raw.split(",") if f]
    if fields:
        entities = [_project(e, fields) for e in entities]
    return json_response(entities)


@bp.get("/entities/by-name/<kind>/<namespace>/<name>")
def entity_by_name(kind: str, namespace: str, name: str) -> Response:
    check_query(())
    entity = get_services().catalog.get_entity(f"{kind}:{namespace}/{name}")
    if entity is None:
        raise NotFoundError(
            f"No entity named '{name}' found, with kind '{kind}' in namespace '{namespace}'"
        )
    return json_response(entity)


def _project(entity: dict[str, object], fields: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for field in fields:
        if "[" in field:
            raise InputError(f'Invalid field "{field}", array type fields are not supported')
        node: object = entity
        target = out
        parts = field.split(".")
        # A key may itself contain dots (metadata.annotations.backstage.io/view-url).
        i = 0
        path: list[str] = []
        while i < len(parts) and isinstance(node, dict):
            for j in range(len(parts), i, -1):
                key = ".".join(parts[i:j])
                if key in node:
                    node = node[key]
                    path.append(key)
                    i = j
                    break
            else:
                node = None
                break
        if node is None or i < len(parts):
            continue
        for key in path[:-1]:
            target = target.setdefault(key, {})  # type: ignore[assignment]
        target[path[-1]] = node
    return out
