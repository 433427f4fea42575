"""npm-jsonschema-shaped validation errors."""

from __future__ import annotations

from scaffolder.validation import property_path, validate


def test_property_paths() -> None:
    assert property_path([]) == "instance"
    assert property_path(["a", 0, "b-c"]) == 'instance.a[0]["b-c"]'


def test_messages_match_npm_jsonschema() -> None:
    schema = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "count": {"type": "number"},
            "lang": {"enum": ["python", "go"]},
            "port": {"type": "integer", "minimum": 1024, "maximum": 65535},
            "short": {"type": "string", "minLength": 3},
        },
        "additionalProperties": False,
    }
    errors = validate({"count": "x", "lang": "c", "port": 1, "short": "a", "x": 1, "y": 2}, schema)
    assert [e["stack"] for e in errors] == [
        'instance requires property "name"',
        "instance.count is not of a type(s) number",
        "instance.lang is not one of enum values: python,go",
        "instance.port must be greater than or equal to 1024",
        "instance.short does not meet minimum length of 3",
        'instance is not allowed to have the additional property "x"',
        'instance is not allowed to have the additional property "y"',
    ]
    required = errors[0]
    assert required["name"] == "required"
    assert required["argument"] == "name"
    assert required["path"] == []
    assert required["schema"] is not None
    assert errors[1]["argument"] == ["number"]


def test_valid_instance_has_no_errors() -> None:
    assert validate({"a": 1}, {"type": "object", "properties": {"a": {"type": "integer"}}}) == []
