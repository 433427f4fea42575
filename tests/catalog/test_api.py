"""The /api/catalog routes: shapes, filters, projections, cursors and errors (CONTRACT §8).

Expected bodies and messages are upstream's (traces 47-63 and the reference backend).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from flask.testing import FlaskClient

from scaffolder.app import create_app
from scaffolder.catalog.model import location_entity_ref
from scaffolder.services import Services
from tests.catalog.conftest import CATALOG, component, group, refresh_all, write_yaml

# The catalog store speaks SQL to both engines: run these on SQLite and PostgreSQL.
pytestmark = pytest.mark.both_engines

FIXTURE = "https://catalog.example.com/catalog-info.yaml"


@pytest.fixture
def populated(
    make_catalog: Callable[..., Services], catalog_dir: Path
) -> tuple[Services, FlaskClient]:
    documents: list[dict[str, Any]] = [group("team-a"), group("team-b")]
    for index in range(12):
        entity = component(
            f"svc-{index:02d}",
            type=("service", "website", "library")[index % 3],
            owner=("team-a", "team-b")[index % 2],
        )
        entity["metadata"]["tags"] = ["java" if index % 2 else "python"]
        entity["metadata"]["description"] = f"Service number {index}"
        documents.append(entity)
    write_yaml(catalog_dir / "catalog-info.yaml", *documents)
    services = make_catalog(
        [{"type": "file", "target": f"{catalog_dir}/*.yaml"}],
        reading={"allow": [{"host": "catalog.example.com"}]},
    )
    return services, create_app(services=services).test_client()


def _names(items: list[Any]) -> list[str]:
    return [i["metadata"]["name"] for i in items]


def _cursor(encoded: str) -> Any:
    return json.loads(base64.b64decode(encoded))


def test_entities_filter_fields_and_order(populated: tuple[Services, FlaskClient]) -> None:
    _, client = populated
    res = client.get(
        f"{CATALOG}/entities?filter=kind=component,spec.type=service&fields=metadata.name"
    )
    assert res.status_code == 200
    assert res.content_type == "application/json; charset=utf-8"
    assert sorted(_names(res.json)) == ["svc-00", "svc-03", "svc-06", "svc-09"]
    assert all(list(e) == ["metadata"] for e in res.json)
    # Same key twice ORs its values; separate filters are ORed.
    either = client.get(f"{CATALOG}/entities?filter=metadata.name=svc-01,metadata.name=svc-02")
    assert sorted(_names(either.json)) == ["svc-01", "svc-02"]
    union = client.get(f"{CATALOG}/entities?filter=kind=group&filter=metadata.tags.java")
    assert len(union.json) == 2 + 6
    ordered = client.get(
        f"{CATALOG}/entities?filter=kind=component&order=desc:metadata.name&fields=metadata.name"
    )
    assert _names(ordered.json) == [f"svc-{i:02d}" for i in range(11, -1, -1)]
    annotation = client.get(
        f"{CATALOG}/entities?filter=metadata.name=svc-00"
        "&fields=metadata.annotations.backstage.io/managed-by-location"
    )
    assert list(annotation.json[0]["metadata"]["annotations"]) == [
        "backstage.io/managed-by-location"
    ]


def test_entities_pagination_link_header_walks_every_page(
    populated: tuple[Services, FlaskClient],
) -> None:
    _, client = populated
    url = f"{CATALOG}/entities?filter=kind=component&fields=metadata.name&limit=5"
    seen: list[str] = []
    while url:
        res = client.get(url)
        seen.extend(_names(res.json))
        link = res.headers.get("link")
        if link is None:
            break
        assert link.endswith('>; rel="next"')
        url = CATALOG + link[1 : link.index(">")]
        assert "offset" not in url
    assert seen == sorted(seen)  # by entity ref
    assert len(seen) == 12
    first_link = client.get(
        f"{CATALOG}/entities?filter=kind=component&fields=metadata.name&limit=5&offset=2"
    ).headers["link"]
    after = first_link.split("after=")[1].split(">")[0]
    from urllib.parse import unquote

    assert _cursor(unquote(after)) == {"limit": 5, "offset": 7}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "Invalid limit, must be greater than zero"),
        ("offset=-1", "request/query/offset must be >= 0"),
        ("limit=x", "request/query/limit must be integer"),
        ("after=", "Empty value found for query parameter 'after'"),
        ("after=bad", "Malformed after cursor, could not be parsed"),
        ("order=bad", 'Invalid order parameter "bad", expected "<asc or desc>:<field name>"'),
        (
            "fields=spec.steps[0]",
            'Invalid field "spec.steps[0]", array type fields are not supported',
        ),
        (
            "filter==x",
            "Invalid filter, '=x' is not a valid statement (expected a string on the form a=b "
            "or a= or a)",
        ),
        ("foo=1", "Unknown query parameter 'foo'"),
    ],
)
def test_entities_bad_params(
    populated: tuple[Services, FlaskClient], query: str, message: str
) -> None:
    _, client = populated
    res = client.get(f"{CATALOG}/entities?{query}")
    assert res.status_code == 400
    assert res.json == {
        "error": {"name": "InputError", "message": message},
        "request": {"method": "GET", "url": f"/entities?{query}"},
        "response": {"statusCode": 400},
    }


def test_by_query_predicates(populated: tuple[Services, FlaskClient]) -> None:
    _, client = populated

    def names(query: dict[str, Any]) -> list[str]:
        res = client.post(
            f"{CATALOG}/entities/by-query", json={"query": query, "fields": ["metadata.name"]}
        )
        assert res.status_code == 200, res.json
        return sorted(_names(res.json["items"]))

    assert names({"kind": "GROUP"}) == ["team-a", "team-b"]
    assert names({"metadata.name": {"$in": ["svc-01", "team-a", "nope"]}}) == ["svc-01", "team-a"]
    assert names({"$all": [{"kind": "component"}, {"spec.type": "website"}]}) == [
        "svc-01",
        "svc-04",
        "svc-07",
        "svc-10",
    ]
    assert names({"$any": [{"metadata.name": "svc-01"}, {"metadata.name": "svc-02"}]}) == [
        "svc-01",
        "svc-02",
    ]
    assert names({"$all": [{"kind": "component"}, {"$not": {"spec.owner": "team-a"}}]}) == [
        f"svc-{i:02d}" for i in range(1, 12, 2)
    ]
    # An empty array indexes nothing, so `spec.children: []` does not "exist" (as upstream).
    assert names({"spec.children": {"$exists": True}}) == []
    assert names({"kind": "group", "metadata.tags": {"$exists": False}}) == ["team-a", "team-b"]
    assert names({"metadata.name": {"$hasPrefix": "SVC-1"}}) == ["svc-10", "svc-11"]
    assert len(names({"metadata.tags": {"$contains": "java"}})) == 6
    assert names(
        {"relations": {"$contains": {"type": "ownerOf", "targetRef": "component:default/svc-01"}}}
    ) == ["team-b"]
    assert names({"$any": []}) == []
    assert len(names({})) == 12 + 2 + 1


def test_by_query_cursor_walks_forward_and_back(populated: tuple[Services, FlaskClient]) -> None:
    _, client = populated
    body = {
        "query": {"kind": "component"},
        "orderBy": [{"field": "metadata.name", "order": "desc"}],
        "limit": 5,
        "fields": ["metadata.name"],
    }
    first = client.post(f"{CATALOG}/entities/by-query", json=body).json
    assert _names(first["items"]) == ["svc-11", "svc-10", "svc-09", "svc-08", "svc-07"]
    assert first["totalItems"] == 12
    assert list(first["pageInfo"]) == ["nextCursor"]
    cursor = _cursor(first["pageInfo"]["nextCursor"])
    assert list(cursor) == [
        "orderFields",
        "isPrevious",
        "query",
        "orderFieldValues",
        "firstSortFieldValues",
        "totalItems",
    ]
    assert cursor["orderFieldValues"][0] == "svc-07"
    # The cursor does not carry the limit: each request says it (or gets 200).
    second = client.get(
        f"{CATALOG}/entities/by-query?cursor={first['pageInfo']['nextCursor']}"
        "&fields=metadata.name&limit=5"
    ).json
    assert _names(second["items"]) == ["svc-06", "svc-05", "svc-04", "svc-03", "svc-02"]
    assert second["totalItems"] == 12
    third = client.post(
        f"{CATALOG}/entities/by-query",
        json={"cursor": second["pageInfo"]["nextCursor"], "fields": ["metadata.name"], "limit": 5},
    ).json
    assert _names(third["items"]) == ["svc-01", "svc-00"]
    assert list(third["pageInfo"]) == ["prevCursor"]
    back = client.post(
        f"{CATALOG}/entities/by-query",
        json={"cursor": third["pageInfo"]["prevCursor"], "fields": ["metadata.name"], "limit": 5},
    ).json
    assert _names(back["items"]) == _names(second["items"])


def test_by_query_get_params_full_text_and_totals(populated: tuple[Services, FlaskClient]) -> None:
    _, client = populated
    res = client.get(
        f"{CATALOG}/entities/by-query?filter=kind=component&fullTextFilterTerm=NUMBER 1"
        "&fullTextFilterFields=metadata.description&fields=metadata.name&limit=50"
    ).json
    assert sorted(_names(res["items"])) == ["svc-01", "svc-10", "svc-11"]
    assert res["pageInfo"] == {}
    excluded = client.get(f"{CATALOG}/entities/by-query?limit=1&totalItems=exclude").json
    assert excluded["totalItems"] == 0
    counted = client.get(f"{CATALOG}/entities/by-query?limit=0").json
    assert counted == {"items": [], "totalItems": 15, "pageInfo": {}}
    offset = client.get(
        f"{CATALOG}/entities/by-query?filter=kind=component&orderField=metadata.name,asc"
        "&offset=10&fields=metadata.name"
    ).json
    assert _names(offset["items"]) == ["svc-10", "svc-11"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": {"$bad": 1}}, 'Invalid query: Validation error: Invalid at "$bad"'),
        (
            {"query": {"$not": {"$bad": 1}}},
            'Invalid query: Validation error: Invalid at "$not.$bad"',
        ),
        (
            {"query": {"$all": [], "x": 1}},
            "Invalid query: Validation error: Unrecognized key(s) in object: 'x'",
        ),
        ({"query": "kind"}, "request/body/query must be object"),
        ({"limit": "x"}, "request/body/limit must be number"),
        (
            {"orderBy": [{"field": "kind"}]},
            "request/body/orderBy/0 must have required property 'order'",
        ),
        ({"cursor": ""}, "Cursor cannot be empty"),
        (
            {"totalItems": "all"},
            "request/body/totalItems must be equal to one of the allowed values: include, exclude",
        ),
        (
            {"query": {"metadata.name": {"$contains": {"a": 1}}}},
            'Object form of $contains is not supported for field "metadata.name"',
        ),
    ],
)
def test_by_query_errors(
    populated: tuple[Services, FlaskClient], body: dict[str, Any], message: str
) -> None:
    _, client = populated
    res = client.post(f"{CATALOG}/entities/by-query", json=body)
    assert res.status_code == 400
    assert res.json["error"] == {"name": "InputError", "message": message}


def test_single_entity_routes(populated: tuple[Services, FlaskClient], catalog_dir: Path) -> None:
    services, client = populated
    entity = client.get(f"{CATALOG}/entities/by-name/Component/default/SVC-01").json
    assert entity["metadata"]["name"] == "svc-01"
    uid = entity["metadata"]["uid"]
    assert client.get(f"{CATALOG}/entities/by-uid/{uid}").json == entity
    missing = client.get(f"{CATALOG}/entities/by-uid/nope")
    assert missing.status_code == 404
    assert missing.json["error"]["message"] == "No entity with uid nope"

    assert client.delete(f"{CATALOG}/entities/by-uid/{uid}").status_code == 204
    assert client.get(f"{CATALOG}/entities/by-uid/{uid}").status_code == 404
    group_after = client.get(f"{CATALOG}/entities/by-name/group/default/team-b").json
    assert {"type": "ownerOf", "targetRef": "component:default/svc-01"} not in group_after[
        "relations"
    ]
    assert client.delete(f"{CATALOG}/entities/by-uid/nope").status_code == 204
    refresh_all(services)  # the location still emits it: it comes back, with a new uid
    back = client.get(f"{CATALOG}/entities/by-name/component/default/svc-01").json
    assert back["metadata"]["uid"] != uid

    ancestry = client.get(f"{CATALOG}/entities/by-name/component/default/svc-01/ancestry").json
    root = location_entity_ref("file", f"{catalog_dir}/*.yaml")
    assert ancestry["rootEntityRef"] == "component:default/svc-01"
    assert [i["parentEntityRefs"] for i in ancestry["items"]] == [[root], []]
    assert ancestry["items"][0]["entity"] == back
    nope = client.get(f"{CATALOG}/entities/by-name/component/default/nope/ancestry")
    assert nope.status_code == 404
    assert nope.json["error"]["message"] == "No such entity component:default/nope"


def test_by_refs_keeps_order_and_nulls(populated: tuple[Services, FlaskClient]) -> None:
    _, client = populated
    res = client.post(
        f"{CATALOG}/entities/by-refs?filter=kind=component",
        json={
            "entityRefs": [
                "component:default/SVC-02",
                "x:y/z",
                "group:default/team-a",
                "component:default/svc-01",
            ],
            "fields": ["metadata.name", "kind"],
        },
    )
    assert res.status_code == 200
    assert res.get_data(as_text=True) == (
        '{"items":[{"metadata":{"name":"svc-02"},"kind":"Component"},null,null,'
        '{"metadata":{"name":"svc-01"},"kind":"Component"}]}'
    )
    filtered = client.post(
        f"{CATALOG}/entities/by-refs",
        json={
            "entityRefs": ["component:default/svc-01", "component:default/svc-02"],
            "query": {"spec.owner": "team-a"},
        },
    ).json
    assert filtered["items"][0] is None
    assert filtered["items"][1]["metadata"]["name"] == "svc-02"
    bad = client.post(f"{CATALOG}/entities/by-refs", json={"entityRefs": "x"})
    assert bad.json["error"]["message"] == "request/body/entityRefs must be array"
    fields_param = client.post(f"{CATALOG}/entities/by-refs?fields=kind", json={"entityRefs": []})
    assert fields_param.json["error"]["message"] == "Unknown query parameter 'fields'"
    no_type = client.post(f"{CATALOG}/entities/by-refs", data="{}")
    assert no_type.json["error"]["message"] == (
        "Malformed request body (did you remember to specify an application/json content "
        'type?), Validation error: Required at "entityRefs"'
    )


def test_facets(populated: tuple[Services, FlaskClient]) -> None:
    _, client = populated
    res = client.get(f"{CATALOG}/entity-facets?facet=kind&facet=spec.type&filter=kind=component")
    assert res.json == {
        "facets": {
            "kind": [{"value": "Component", "count": 12}],
            "spec.type": [
                {"value": "library", "count": 4},
                {"value": "service", "count": 4},
                {"value": "website", "count": 4},
            ],
        }
    }
    tags = client.post(
        f"{CATALOG}/entity-facets",
        json={"facets": ["metadata.tags"], "query": {"spec.type": "service"}},
    ).json
    assert tags == {
        "facets": {
            "metadata.tags": [{"value": "java", "count": 2}, {"value": "python", "count": 2}]
        }
    }
    missing = client.get(f"{CATALOG}/entity-facets")
    assert missing.json["error"]["message"] == "request/query must have required property 'facet'"
    empty = client.post(f"{CATALOG}/entity-facets", json={"facets": []})
    assert empty.json["error"]["message"] == "Missing or empty facets parameter"


@pytest.fixture
def remote() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(
            FIXTURE,
            body=yaml.safe_dump_all(
                [component("fixture-service", owner="group:default/platform"), group("platform")]
            ),
        )
        mock.get("https://catalog.example.com/nope.yaml", status=404)
        yield mock


def test_dry_run_matches_upstream_shape(
    populated: tuple[Services, FlaskClient], remote: responses.RequestsMock
) -> None:
    _, client = populated
    res = client.post(f"{CATALOG}/locations?dryRun=true", json={"type": "url", "target": FIXTURE})
    assert res.status_code == 201
    body = res.json
    assert body["exists"] is False
    assert body["location"] == {
        "type": "url",
        "target": FIXTURE,
        "id": f"url:{FIXTURE}",
        "entityRef": location_entity_ref("url", FIXTURE),
    }
    kinds = [(e["kind"], e["metadata"]["name"]) for e in body["entities"]]
    assert kinds == [
        ("Location", location_entity_ref("url", FIXTURE).split("/")[1]),
        ("Group", "platform"),
        ("Component", "fixture-service"),
    ]
    location = body["entities"][0]
    assert list(location["metadata"]) == ["annotations", "name", "namespace"]
    assert all("uid" not in e["metadata"] and "relations" not in e for e in body["entities"])
    assert client.get(f"{CATALOG}/locations").json == []  # nothing stored

    missing = client.post(
        f"{CATALOG}/locations?dryRun=true",
        json={"type": "url", "target": "https://catalog.example.com/nope.yaml"},
    )
    assert missing.status_code == 400
    assert missing.json["error"]["message"] == (
        "NotFoundError: Unable to read url, no matching files found for "
        "https://catalog.example.com/nope.yaml"
    )


def test_location_lifecycle(
    populated: tuple[Services, FlaskClient], remote: responses.RequestsMock
) -> None:
    services, client = populated
    created = client.post(f"{CATALOG}/locations", json={"type": "url", "target": FIXTURE})
    assert created.status_code == 201
    location = created.json["location"]
    assert list(location) == ["id", "type", "target", "entityRef"]
    assert created.json["entities"] == []
    assert services.catalog.get_entity("component:default/fixture-service") is not None

    duplicate = client.post(f"{CATALOG}/locations", json={"type": "url", "target": FIXTURE})
    assert duplicate.status_code == 409
    assert duplicate.json["error"] == {
        "name": "ConflictError",
        "message": f"Location url:{FIXTURE} already exists",
    }
    again = client.post(
        f"{CATALOG}/locations?onConflict=refresh", json={"type": "url", "target": FIXTURE}
    )
    assert again.status_code == 201
    assert again.json["location"] == location
    dry = client.post(f"{CATALOG}/locations?dryRun=1", json={"type": "url", "target": FIXTURE})
    assert dry.json["exists"] is True

    assert client.get(f"{CATALOG}/locations").json == [{"data": location}]
    assert client.get(f"{CATALOG}/locations/{location['id']}").json == location
    assert (
        client.get(f"{CATALOG}/locations/by-entity/component/default/fixture-service").json
        == location
    )
    by_query = client.post(
        f"{CATALOG}/locations/by-query", json={"query": {"type": "URL"}, "limit": 1}
    ).json
    assert by_query["items"] == [
        {"id": location["id"], "target": FIXTURE, "type": "url", "entityRef": location["entityRef"]}
    ]
    assert by_query["totalItems"] == 1
    assert by_query["pageInfo"] == {}
    not_registered = client.get(f"{CATALOG}/locations/by-entity/component/default/svc-01")
    assert not_registered.status_code == 404

    moved = "https://catalog.example.com/moved.yaml"
    remote.get(moved, body=yaml.safe_dump(component("moved-service")))
    updated = client.put(
        f"{CATALOG}/locations/{location['id']}", json={"type": "url", "target": moved}
    )
    assert updated.json == {**location, "target": moved}
    services.catalog.refresh_source(location["entityRef"])
    assert services.catalog.get_entity("component:default/moved-service") is not None
    assert services.catalog.get_entity("component:default/fixture-service") is None

    assert client.delete(f"{CATALOG}/locations/{location['id']}").status_code == 204
    assert services.catalog.get_entity("component:default/moved-service") is None
    assert services.catalog.get_entity(location["entityRef"]) is None
    gone = client.get(f"{CATALOG}/locations/{location['id']}")
    assert gone.status_code == 404
    assert gone.json["error"]["message"] == f"Found no location with ID {location['id']}"


@pytest.mark.parametrize(
    ("url", "body", "content_type", "message"),
    [
        (
            "/locations",
            {"type": "file", "target": "/x.yaml"},
            "application/json",
            'Registered locations must be of an allowed type ["url"]',
        ),
        (
            "/locations",
            {"type": "url"},
            "application/json",
            "request/body must have required property 'target'",
        ),
        ("/locations", {"type": "url", "target": "x"}, None, "unsupported media type undefined"),
        (
            "/locations",
            {"type": "url", "target": "x"},
            "text/plain",
            "unsupported media type text/plain",
        ),
        (
            "/locations?onConflict=x",
            {"type": "url", "target": "x"},
            "application/json",
            "request/query/onConflict must be equal to one of the allowed values: refresh, reject",
        ),
        (
            "/refresh",
            {},
            "application/json",
            "request/body must have required property 'entityRef'",
        ),
        (
            "/refresh",
            {"entityRef": "x", "foo": 1},
            "application/json",
            "request/body must NOT have additional properties",
        ),
        (
            "/locations/by-query",
            {"limit": 0},
            "application/json",
            "Limit must be a positive integer >= 1",
        ),
        (
            "/locations/by-query",
            {"query": {"foo": "x"}},
            "application/json",
            "Invalid filter predicate, expected key to be 'id', 'type', 'target', or 'entityRef', got 'foo'",
        ),
    ],
)
def test_request_errors(
    populated: tuple[Services, FlaskClient],
    url: str,
    body: dict[str, Any],
    content_type: str | None,
    message: str,
) -> None:
    _, client = populated
    kwargs: dict[str, Any] = {"data": json.dumps(body)}
    if content_type:
        kwargs["content_type"] = content_type
    res = client.post(f"{CATALOG}{url}", **kwargs)
    assert res.status_code == 400
    assert res.json["error"] == {"name": "InputError", "message": message}


def test_unrecognized_location_keys_are_refused_as_zod_does(
    populated: tuple[Services, FlaskClient],
) -> None:
    _, client = populated
    res = client.post(f"{CATALOG}/locations", json={"type": "url", "target": "x", "extra": 1})
    assert res.json["error"]["message"] == (
        'Malformed request: [\n  {\n    "code": "unrecognized_keys",\n    "keys": [\n'
        '      "extra"\n    ],\n    "path": [],\n    "message": "Unrecognized key(s) in '
        "object: 'extra'\"\n  }\n]"
    )


def test_refresh_route(populated: tuple[Services, FlaskClient], catalog_dir: Path) -> None:
    services, client = populated
    write_yaml(catalog_dir / "late.yaml", component("late"))
    res = client.post(f"{CATALOG}/refresh", json={"entityRef": "component:default/svc-01"})
    assert res.status_code == 200
    assert res.data == b""
    assert services.catalog.get_entity("component:default/late") is not None
    missing = client.post(f"{CATALOG}/refresh", json={"entityRef": "component:default/nope"})
    assert missing.status_code == 404
    assert missing.json["error"]["message"] == "Entity component:default/nope not found"


def test_validate_entity(populated: tuple[Services, FlaskClient]) -> None:
    _, client = populated
    ok = client.post(
        f"{CATALOG}/validate-entity",
        json={"entity": component("validated-thing"), "location": f"url:{FIXTURE}"},
    )
    assert ok.status_code == 200
    assert ok.data == b""
    bad = component("Not Valid Name!")
    bad["spec"] = {"type": "service"}
    res = client.post(
        f"{CATALOG}/validate-entity", json={"entity": bad, "location": f"url:{FIXTURE}"}
    )
    inner = (
        '"metadata.name" is not valid; expected a string that is sequences of [a-zA-Z0-9] '
        'separated by any of [-_.], at most 63 characters in total but found "Not Valid '
        'Name!". To learn more about catalog file format, visit: '
        "https://github.com/backstage/backstage/blob/master/docs/architecture-decisions/"
        "adr002-default-catalog-file-format.md"
    )
    assert res.status_code == 400
    assert res.json == {
        "errors": [
            {
                "name": "InputError",
                "message": "Policy check failed for component:default/not valid name!; "
                f"caused by Error: {inner}",
                "cause": {"name": "Error", "message": inner},
            }
        ]
    }
    file_ref = client.post(
        f"{CATALOG}/validate-entity", json={"entity": component("x"), "location": "file:/x"}
    )
    assert file_ref.json == {
        "errors": [
            {
                "name": "TypeError",
                "message": "Invalid location ref file:/x, only 'url:<target>' is supported, "
                "e.g. url:https://host/path",
            }
        ]
    }
    no_location = client.post(f"{CATALOG}/validate-entity", json={"entity": component("x")})
    assert no_location.json["error"]["message"] == (
        "request/body must have required property 'location'"
    )
    malformed = client.post(
        f"{CATALOG}/validate-entity", data='{"entity": ', content_type="application/json"
    )
    assert malformed.json["error"]["message"] == "Unexpected end of JSON input"


def test_readonly_mode_refuses_changes(make_catalog: Callable[..., Services]) -> None:
    services = make_catalog(catalog={"readonly": True})
    client = create_app(services=services).test_client()
    res = client.post(f"{CATALOG}/locations", json={"type": "url", "target": FIXTURE})
    assert res.status_code == 403
    assert res.json["error"] == {
        "name": "NotAllowedError",
        "message": "This operation not allowed in readonly mode",
    }
