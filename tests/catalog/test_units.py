"""Pure parts of the catalog: validation messages, YAML parsing, the search index, filters."""

from __future__ import annotations

from typing import Any

import pytest

from scaffolder.catalog.errors import EntityError
from scaffolder.catalog.model import LocationSpec, RefError, parse_ref
from scaffolder.catalog.parsing import parse_entity_yaml
from scaffolder.catalog.query import parse_filter_params, parse_query
from scaffolder.catalog.relations import emit_relations
from scaffolder.catalog.search import build_search_rows
from scaffolder.catalog.validation import enforce_policies, validate_entity, validate_kind
from scaffolder.errors import InputError
from tests.catalog.conftest import component

HELP = (
    " To learn more about catalog file format, visit: https://github.com/backstage/backstage/"
    "blob/master/docs/architecture-decisions/adr002-default-catalog-file-format.md"
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e["metadata"].update(name="a" * 64), None),
        (
            lambda e: e["metadata"].update(namespace="Bad_NS"),
            '"metadata.namespace" is not valid; expected a string that is sequences of [a-z0-9] separated by [-], at most 63 characters in total but found "Bad_NS".',
        ),
        (
            lambda e: e["metadata"].update(labels={"a/b/c": "x"}),
            '"labels.a/b/c" is not valid; expected a valid prefix and/or suffix but found "a/b/c".',
        ),
        (
            lambda e: e["metadata"].update(labels={"tier": "gold plated"}),
            '"labels.tier" is not valid; expected a string that is sequences of [a-zA-Z0-9] separated by any of [-_.], at most 63 characters in total but found "gold plated".',
        ),
        (
            lambda e: e["metadata"].update(tags=["Java"]),
            '"tags.0" is not valid; expected a string that is sequences of [a-z0-9+#] separated by [-], at most 63 characters in total but found "Java".',
        ),
        (
            lambda e: e["metadata"].update(links=[{"url": "nope"}]),
            '"links.0.url" is not valid; expected a string that is a valid url but found "nope".',
        ),
        (
            lambda e: e.update(kind="1Bad"),
            '"kind" is not valid; expected a string that is a sequence of [a-zA-Z][a-z0-9A-Z], at most 63 characters in total but found "1Bad".',
        ),
    ],
)
def test_field_format_messages(change: Any, message: str | None) -> None:
    entity = component("x")
    change(entity)
    with pytest.raises(EntityError) as caught:
        enforce_policies(entity)
    expected = message or (
        '"metadata.name" is not valid; expected a string that is sequences of [a-zA-Z0-9] '
        f'separated by any of [-_.], at most 63 characters in total but found "{"a" * 64}".'
    )
    assert caught.value.message == expected + HELP


def test_schema_policy_and_foreign_root_fields() -> None:
    cases = [
        (
            {**component("x"), "extra": 1},
            "Malformed envelope, <root> must NOT have additional properties",
        ),
        ({**component("x"), "relations": []}, "Unknown field relations"),
        (
            {**component("x"), "metadata": {"name": "x", "annotations": {"a": 1}}},
            "Malformed envelope, /metadata/annotations/a must be string",
        ),
    ]
    for entity, message in cases:
        with pytest.raises(EntityError) as caught:
            enforce_policies(entity)
        assert caught.value.message == message


def test_kind_validation_reports_the_first_ajv_error() -> None:
    entity = enforce_policies(component("x", providesApis=[1], lifecycle=""))
    with pytest.raises(EntityError) as caught:
        validate_kind(entity)
    assert caught.value.message == (
        "Processor BuiltinKindsEntityProcessor threw an error while validating the entity "
        "component:default/x; caused by TypeError: /spec/lifecycle must NOT have fewer than 1 "
        "characters - limit: 1"
    )
    widget = enforce_policies(
        {"apiVersion": "backstage.io/v1alpha1", "kind": "Widget", "metadata": {"name": "w"}}
    )
    with pytest.raises(
        EntityError, match="No processor recognized the entity widget:default/w as valid"
    ):
        validate_kind(widget)
    template = {
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": {"name": "t"},
        "spec": {"type": "service", "steps": [], "parameters": "x"},
    }
    with pytest.raises(EntityError) as caught:
        validate_kind(enforce_policies(template))
    assert caught.value.message.endswith("/spec/parameters must be object - type: object")


def test_validate_entity_for_linting_names_the_innermost_problem() -> None:
    with pytest.raises(InputError, match=r"^Unknown field extra$"):
        validate_entity({**component("x"), "extra": 1})
    with pytest.raises(InputError, match=r"^Expected object at root, got list$"):
        validate_entity(["x"])
    api = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "API",
        "metadata": {"name": "api"},
        "spec": {
            "type": "openapi",
            "lifecycle": "x",
            "owner": "o",
            "definition": {"$text": "./a.yaml"},
        },
    }
    validate_entity(api)  # placeholders stand in for what they will read
    validate_entity({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})


def test_yaml_is_read_as_yaml_1_2() -> None:
    data = b"a: on\nb: 2024-01-01\nc: 010\nd: 1.0\ne: yes\nf: 0x1F\ng: ~\nh: .inf\ni: 1.5\n1: x\n"
    [result] = parse_entity_yaml(data, LocationSpec(type="file", target="/x"))
    assert result.entity == {
        "a": "on",
        "b": "2024-01-01",
        "c": 10,
        "d": 1,
        "e": "yes",
        "f": 31,
        "g": None,
        "h": None,
        "i": 1.5,
        "1": "x",
    }


def test_yaml_aliases_are_copied_and_recursion_refused() -> None:
    location = LocationSpec(type="file", target="/x")
    [shared] = parse_entity_yaml(b"a: &x [1]\nb: *x\n", location)
    assert shared.entity is not None
    assert shared.entity["a"] == shared.entity["b"]
    assert shared.entity["a"] is not shared.entity["b"]
    [loop] = parse_entity_yaml(b"a: &x [*x]\n", location)
    assert loop.error is not None
    assert loop.error.message == "YAML error at file:/x, recursive aliases are not supported"
    results = list(parse_entity_yaml(b"- a\n---\n42\n---\nok: 1\n", location))
    assert [r.error.message if r.error else r.entity for r in results] == [
        "Expected object at root, got object",
        "Expected object at root, got number",
        {"ok": 1},
    ]


def test_search_rows_follow_upstream_rules() -> None:
    entity: dict[str, Any] = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": "Svc",
            "uid": "u-1",
            "etag": "e",
            "tags": ["Java", "java"],
            "annotations": {"a": "x" * 201, "k" * 201: "v"},
        },
        "spec": {"owner": "Team", "flag": True, "n": 2, "none": None},
        "relations": [{"type": "ownedBy", "targetRef": "group:default/team"}],
        "status": {"items": []},
    }
    rows = build_search_rows(entity)
    assert rows == [
        ("apiversion", "backstage.io/v1alpha1", "backstage.io/v1alpha1"),
        ("kind", "component", "Component"),
        ("metadata.tags", "java", "Java"),
        ("metadata.tags.java", "true", "true"),
        ("metadata.annotations.a", None, None),
        ("spec.owner", "team", "Team"),
        ("spec.flag", "true", "true"),
        ("spec.n", "2", "2"),
        ("spec.none", None, None),
        ("metadata.name", "svc", "Svc"),
        ("metadata.namespace", None, None),  # as upstream: the missing value, then the default
        ("metadata.uid", "u-1", "u-1"),
        ("metadata.namespace", "default", "default"),
        ("relations.ownedby", "group:default/team", "group:default/team"),
    ]
    with pytest.raises(EntityError, match="duplicate keys that vary only in casing"):
        build_search_rows({**entity, "spec": {"a": 1, "A": 2}})


def test_relations_need_a_kind_when_there_is_no_default() -> None:
    entity = component("x", dependsOn=["db"])
    with pytest.raises(EntityError) as caught:
        emit_relations(entity)
    assert caught.value.message == (
        "Processor BuiltinKindsEntityProcessor threw an error while postprocessing; caused by "
        'Error: Entity reference "db" had missing or empty kind (e.g. did not start with '
        '"component:" or similar)'
    )
    assert parse_ref("ns/name", default_kind="Group") == ("Group", "ns", "name")
    with pytest.raises(RefError, match="was not on the form"):
        parse_ref("kind:/name")


def test_filter_params_become_predicates() -> None:
    assert parse_filter_params(["kind=component,spec.type=service,spec.type=website"]) == {
        "$all": [{"kind": "component"}, {"spec.type": {"$in": ["service", "website"]}}]
    }
    assert parse_filter_params(["kind=group", "metadata.tags.java"]) == {
        "$any": [{"kind": "group"}, {"metadata.tags.java": {"$exists": True}}]
    }
    assert parse_filter_params([",", ""]) is None
    with pytest.raises(InputError, match=r'Validation error: Invalid at "\$bad"'):
        parse_query({"$bad": 1})
    assert parse_query({"kind": {"$exists": True, "ignored": 1}}) == {"kind": {"$exists": True}}
