"""Conformance of the catalog routes through ``@backstage/catalog-client``'s ``CatalogClient``.

Each scenario is one thing a Backstage frontend or backend plugin does with the catalog (pickers
fetch by refs, the template list pages through ``queryEntities``, tag pickers ask for facets,
``catalog:register`` registers a location). Expectations hold on the upstream reference
backend and on ours; see CONTRACT.md §8.
"""

from __future__ import annotations

from typing import Any

import pytest

from .harness import NodeDriver

pytestmark = pytest.mark.conformance

TEMPLATES = ["cookie-template", "hello-template", "slow-template"]


def _component(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {
            "type": "service",
            "lifecycle": "experimental",
            "owner": "group:default/platform",
            **spec,
        },
    }


def test_entities_by_refs_keep_order_and_fill_gaps(driver: NodeDriver) -> None:
    run = driver.run(
        "catalog-entities-by-refs",
        {
            "entityRefs": [
                "template:default/slow-template",
                "template:default/nope",
                "Template:default/HELLO-template",
            ],
            "fields": ["kind", "metadata.name"],
        },
    )
    assert run.value() == {
        "items": [
            {"kind": "Template", "metadata": {"name": "slow-template"}},
            None,
            {"kind": "Template", "metadata": {"name": "hello-template"}},
        ]
    }, run.describe()
    (request,) = run.requests
    assert request["method"] == "POST"
    assert request["url"].endswith("/api/catalog/entities/by-refs")


def test_query_entities_pages_forward_and_back(driver: NodeDriver) -> None:
    run = driver.run(
        "catalog-query-walk",
        {"request": {"filter": {"kind": "template"}, "limit": 1, "fields": ["metadata.name"]}},
    )
    out = run.value()
    pages = out["pages"]
    assert [p["totalItems"] for p in pages] == [3, 3, 3], run.describe()
    assert [p["pageInfo"] for p in pages] == [
        ["nextCursor"],
        ["nextCursor", "prevCursor"],
        ["prevCursor"],
    ]
    names = [n for p in pages for n in p["names"]]
    assert sorted(names) == TEMPLATES
    assert [p["names"] for p in out["back"]] == [pages[1]["names"], pages[0]["names"]]
    assert "/entities/by-query?" in run.requests[0]["url"]


def test_query_entities_by_predicate_ordered(driver: NodeDriver) -> None:
    run = driver.run(
        "catalog-query-walk",
        {
            "request": {
                "query": {
                    "$all": [{"kind": "template"}, {"metadata.tags": {"$contains": "reference"}}]
                },
                "orderFields": [{"field": "metadata.name", "order": "desc"}],
                "limit": 2,
                "fields": ["metadata.name"],
            }
        },
    )
    out = run.value()
    assert [p["names"] for p in out["pages"]] == [["hello-template", "cookie-template"]], (
        run.describe()
    )
    assert out["pages"][0]["totalItems"] == 2
    assert run.requests[0]["method"] == "POST"


def test_facets_by_filter_and_by_predicate(driver: NodeDriver) -> None:
    by_filter = driver.run("catalog-facets", {"facets": ["kind"], "filter": {"kind": "template"}})
    assert by_filter.value() == {"facets": {"kind": [{"value": "Template", "count": 3}]}}
    by_query = driver.run(
        "catalog-facets", {"facets": ["metadata.tags"], "query": {"kind": "template"}}
    )
    assert by_query.value() == {
        "facets": {
            "metadata.tags": [
                {"value": "cookiecutter", "count": 1},
                {"value": "local", "count": 2},
                {"value": "reference", "count": 2},
            ]
        }
    }, by_query.describe()


def test_ancestors_end_at_the_configured_location(driver: NodeDriver) -> None:
    run = driver.run("catalog-ancestors", {"entityRef": "template:default/hello-template"})
    out = run.value()
    assert out["rootEntityRef"] == "template:default/hello-template", run.describe()
    items = out["items"]
    assert items[0]["entity"]["metadata"]["name"] == "hello-template"
    assert items[-1]["entity"]["kind"] == "Location"
    assert items[-1]["parentEntityRefs"] == []
    assert items[0]["parentEntityRefs"] == [
        f"location:default/{items[-1]['entity']['metadata']['name']}"
    ]


def test_validate_entity(driver: NodeDriver) -> None:
    location = "url:http://127.0.0.1:7010/catalog-info.yaml"
    ok = driver.run(
        "catalog-validate", {"entity": _component("validated-thing"), "locationRef": location}
    )
    assert ok.value() == {"valid": True}, ok.describe()
    bad = _component("Not Valid Name!")
    bad["spec"] = {"type": "service"}
    invalid = driver.run("catalog-validate", {"entity": bad, "locationRef": location})
    out = invalid.value()
    assert out["valid"] is False
    [error] = out["errors"]
    assert error["name"] == "InputError"
    assert error["message"].startswith(
        "Policy check failed for component:default/not valid name!; caused by Error: "
        '"metadata.name" is not valid'
    )


def test_dry_run_registration_reads_the_target(
    driver: NodeDriver, catalog_fixture_host: str
) -> None:
    target = f"http://{catalog_fixture_host}/catalog-info.yaml"
    run = driver.run("catalog-add-location", {"target": target, "dryRun": True})
    out = run.value()
    assert out["exists"] is False, run.describe()
    assert out["location"]["id"] == f"url:{target}"
    assert [(e["kind"], e["metadata"]["name"]) for e in out["entities"][1:]] == [
        ("Group", "platform"),
        ("Component", "fixture-service"),
    ]
    assert out["entities"][0]["kind"] == "Location"
    assert all("uid" not in e["metadata"] for e in out["entities"])
    missing = driver.run(
        "catalog-add-location",
        {"target": f"http://{catalog_fixture_host}/nope.yaml", "dryRun": True},
    )
    assert missing.error is not None
    assert missing.error["statusCode"] == 400
    assert missing.error["cause"] == {
        "name": "InputError",
        "message": "NotFoundError: Unable to read url, no matching files found for "
        f"http://{catalog_fixture_host}/nope.yaml",
    }


def test_register_read_back_and_unregister(driver: NodeDriver, catalog_fixture_host: str) -> None:
    target = f"http://{catalog_fixture_host}/catalog-info.yaml"
    run = driver.run("catalog-location-cycle", {"target": target})
    out = run.value()
    location = out["added"]["location"]
    assert set(location) == {"id", "type", "target", "entityRef"}, run.describe()
    assert out["added"]["entities"] == []
    assert out["byRef"] == location
    assert out["byId"] == location
    assert location in out["list"]
    assert out["duplicateError"]["statusCode"] == 409
    assert out["duplicateError"]["cause"] == {
        "name": "ConflictError",
        "message": f"Location url:{target} already exists",
    }
    assert out["afterRemove"] is None


def test_file_locations_cannot_be_registered(driver: NodeDriver) -> None:
    run = driver.run("catalog-add-location", {"type": "file", "target": "/etc/passwd"})
    assert run.error is not None
    assert run.error["statusCode"] == 400
    assert (
        run.error["cause"]["message"] == 'Registered locations must be of an allowed type ["url"]'
    )


def test_entity_routes_through_the_client(driver: NodeDriver, catalog_fixture_host: str) -> None:
    """getLocationByEntity, refreshEntity and removeEntityByUid on a registered entity."""
    target = f"http://{catalog_fixture_host}/catalog-info.yaml"
    run = driver.run(
        "catalog-entity-lifecycle",
        {"target": target, "entityRef": "component:default/fixture-service"},
        timeout_s=60,
    )
    out = run.value()
    assert out["found"] is True, run.describe()
    assert out["locationByEntity"]["type"] == "url", run.describe()
    assert out["locationByEntity"]["target"] == target
    assert out["refreshed"] is True
    assert out["removed"] is True
