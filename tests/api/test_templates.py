"""Parameter schema, actions, templating extensions and the catalog routes."""

from __future__ import annotations

import json
from pathlib import Path

from flask.testing import FlaskClient


def _trace_body(name: str) -> object:
    text = (Path(__file__).resolve().parents[1] / "fixtures" / "traces" / name).read_text()
    return json.loads(text)


def test_parameter_schema_matches_upstream(client: FlaskClient) -> None:
    res = client.get(
        "/api/scaffolder/v2/templates/default/template/hello-template/parameter-schema"
    )
    assert res.status_code == 200
    assert res.json == _trace_body("02-parameter-schema-hello.json")


def test_parameter_schema_unknown_template_is_404(client: FlaskClient) -> None:
    res = client.get("/api/scaffolder/v2/templates/default/template/nope/parameter-schema")
    assert res.status_code == 404
    assert res.json == {
        "error": {"name": "NotFoundError", "message": "Template template:default/nope not found"},
        "request": {
            "method": "GET",
            "url": "/v2/templates/default/template/nope/parameter-schema",
        },
        "response": {"statusCode": 404},
    }


def test_parameter_schema_wrong_kind_is_400(client: FlaskClient) -> None:
    res = client.get(
        "/api/scaffolder/v2/templates/default/component/hello-template/parameter-schema"
    )
    assert res.status_code == 400
    assert res.json["error"]["message"] == "Invalid kind, only 'Template' kind is supported"


def test_parameter_schema_when_and_title(client: FlaskClient, services) -> None:  # type: ignore[no-untyped-def]
    services.catalog.replace_location(
        "file:/when.yaml",
        [
            {
                "apiVersion": "scaffolder.backstage.io/v1beta3",
                "kind": "Template",
                "metadata": {"name": "when-tpl"},
                "spec": {
                    "type": "service",
                    "parameters": [
                        {"properties": {"a": {"type": "string"}}},
                        {
                            "title": "Extra",
                            "when": "${{ parameters.a == 'x' }}",
                            "properties": {"b": {"type": "string"}},
                        },
                    ],
                    "steps": [],
                },
            }
        ],
    )
    body = client.get(
        "/api/scaffolder/v2/templates/default/template/when-tpl/parameter-schema"
    ).json
    assert body["steps"][0]["title"] == "Please enter the following information"
    assert body["steps"][1] == {
        "title": "Extra",
        "when": "${{ parameters.a == 'x' }}",
        "schema": {"title": "Extra", "properties": {"b": {"type": "string"}}},
    }


def test_actions_are_sorted_with_upstream_schemas(client: FlaskClient) -> None:
    res = client.get("/api/scaffolder/v2/actions")
    assert res.status_code == 200
    ids = [a["id"] for a in res.json]
    assert ids == sorted(ids)
    for expected in (
        "debug:log",
        "debug:wait",
        "fetch:plain",
        "fetch:template",
        "catalog:write",
        "fs:delete",
        "fs:rename",
        "fetch:plain:file",
        "fetch:template:file",
    ):
        assert expected in ids
    debug_log = next(a for a in res.json if a["id"] == "debug:log")
    assert debug_log["schema"]["input"]["additionalProperties"] is False
    assert "output" not in debug_log["schema"]


def test_unknown_query_parameter_is_rejected(client: FlaskClient) -> None:
    res = client.get("/api/scaffolder/v2/actions?foo=1")
    assert res.status_code == 400
    assert res.json["error"] == {"name": "InputError", "message": "Unknown query parameter 'foo'"}
    assert res.json["request"]["url"] == "/v2/actions?foo=1"


def test_unknown_path_is_empty_404(client: FlaskClient) -> None:
    res = client.get("/api/scaffolder/v3/nothing")
    assert res.status_code == 404
    assert res.data == b""


def test_templating_extensions(client: FlaskClient) -> None:
    body = client.get("/api/scaffolder/v2/templating-extensions").json
    assert set(body["filters"]) >= {"parseRepoUrl", "parseEntityRef", "pick", "projectSlug"}
    assert body["globals"] == {"functions": {}, "values": {}}


def test_catalog_by_name_and_filter(client: FlaskClient) -> None:
    res = client.get("/api/catalog/entities/by-name/template/default/hello-template")
    assert res.status_code == 200
    entity = res.json
    assert entity["metadata"]["annotations"]["backstage.io/managed-by-location"].startswith(
        "file:/"
    )
    assert entity["relations"] == [{"type": "ownedBy", "targetRef": "group:default/platform"}]
    assert list(entity) == ["metadata", "apiVersion", "kind", "spec", "relations"]
    names = {
        e["metadata"]["name"] for e in client.get("/api/catalog/entities?filter=kind=template").json
    }
    assert names == {"hello-template", "cookie-template", "slow-template"}
    assert client.get("/api/catalog/entities?filter=kind=component").json == []
    missing = client.get("/api/catalog/entities/by-name/template/default/nope")
    assert missing.status_code == 404
    assert missing.json["error"]["message"] == (
        "No entity named 'nope' found, with kind 'template' in namespace 'default'"
    )


def test_openapi_document(client: FlaskClient) -> None:
    body = client.get("/api/scaffolder/openapi.json").json
    assert body["openapi"] == "3.0.3"
    assert "/v2/tasks/{taskId}/retry" in body["paths"]


def test_health(client: FlaskClient) -> None:
    assert client.get("/.backstage/health/v1/readiness").json == {"status": "ok"}
    assert client.get("/.backstage/health/v1/liveness").status_code == 200
