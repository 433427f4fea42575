"""The catalog routes under ``/api/catalog`` (CONTRACT §8), shaped as upstream answers.

Entities are stored pre-serialized; lists are written by splicing those bytes into the
response (upstream's ``writeEntitiesResponse``), so a page of 200 entities costs no JSON
parsing unless ``fields`` asks for a projection. Requests are checked as upstream's OpenAPI
validator checks them (unknown query parameters, empty values, body types), with its words.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, request

from scaffolder.api.catalog_request import (
    JSON_TYPE,
    OBJECT,
    STRINGS,
    TRUTHY,
    check_params,
    checked_body,
    decode_cursor,
    enum_arg,
    fields_param,
    filter_param,
    int_arg,
    location_input,
    page_info,
    project,
    raw_json,
    whole,
    wrapped,
)
from scaffolder.api.errors import json_response
from scaffolder.catalog.errors import EntityError
from scaffolder.catalog.model import RefError, parse_location_ref, stringify_ref
from scaffolder.catalog.query import (
    Projection,
    decode_json_base64,
    encode_cursor,
    parse_fields,
    parse_query,
)
from scaffolder.catalog.service import CatalogService
from scaffolder.catalog.validation import check_envelope
from scaffolder.errors import InputError, NotFoundError
from scaffolder.services import get_services

bp = Blueprint("catalog", __name__, url_prefix="/api/catalog")


def _catalog() -> CatalogService:
    catalog: CatalogService = get_services().catalog
    return catalog


# --- entities ------------------------------------------------------------------------------


@bp.get("/entities")
def list_entities() -> Response:
    check_params(("filter", "fields", "order", "offset", "limit", "after"))
    predicate = filter_param()
    projection = fields_param()
    order = []
    for item in request.args.getlist("order"):
        direction, sep, field = item.partition(":")
        if not sep or direction not in ("asc", "desc") or not field:
            raise InputError(
                f'Invalid order parameter "{item}", expected "<asc or desc>:<field name>"'
            )
        order.append((direction, field))
    limit, offset = int_arg("limit"), int_arg("offset")
    after = request.args.get("after")
    if limit is None and offset is None and after is None:
        batches = _catalog().store.iter_all(
            predicate=predicate,
            order_fields=[{"field": f, "order": d} for d, f in order],
        )
        return Response(_stream(batches, projection), content_type=JSON_TYPE)
    if limit is not None and limit <= 0:
        raise InputError("Invalid limit, must be greater than zero")
    if after is not None:
        try:
            cursor = decode_json_base64(after)
        except ValueError:
            raise InputError("Malformed after cursor, could not be parsed") from None
        if isinstance(cursor, dict):
            if "limit" in cursor:
                if not isinstance(cursor["limit"], int) or isinstance(cursor["limit"], bool):
                    raise InputError("Malformed after cursor, limit was not an number")
                limit = cursor["limit"]
            if "offset" in cursor:
                if not isinstance(cursor["offset"], int) or isinstance(cursor["offset"], bool):
                    raise InputError("Malformed after cursor, offset was not a number")
                offset = cursor["offset"]
    items, more = _catalog().store.list_page(
        predicate=predicate, order=order, limit=limit, offset=offset
    )
    response = raw_json("[" + ",".join(project(items, projection)) + "]")
    if more and limit is not None:
        following = encode_cursor({"limit": limit, "offset": (offset or 0) + limit})
        kept = [(k, v) for k, v in request.args.items(multi=True) if k not in ("offset", "after")]
        kept.append(("after", following))
        response.headers["link"] = f'</entities?{urlencode(kept)}>; rel="next"'
    return response


def _stream(batches: Iterator[list[str]], projection: Projection | None) -> Iterator[str]:
    first = True
    for batch in batches:
        chunk = ",".join(project(batch, projection))
        yield ("[" if first else ",") + chunk
        first = False
    yield "[]" if first else "]"


def _query_page(
    *,
    limit: int | None,
    offset: int | None,
    initial: dict[str, Any] | None,
    cursor: dict[str, Any] | None,
    projection: Projection | None,
) -> Response:
    page = _catalog().store.query_entities(
        limit=200 if limit is None else limit, offset=offset, initial=initial, cursor=cursor
    )
    meta = {
        "totalItems": page.total_items,
        "pageInfo": page_info(page.next_cursor, page.prev_cursor),
    }
    return wrapped(project(page.items, projection), meta)


@bp.get("/entities/by-query")
def query_entities_get() -> Response:
    check_params(
        (
            "fields",
            "limit",
            "offset",
            "orderField",
            "cursor",
            "filter",
            "totalItems",
            "fullTextFilterTerm",
            "fullTextFilterFields",
        )
    )
    limit, offset = int_arg("limit"), int_arg("offset")
    mode = enum_arg("totalItems", ("include", "exclude"))
    projection = fields_param()
    if request.args.get("cursor"):
        cursor = decode_cursor(request.args["cursor"])
        return _query_page(
            limit=limit, offset=offset, initial=None, cursor=cursor, projection=projection
        )
    order_fields = []
    for item in request.args.getlist("orderField"):
        field, _, direction = item.partition(",")
        if direction and direction not in ("asc", "desc"):
            raise InputError("Invalid order field order, must be asc or desc")
        order_fields.append({"field": field, **({"order": direction} if direction else {})})
    text: dict[str, Any] = {"term": request.args.get("fullTextFilterTerm") or ""}
    text_fields = [
        f for raw in request.args.getlist("fullTextFilterFields") for f in raw.split(",")
    ]
    if text_fields:
        text["fields"] = text_fields
    initial = {
        "query": filter_param(),
        "orderFields": order_fields,
        "fullTextFilter": text,
        "totalItemsMode": mode or "include",
    }
    return _query_page(
        limit=limit, offset=offset, initial=initial, cursor=None, projection=projection
    )


_BY_QUERY_BODY = {
    "type": "object",
    "properties": {
        "cursor": {"type": "string"},
        "limit": {"type": "number"},
        "offset": {"type": "number"},
        "orderBy": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "order"],
                "properties": {
                    "field": {"type": "string"},
                    "order": {"type": "string", "enum": ["asc", "desc"]},
                },
            },
        },
        "fullTextFilter": {
            "type": "object",
            "properties": {"term": {"type": "string"}, "fields": STRINGS},
        },
        "fields": STRINGS,
        "totalItems": {"type": "string", "enum": ["include", "exclude"]},
        "query": OBJECT,
    },
}


@bp.post("/entities/by-query")
def query_entities_post() -> Response:
    check_params(())
    body = checked_body(_BY_QUERY_BODY, required=False) or {}
    fields = body.get("fields") or []
    projection = parse_fields((), fields) if fields else None
    limit = whole(body.get("limit"))
    if "cursor" in body:
        if not body["cursor"]:
            raise InputError("Cursor cannot be empty")
        cursor = decode_cursor(body["cursor"])
        return _query_page(
            limit=limit, offset=None, initial=None, cursor=cursor, projection=projection
        )
    predicate = parse_query(body["query"]) if "query" in body else None
    text = body.get("fullTextFilter")
    initial: dict[str, Any] = {
        "query": predicate,
        "orderFields": [
            {"field": o["field"], "order": o["order"]} for o in body.get("orderBy") or []
        ],
        "fullTextFilter": (
            {
                "term": text.get("term") or "",
                **({"fields": text["fields"]} if "fields" in text else {}),
            }
            if isinstance(text, dict)
            else None
        ),
        "totalItemsMode": body.get("totalItems") or "include",
    }
    return _query_page(
        limit=limit,
        offset=whole(body.get("offset")),
        initial=initial,
        cursor=None,
        projection=projection,
    )


@bp.get("/entities/by-uid/<uid>")
def entity_by_uid(uid: str) -> Response:
    check_params(())
    text = _catalog().store.entity_json_by_uid(uid)
    if text is None:
        raise NotFoundError(f"No entity with uid {uid}")
    return raw_json(text)


@bp.delete("/entities/by-uid/<uid>")
def delete_entity_by_uid(uid: str) -> Response:
    check_params(())
    _catalog().delete_entity(uid)
    return Response(b"", status=204)


@bp.get("/entities/by-name/<kind>/<namespace>/<name>")
def entity_by_name(kind: str, namespace: str, name: str) -> Response:
    check_params(())
    text = _catalog().store.entity_json(stringify_ref(kind, namespace, name))
    if text is None:
        raise NotFoundError(
            f"No entity named '{name}' found, with kind '{kind}' in namespace '{namespace}'"
        )
    return raw_json(text)


@bp.get("/entities/by-name/<kind>/<namespace>/<name>/ancestry")
def entity_ancestry(kind: str, namespace: str, name: str) -> Response:
    check_params(())
    return json_response(_catalog().ancestry(kind, namespace, name))


_BY_REFS_BODY = {
    "type": "object",
    "required": ["entityRefs"],
    "properties": {"entityRefs": STRINGS, "fields": STRINGS, "query": OBJECT},
}


@bp.post("/entities/by-refs")
def entities_by_refs() -> Response:
    check_params(("filter",))
    body = checked_body(_BY_REFS_BODY, required=False)
    if not isinstance(body, dict) or not isinstance(body.get("entityRefs"), list):
        raise InputError(
            "Malformed request body (did you remember to specify an application/json content "
            'type?), Validation error: Required at "entityRefs"'
        )
    query = None
    if "query" in body:
        query = parse_query(
            body["query"],
            "Malformed request body (did you remember to specify an application/json "
            "content type?), ",
        )
    from_params = filter_param()
    combined = {"$all": [from_params, query]} if from_params and query else from_params or query
    projection = parse_fields((), body.get("fields") or [])
    items = _catalog().store.entities_by_refs(body["entityRefs"], combined)
    return wrapped(project(items, projection))


@bp.get("/entity-facets")
def entity_facets_get() -> Response:
    check_params(("facet", "filter"), required=("facet",))
    facets = [f for f in request.args.getlist("facet") if f]
    if not facets:
        raise InputError("Missing facet parameter")
    return json_response({"facets": _catalog().store.facets(facets, filter_param())})


_FACETS_BODY = {
    "type": "object",
    "required": ["facets"],
    "properties": {"facets": STRINGS, "query": OBJECT},
}


@bp.post("/entity-facets")
def entity_facets_post() -> Response:
    check_params(())
    body = checked_body(_FACETS_BODY, required=True)
    facets = [f for f in body["facets"] if f]
    if not facets:
        raise InputError("Missing or empty facets parameter")
    predicate = parse_query(body["query"]) if "query" in body else None
    return json_response({"facets": _catalog().store.facets(facets, predicate)})


_REFRESH_BODY = {
    "type": "object",
    "required": ["entityRef"],
    "additionalProperties": False,
    "properties": {"authorizationToken": {"type": "string"}, "entityRef": {"type": "string"}},
}


@bp.post("/refresh")
def refresh() -> Response:
    check_params(())
    body = checked_body(_REFRESH_BODY, required=True)
    _catalog().refresh_entity(body["entityRef"])
    return Response(b"", status=200)


# --- locations -----------------------------------------------------------------------------

_LOCATION_BODY = {
    "type": "object",
    "required": ["target", "type"],
    "properties": {"target": {"type": "string"}, "type": {"type": "string"}},
}
_LOCATION_INPUT = {
    "type": "object",
    "required": ["type", "target"],
    "additionalProperties": False,
    "properties": {"type": {"type": "string"}, "target": {"type": "string"}},
}


@bp.post("/locations")
def create_location() -> Response:
    check_params(("dryRun", "onConflict"))
    on_conflict = enum_arg("onConflict", ("refresh", "reject"))
    body = checked_body(_LOCATION_BODY, required=True)
    kind, target, presence = location_input(body)
    dry_run = (request.args.get("dryRun") or "").strip().lower() in TRUTHY
    catalog = _catalog()
    if dry_run:
        result = catalog.dry_run(kind, target, presence)
        return json_response(
            {"exists": result.exists, "location": result.location, "entities": result.entities},
            201,
        )
    location = catalog.create_location(kind, target, on_conflict=on_conflict or "reject")
    return json_response({"location": location.to_json(), "entities": []}, 201)


@bp.get("/locations")
def list_locations() -> Response:
    check_params(())
    return json_response([{"data": loc.to_json()} for loc in _catalog().store.locations()])


_LOCATIONS_QUERY_BODY = {
    "type": "object",
    "properties": {"cursor": {"type": "string"}, "limit": {"type": "number"}, "query": OBJECT},
}


@bp.post("/locations/by-query")
def query_locations() -> Response:
    check_params(())
    body = checked_body(_LOCATIONS_QUERY_BODY, required=False) or {}
    after_id: str | None = None
    if "cursor" in body:
        if not body["cursor"]:
            raise InputError("Cursor cannot be empty")
        try:
            cursor = decode_json_base64(body["cursor"])
        except ValueError:
            raise InputError("Malformed cursor, unknown encoding") from None
        if (
            not isinstance(cursor, dict)
            or not isinstance(cursor.get("limit"), int)
            or cursor["limit"] < 1
        ):
            raise InputError("Malformed cursor: Validation error: Invalid cursor")
        limit, after_id, query = cursor["limit"], cursor.get("afterId"), cursor.get("query")
    else:
        limit = body.get("limit", 1000)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InputError("Limit must be a positive integer >= 1")
        query = parse_query(body["query"]) if "query" in body else None
    items, total = _catalog().store.query_locations(query, after_id=after_id, limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    page: dict[str, Any] = {}
    if more:
        cursor_body: dict[str, Any] = {"limit": limit, "afterId": items[-1].id}
        if query is not None:
            cursor_body["query"] = query
        page["nextCursor"] = encode_cursor(cursor_body)
    return json_response(
        {
            "items": [
                {"id": i.id, "target": i.target, "type": i.type, "entityRef": i.entity_ref}
                for i in items
            ],
            "totalItems": total,
            "pageInfo": page,
        }
    )


@bp.get("/locations/<location_id>")
def get_location(location_id: str) -> Response:
    check_params(())
    return json_response(_catalog().location(location_id).to_json())


@bp.put("/locations/<location_id>")
def update_location(location_id: str) -> Response:
    check_params(())
    body = checked_body(_LOCATION_INPUT, required=True)
    kind, target, _ = location_input(body)
    return json_response(_catalog().update_location(location_id, kind, target).to_json())


@bp.delete("/locations/<location_id>")
def delete_location(location_id: str) -> Response:
    check_params(())
    _catalog().delete_location(location_id)
    return Response(b"", status=204)


@bp.get("/locations/by-entity/<kind>/<namespace>/<name>")
def location_by_entity(kind: str, namespace: str, name: str) -> Response:
    check_params(())
    return json_response(_catalog().location_by_entity(kind, namespace, name).to_json())


# --- validation ----------------------------------------------------------------------------

_VALIDATE_BODY = {
    "type": "object",
    "required": ["location", "entity"],
    "properties": {"location": {"type": "string"}, "entity": {"type": "object"}},
}


@bp.post("/validate-entity")
def validate_entity() -> Response:
    check_params(())
    body = checked_body(_VALIDATE_BODY, required=True)
    try:
        check_envelope(body["entity"])
        location = parse_location_ref(body["location"])
        if location.type != "url":
            raise EntityError(
                name="TypeError",
                message=f"Invalid location ref {body['location']}, only 'url:<target>' is "
                "supported, e.g. url:https://host/path",
            )
    except EntityError as exc:
        return json_response({"errors": [exc.to_json()]}, 400)
    except RefError as exc:
        return json_response({"errors": [{"name": "TypeError", "message": str(exc)}]}, 400)
    errors = _catalog().validate_entity(body["entity"], body["location"])
    if errors:
        return json_response({"errors": [e.to_json() for e in errors]}, 400)
    return Response(b"", status=200)
