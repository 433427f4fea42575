"""A small JSON-schema validator that reports errors the way Ajv v8 does.

Backstage validates entities with Ajv (``allErrors``) and shows the *first* error, formatted
``<instancePath> <message> - <param>: <value>``. Which error comes first depends on Ajv's
keyword order, so this mirrors it for the keywords the catalog schemas use (``$ref``,
``allOf``/``anyOf``/``oneOf``, ``enum``, ``type``, ``minLength``, ``pattern``, ``items``,
``required``, ``additionalProperties``, ``properties``, ``patternProperties``). The
``jsonschema`` package reports the same failures in another order and other words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from scaffolder.catalog.model import js_str

SCHEMA_DIR = Path(__file__).parent / "schemas"


@dataclass(frozen=True, kw_only=True)
class AjvError:
    """One Ajv error object."""

    instance_path: str
    keyword: str
    message: str
    params: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """``throwAjvError``'s text: path, message and params."""
        params = ", ".join(f"{k}: {js_str(v)}" for k, v in self.params.items())
        return f"{self.instance_path or '<root>'} {self.message} - {params}"


@cache
def schema(name: str) -> dict[str, Any]:
    """A bundled schema by its ``$id`` (``Entity``, ``ComponentV1alpha1`` file ``Component``)."""
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    return loaded


@cache
def _registry() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in SCHEMA_DIR.glob("*.json"):
        loaded = schema(path.stem)
        out[str(loaded.get("$id", path.stem))] = loaded
        for definition in (loaded.get("definitions") or {}).values():
            anchor = definition.get("$id")
            if isinstance(anchor, str) and anchor.startswith("#"):
                out[f"{loaded['$id']}{anchor}"] = definition
    return out


@cache
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _type_ok(name: str, value: Any) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return False


def validate(root: Mapping[str, Any], data: Any) -> list[AjvError]:
    """Every error Ajv reports for ``data`` against ``root``, in Ajv's order."""
    errors: list[AjvError] = []
    _check(root, data, "", errors, str(root.get("$id", "")))
    return errors


def _resolve(ref: str, base: str) -> tuple[dict[str, Any], str]:
    registry = _registry()
    if ref.startswith("#"):
        target = registry.get(f"{base}{ref}")
        return (target or {}), base
    name = ref.split("#")[0]
    target = registry.get(ref) or registry.get(name) or {}
    return target, str(target.get("$id", name))


def _check(node: Any, data: Any, path: str, errors: list[AjvError], base: str) -> None:
    if node is True or node is None:
        return
    if node is False:
        errors.append(
            AjvError(instance_path=path, keyword="false schema", message="boolean schema is false")
        )
        return
    if "$ref" in node:
        target, target_base = _resolve(str(node["$ref"]), base)
        _check(target, data, path, errors, target_base)
        return
    if "enum" in node and data not in node["enum"]:
        errors.append(
            AjvError(
                instance_path=path,
                keyword="enum",
                message="must be equal to one of the allowed values",
                params={"allowedValues": node["enum"]},
            )
        )
    if "oneOf" in node:
        _one_of(node["oneOf"], data, path, errors, base)
    if "allOf" in node:
        for sub in node["allOf"]:
            _check(sub, data, path, errors, base)
    types = node.get("type")
    type_list = [types] if isinstance(types, str) else list(types or [])
    if type_list and not any(_type_ok(t, data) for t in type_list):
        errors.append(
            AjvError(
                instance_path=path,
                keyword="type",
                message=f"must be {','.join(type_list)}",
                params={"type": types},
            )
        )
        return
    if isinstance(data, str):
        _string(node, data, path, errors)
    elif isinstance(data, list) and "items" in node:
        for index, item in enumerate(data):
            _check(node["items"], item, f"{path}/{index}", errors, base)
    elif isinstance(data, dict):
        _object(node, data, path, errors, base)


def _string(node: Mapping[str, Any], data: str, path: str, errors: list[AjvError]) -> None:
    limit = node.get("minLength")
    if isinstance(limit, int) and len(data) < limit:
        errors.append(
            AjvError(
                instance_path=path,
                keyword="minLength",
                message=f"must NOT have fewer than {limit} characters",
                params={"limit": limit},
            )
        )
    pattern = node.get("pattern")
    if isinstance(pattern, str) and not _pattern(pattern).search(data):
        errors.append(
            AjvError(
                instance_path=path,
                keyword="pattern",
                message=f'must match pattern "{pattern}"',
                params={"pattern": pattern},
            )
        )


def _object(
    node: Mapping[str, Any], data: dict[str, Any], path: str, errors: list[AjvError], base: str
) -> None:
    for name in node.get("required") or []:
        if name not in data:
            errors.append(
                AjvError(
                    instance_path=path,
                    keyword="required",
                    message=f"must have required property '{name}'",
                    params={"missingProperty": name},
                )
            )
    properties: Mapping[str, Any] = node.get("properties") or {}
    patterns: Mapping[str, Any] = node.get("patternProperties") or {}
    extra = node.get("additionalProperties", True)
    if extra is not True:
        for key in data:
            if key in properties or any(_pattern(p).search(key) for p in patterns):
                continue
            if extra is False:
                errors.append(
                    AjvError(
                        instance_path=path,
                        keyword="additionalProperties",
                        message="must NOT have additional properties",
                        params={"additionalProperty": key},
                    )
                )
            else:
                _check(extra, data[key], f"{path}/{_escape(key)}", errors, base)
    for key, sub in properties.items():
        if key in data:
            _check(sub, data[key], f"{path}/{_escape(key)}", errors, base)
    for pattern, sub in patterns.items():
        for key, value in data.items():
            if _pattern(pattern).search(key):
                _check(sub, value, f"{path}/{_escape(key)}", errors, base)


def _one_of(branches: list[Any], data: Any, path: str, errors: list[AjvError], base: str) -> None:
    collected: list[AjvError] = []
    passing: list[int] = []
    for index, branch in enumerate(branches):
        branch_errors: list[AjvError] = []
        _check(branch, data, path, branch_errors, base)
        if branch_errors:
            collected.extend(branch_errors)
        else:
            passing.append(index)
    if len(passing) == 1:
        return
    if not passing:
        errors.extend(collected)
    errors.append(
        AjvError(
            instance_path=path,
            keyword="oneOf",
            message="must match exactly one schema in oneOf",
            params={"passingSchemas": passing or None},
        )
    )
