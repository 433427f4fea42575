"""Ingestion and refresh of file locations: stitching, relations, errors that spare the rest."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from scaffolder.catalog.model import location_entity_ref
from scaffolder.services import Services
from tests.catalog.conftest import CATALOG, component, group, refresh_all, write_yaml

# The catalog store speaks SQL to both engines: run these on SQLite and PostgreSQL.
pytestmark = pytest.mark.both_engines

FileCatalog = Callable[..., tuple[Services, FlaskClient]]


def _entity(client: FlaskClient, ref: str) -> Any:
    kind, rest = ref.split(":")
    namespace, name = rest.split("/")
    res = client.get(f"{CATALOG}/entities/by-name/{kind}/{namespace}/{name}")
    return res.json if res.status_code == 200 else None


def test_multi_document_file_is_stitched_with_relations_both_ways(
    file_catalog: FileCatalog, catalog_dir: Path
) -> None:
    path = write_yaml(
        catalog_dir / "catalog-info.yaml",
        component(
            "svc",
            system="sys-a",
            providesApis=["api-b", "api-a"],
            dependsOn=["resource:default/db"],
        ),
        group("team-a"),
        None,
    )
    _, client = file_catalog()

    svc = _entity(client, "component:default/svc")
    assert list(svc) == ["metadata", "apiVersion", "kind", "spec", "relations"]
    assert list(svc["metadata"]) == ["namespace", "annotations", "name", "uid", "etag"]
    assert svc["metadata"]["annotations"] == {
        "backstage.io/managed-by-location": f"file:{path}",
        "backstage.io/managed-by-origin-location": f"file:{catalog_dir}/*.yaml",
    }
    assert svc["spec"]["providesApis"] == ["api-a", "api-b"]  # sorted, as upstream does
    assert svc["relations"] == [
        {"type": "dependsOn", "targetRef": "resource:default/db"},
        {"type": "ownedBy", "targetRef": "group:default/team-a"},
        {"type": "partOf", "targetRef": "system:default/sys-a"},
        {"type": "providesApi", "targetRef": "api:default/api-a"},
        {"type": "providesApi", "targetRef": "api:default/api-b"},
    ]
    team = _entity(client, "group:default/team-a")
    assert team["relations"] == [{"type": "ownerOf", "targetRef": "component:default/svc"}]
    root = _entity(client, location_entity_ref("file", f"{catalog_dir}/*.yaml"))
    assert root["spec"] == {"type": "file", "target": f"{catalog_dir}/*.yaml"}
    assert root["relations"] == []


def test_location_targets_resolve_relative_to_their_file(
    file_catalog: FileCatalog, catalog_dir: Path
) -> None:
    write_yaml(
        catalog_dir / "all.yaml",
        {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Location",
            "metadata": {"name": "more"},
            "spec": {"targets": ["./nested/one.yaml", "./nested/two/*.yaml"]},
        },
    )
    one = write_yaml(catalog_dir / "nested" / "one.yaml", component("one"))
    write_yaml(catalog_dir / "nested" / "two" / "a.yaml", component("two-a"))
    _, client = file_catalog()

    assert (
        _entity(client, "component:default/one")["metadata"]["annotations"][
            "backstage.io/managed-by-location"
        ]
        == f"file:{one}"
    )
    assert _entity(client, "component:default/two-a") is not None
    ancestry = client.get(f"{CATALOG}/entities/by-name/component/default/one/ancestry").json
    assert ancestry["rootEntityRef"] == "component:default/one"
    assert [i["parentEntityRefs"] for i in ancestry["items"]] == [
        ["location:default/more"],
        [location_entity_ref("file", f"{catalog_dir}/*.yaml")],
        [],
    ]


def test_refresh_keeps_uid_changes_etag_and_removes_what_is_gone(
    file_catalog: FileCatalog, catalog_dir: Path
) -> None:
    path = write_yaml(catalog_dir / "a.yaml", component("keep"), component("drop"))
    services, client = file_catalog()
    before = _entity(client, "component:default/keep")

    refresh_all(services)
    same = _entity(client, "component:default/keep")
    assert same == before

    write_yaml(path, component("keep", lifecycle="experimental"))
    refresh_all(services)
    after = _entity(client, "component:default/keep")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["etag"] != before["metadata"]["etag"]
    assert after["spec"]["lifecycle"] == "experimental"
    assert _entity(client, "component:default/drop") is None
    team = _entity(client, "group:default/team-a")
    assert team is None  # never declared: relations point at it, but it does not exist


def test_invalid_entity_keeps_its_last_good_version_with_status_items(
    file_catalog: FileCatalog, catalog_dir: Path
) -> None:
    path = write_yaml(catalog_dir / "a.yaml", component("svc"), component("other"))
    services, client = file_catalog()
    good = _entity(client, "component:default/svc")

    broken = component("svc")
    del broken["spec"]["lifecycle"]
    write_yaml(path, broken, component("other", lifecycle="experimental"))
    refresh_all(services)

    kept = _entity(client, "component:default/svc")
    assert kept["spec"] == good["spec"]
    message = (
        "Processor BuiltinKindsEntityProcessor threw an error while validating the entity "
        "component:default/svc; caused by TypeError: /spec must have required property "
        "'lifecycle' - missingProperty: lifecycle"
    )
    assert kept["status"] == {
        "items": [
            {
                "type": "backstage.io/catalog-processing",
                "level": "error",
                "message": f"InputError: {message}",
                "error": {
                    "name": "InputError",
                    "message": message,
                    "cause": {
                        "name": "TypeError",
                        "message": "/spec must have required property 'lifecycle' - "
                        "missingProperty: lifecycle",
                    },
                },
            }
        ]
    }
    assert _entity(client, "component:default/other")["spec"]["lifecycle"] == "experimental"

    write_yaml(path, component("svc"), component("other"))
    refresh_all(services)
    assert "status" not in _entity(client, "component:default/svc")


def test_new_invalid_entities_are_reported_on_their_location(
    file_catalog: FileCatalog, catalog_dir: Path
) -> None:
    long_name = "x" * 64
    write_yaml(
        catalog_dir / "a.yaml",
        component(long_name),
        component("Bad Name!"),
        component("fine"),
    )
    _, client = file_catalog()

    assert _entity(client, "component:default/fine") is not None
    root = _entity(client, location_entity_ref("file", f"{catalog_dir}/*.yaml"))
    messages = [item["message"] for item in root["status"]["items"]]
    assert messages == [
        f"InputError: Policy check failed for component:default/{long_name}; caused by Error: "
        f'"metadata.name" is not valid; expected a string that is sequences of [a-zA-Z0-9] '
        f"separated by any of [-_.], at most 63 characters in total but found "
        f'"{long_name}". To learn more about catalog file format, visit: '
        "https://github.com/backstage/backstage/blob/master/docs/architecture-decisions/"
        "adr002-default-catalog-file-format.md",
        "InputError: Policy check failed for component:default/bad name!; caused by Error: "
        '"metadata.name" is not valid; expected a string that is sequences of [a-zA-Z0-9] '
        'separated by any of [-_.], at most 63 characters in total but found "Bad Name!". '
        "To learn more about catalog file format, visit: "
        "https://github.com/backstage/backstage/blob/master/docs/architecture-decisions/"
        "adr002-default-catalog-file-format.md",
    ]


def test_unparseable_documents_spare_the_rest_and_delete_nothing(
    file_catalog: FileCatalog, catalog_dir: Path
) -> None:
    path = write_yaml(catalog_dir / "a.yaml", component("one"), component("two"))
    services, client = file_catalog()

    path.write_text(path.read_text() + "---\n- not an entity\n---\nkind: [\n")
    write_yaml(catalog_dir / "b.yaml", component("three"))
    refresh_all(services)
    assert _entity(client, "component:default/three") is not None
    root = _entity(client, location_entity_ref("file", f"{catalog_dir}/*.yaml"))
    messages = [item["message"] for item in root["status"]["items"]]
    assert messages[0] == "Error: Expected object at root, got object"
    assert messages[1].startswith(f"Error: YAML error at file:{path}, ")

    # The file no longer says what it holds: nothing read from it before is removed.
    path.write_text("apiVersion: backstage.io/v1alpha1\nkind: [\n")
    refresh_all(services)
    assert _entity(client, "component:default/one") is not None
    assert _entity(client, "component:default/two") is not None


def test_alias_bombs_and_huge_files_are_refused(
    file_catalog: FileCatalog, catalog_dir: Path
) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for index, name in enumerate("bcdefgh"):
        previous = "abcdefgh"[index]
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    bomb = catalog_dir / "bomb.yaml"
    bomb.write_text("\n".join(levels) + "\n---\n" + _yaml(component("after-bomb")))
    (catalog_dir / "huge.yaml").write_text(_yaml(component("huge")) + "#" * (5 * 1024 * 1024))
    _, client = file_catalog()

    assert _entity(client, "component:default/after-bomb") is not None
    assert _entity(client, "component:default/huge") is None
    root = _entity(client, location_entity_ref("file", f"{catalog_dir}/*.yaml"))
    messages = [item["message"] for item in root["status"]["items"]]
    assert messages == [
        f"Error: YAML error at file:{bomb}, "
        "Excessive alias count indicates a resource exhaustion attack",
        f"Error: file {catalog_dir}/*.yaml could not be read, {catalog_dir}/huge.yaml is "
        "larger than 5242880 bytes",
    ]


def _yaml(document: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(document)


def test_duplicate_ref_first_owner_keeps_it_and_the_conflict_is_reported(
    make_catalog: Callable[..., Services], tmp_path: Path
) -> None:
    first = write_yaml(tmp_path / "first.yaml", component("dup", lifecycle="first"))
    second = write_yaml(tmp_path / "second.yaml", component("dup", lifecycle="second"))
    services = make_catalog(
        [{"type": "file", "target": str(first)}, {"type": "file", "target": str(second)}]
    )
    assert services.catalog.get_entity("component:default/dup")["spec"]["lifecycle"] == "first"
    refresh_all(services)
    assert services.catalog.get_entity("component:default/dup")["spec"]["lifecycle"] == "first"
    loser = services.catalog.get_entity(location_entity_ref("file", str(second)))
    assert [i["message"] for i in loser["status"]["items"]] == [
        "ConflictError: Detected conflicting entityRef component:default/dup already "
        f"referenced by file:{first} and now also file:{second}"
    ]


def test_rules_refuse_kinds_but_keep_the_rest(
    make_catalog: Callable[..., Services], tmp_path: Path
) -> None:
    path = write_yaml(
        tmp_path / "a.yaml",
        component("svc"),
        group("team"),
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
    )
    services = make_catalog(
        [{"type": "file", "target": str(path), "rules": [{"allow": ["Group"]}]}],
        catalog={"rules": [{"allow": ["Component", "Location"]}]},
    )
    assert services.catalog.get_entity("component:default/svc") is not None
    assert services.catalog.get_entity("group:default/team") is not None  # per-location rule
    assert services.catalog.get_entity("widget:default/w") is None
    root = services.catalog.get_entity(location_entity_ref("file", str(path)))
    assert [i["message"] for i in root["status"]["items"]] == [
        f"NotAllowedError: Entity widget:default/w at file:{path}, originated at file:{path}, "
        "is not of an allowed kind for that location"
    ]


def test_default_rules_allow_the_builtin_kinds_but_not_unknown_ones(
    make_catalog: Callable[..., Services], tmp_path: Path
) -> None:
    kinds = {
        "Template": {"type": "service", "steps": []},
        "User": {"memberOf": []},
        "System": {"owner": "team"},
        "Domain": {"owner": "team"},
        "Resource": {"type": "db", "owner": "team"},
    }
    documents: list[Any] = [
        {
            "apiVersion": "scaffolder.backstage.io/v1beta3"
            if kind == "Template"
            else "backstage.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": kind.lower()},
            "spec": spec,
        }
        for kind, spec in kinds.items()
    ]
    documents.append({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    path = write_yaml(tmp_path / "a.yaml", *documents)
    services = make_catalog([{"type": "file", "target": str(path)}])
    for kind in kinds:
        assert services.catalog.get_entity(f"{kind}:default/{kind}") is not None, kind
    assert services.catalog.get_entity("widget:default/w") is None


def test_missing_file_is_an_error_on_its_location(
    make_catalog: Callable[..., Services], tmp_path: Path
) -> None:
    path = write_yaml(tmp_path / "a.yaml", component("svc"))
    services = make_catalog([{"type": "file", "target": str(path)}])
    path.unlink()
    refresh_all(services)
    assert services.catalog.get_entity("component:default/svc") is not None  # kept
    root = services.catalog.get_entity(location_entity_ref("file", str(path)))
    assert [i["message"] for i in root["status"]["items"]] == [
        f"NotFoundError: file {path} does not exist"
    ]


def test_orphan_strategy_keep_marks_entities_nothing_emits(
    make_catalog: Callable[..., Services], tmp_path: Path
) -> None:
    path = write_yaml(tmp_path / "a.yaml", component("stays"), component("orphaned"))
    services = make_catalog(
        [{"type": "file", "target": str(path)}], catalog={"orphanStrategy": "keep"}
    )
    write_yaml(path, component("stays"))
    refresh_all(services)
    orphan = services.catalog.get_entity("component:default/orphaned")
    assert orphan["metadata"]["annotations"]["backstage.io/orphan"] == "true"
    assert (
        "backstage.io/orphan"
        not in services.catalog.get_entity("component:default/stays")["metadata"]["annotations"]
    )
    write_yaml(path, component("stays"), component("orphaned"))
    refresh_all(services)
    back = services.catalog.get_entity("component:default/orphaned")
    assert "backstage.io/orphan" not in back["metadata"]["annotations"]


def test_placeholders_read_files_next_to_the_entity(
    make_catalog: Callable[..., Services], tmp_path: Path
) -> None:
    (tmp_path / "openapi.yaml").write_text("openapi: 3.0.0\n")
    (tmp_path / "extra.json").write_text('{"a": [1, 2]}')
    (tmp_path / "extra.yaml").write_text("b: yes\n")
    api = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "API",
        "metadata": {"name": "api"},
        "spec": {
            "type": "openapi",
            "lifecycle": "production",
            "owner": "team",
            "definition": {"$text": "./openapi.yaml"},
            "extra": {"$json": "./extra.json"},
            "more": {"$yaml": "extra.yaml"},
        },
    }
    escape = {**api, "metadata": {"name": "escape"}}
    escape["spec"] = {**api["spec"], "definition": {"$text": "../outside.yaml"}}
    path = write_yaml(tmp_path / "a.yaml", api, escape)
    services = make_catalog([{"type": "file", "target": str(path)}])
    entity = services.catalog.get_entity("api:default/api")
    assert entity["spec"]["definition"] == "openapi: 3.0.0\n"
    assert entity["spec"]["extra"] == {"a": [1, 2]}
    assert entity["spec"]["more"] == {"b": "yes"}
    assert services.catalog.get_entity("api:default/escape") is None
    root = services.catalog.get_entity(location_entity_ref("file", str(path)))
    assert root["status"]["items"][0]["message"] == (
        "InputError: Processor PlaceholderProcessor threw an error while preprocessing; "
        f"caused by Error: Placeholder may only reference files in the directory of {path}"
    )


def test_background_refresher_picks_up_changes_and_stops_with_the_services(
    make_catalog: Callable[..., Services], tmp_path: Path
) -> None:
    path = write_yaml(tmp_path / "a.yaml", component("svc"))
    services = make_catalog(
        [{"type": "file", "target": str(path)}],
        with_worker=True,
        catalog={"refreshIntervalSeconds": 0.2},
    )
    write_yaml(path, component("svc"), component("later"))
    deadline = time.monotonic() + 10
    while services.catalog.get_entity("component:default/later") is None:
        assert time.monotonic() < deadline, "the refresher did not pick up the new entity"
        time.sleep(0.05)
    refresher = services.catalog._refresher
    assert refresher is not None
    services.close()
    assert not refresher._thread.is_alive()


def test_replace_location_puts_code_provided_entities_in(
    make_catalog: Callable[..., Services],
) -> None:
    services = make_catalog()
    services.catalog.replace_location("file:/provided.yaml", [component("a"), group("team-a")])
    entity = services.catalog.get_entity("component:default/a")
    assert entity["metadata"]["annotations"]["backstage.io/managed-by-location"] == (
        "file:/provided.yaml"
    )
    assert services.catalog.get_entity("group:default/team-a")["relations"] == [
        {"type": "ownerOf", "targetRef": "component:default/a"}
    ]
    services.catalog.replace_location("file:/provided.yaml", [group("team-a")])
    assert services.catalog.get_entity("component:default/a") is None
    assert services.catalog.get_entity("group:default/team-a")["relations"] == []
    assert [
        e["metadata"]["name"] for e in services.catalog.list_entities([{"kind": ["group"]}])
    ] == ["team-a"]


def test_a_sync_that_changes_nothing_does_not_wait_for_the_write_lock(
    make_catalog: Callable[..., Services], tmp_path: Path
) -> None:
    import threading

    from scaffolder.catalog.model import ANNOTATION_LOCATION
    from scaffolder.db.engine import write_lock

    path = write_yaml(tmp_path / "a.yaml", component("svc"), group("team-a"))
    services = make_catalog([{"type": "file", "target": str(path)}])
    catalog = services.catalog
    source = location_entity_ref("file", str(path))
    root = catalog._root(source)
    assert root is not None

    def tree() -> Any:
        return catalog.processor.walk(root, root["metadata"]["annotations"][ANNOTATION_LOCATION])

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with write_lock(services.engine):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        done: list[Any] = []
        unchanged = tree()
        syncing = threading.Thread(
            target=lambda: done.append(
                catalog.store.syncer.sync(source, unchanged, keep_orphans=False)
            )
        )
        syncing.start()
        syncing.join(5)
        assert done, "a sync with nothing to write waited for the write lock"
        assert (done[0].added, done[0].updated, done[0].removed) == (0, 0, 0)
    finally:
        release.set()
        holder.join()
    write_yaml(path, component("svc", lifecycle="experimental"), group("team-a"))
    report = catalog.store.syncer.sync(source, tree(), keep_orphans=False)
    assert report.updated == 1
