"""JSON-schema validation that reports errors the way Backstage's clients see them.

Backstage validates template parameters and action inputs with the npm ``jsonschema`` package,
and answers with its ``ValidationError`` objects (``path``, ``property``, ``message``,
``schema``, ``instance``, ``name``, ``argument``, ``stack``). We validate with the Python
``jsonschema`` package (draft-07) and translate each error into that shape, one error per
offending property as npm does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def property_path(path: list[str | int], root: str = "instance") -> str:
    """npm jsonschema's ``property``: ``instance.a[0]["b-c"]``."""
    out = root
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.match(part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def validate(instance: Any, schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Validate ``instance``; return npm-jsonschema-shaped errors (empty when valid)."""
    validator = _validator(json.dumps(schema))
    return [e for error in validator.iter_errors(instance) for e in _translate(error)]


def error_stacks(errors: list[dict[str, Any]]) -> str:
    """The errors' ``stack`` texts joined with ``, `` (Backstage's action input message)."""
    return ", ".join(str(e["stack"]) for e in errors)


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> Draft7Validator:
    schema = json.loads(schema_json)
    return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


def _fmt(value: Any) -> str:
    """JavaScript's ``String(value)``."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(_fmt(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def _translate(error: ValidationError) -> Iterator[dict[str, Any]]:
    keyword = str(error.validator)
    arg: Any = error.validator_value
    path = list(error.absolute_path)
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}

    def make(name: str, message: str, argument: Any, at: list[str | int] | None = None) -> Any:
        where = path if at is None else at
        prop = property_path(where)
        return {
            "path": where,
            "property": prop,
            "message": message,
            "schema": schema,
            "instance": instance,
            "name": name,
            "argument": argument,
            "stack": f"{prop} {message}",
        }

    if keyword == "required":
        missing = re.match(r"^'(.*)' is a required property$", error.message)
        name = missing.group(1) if missing else str(arg)
        yield make("required", f"requires property {json.dumps(name)}", name)
    elif keyword == "type":
        types = arg if isinstance(arg, list) else [arg]
        yield make("type", f"is not of a type(s) {','.join(types)}", types)
    elif keyword == "additionalProperties":
        allowed = set(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        for key in instance if isinstance(instance, dict) else []:
            if key in allowed or any(p.search(key) for p in patterns):
                continue
            yield make(
                "additionalProperties",
                f"is not allowed to have the additional property {json.dumps(key)}",
                key,
            )
    elif keyword == "pattern":
        yield make("pattern", f"does not match pattern {json.dumps(arg)}", arg)
    elif keyword == "enum":
        yield make("enum", f"is not one of enum values: {','.join(_fmt(v) for v in arg)}", arg)
    elif keyword == "const":
        yield make("const", f"does not exactly match expected constant: {_fmt(arg)}", arg)
    elif keyword == "minimum":
        yield make("minimum", f"must be greater than or equal to {_fmt(arg)}", arg)
    elif keyword == "maximum":
        yield make("maximum", f"must be less than or equal to {_fmt(arg)}", arg)
    elif keyword == "exclusiveMinimum":
        yield make("exclusiveMinimum", f"must be greater than {_fmt(arg)}", arg)
    elif keyword == "exclusiveMaximum":
        yield make("exclusiveMaximum", f"must be less than {_fmt(arg)}", arg)
    elif keyword in ("minLength", "minItems"):
        yield make(keyword, f"does not meet minimum length of {_fmt(arg)}", arg)
    elif keyword in ("maxLength", "maxItems"):
        yield make(keyword, f"does not meet maximum length of {_fmt(arg)}", arg)
    elif keyword == "format":
        yield make("format", f"does not conform to the {json.dumps(arg)} format", arg)
    elif keyword == "multipleOf":
        yield make("multipleOf", f"is not a multiple of (divisible by) {_fmt(arg)}", arg)
    elif keyword == "uniqueItems":
        yield make("uniqueItems", "contains duplicate item", arg)
    elif keyword in ("anyOf", "oneOf"):
        ids = [f"[subschema {i}]" for i in range(len(arg))]
        verb = "is not any of" if keyword == "anyOf" else "is not exactly one from"
        yield make(keyword, f"{verb} {','.join(ids)}", ids)
    elif keyword == "not":
        yield make("not", f"is of prohibited type {json.dumps(arg)}", arg)
    elif keyword == "minProperties":
        yield make(keyword, f"does not meet minimum property length of {_fmt(arg)}", arg)
    elif keyword == "maxProperties":
        yield make(keyword, f"does not meet maximum property length of {_fmt(arg)}", arg)
    else:
        yield make(keyword, error.message, arg)
