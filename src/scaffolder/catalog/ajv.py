"""A small JSON-schema validator that reports errors the way Ajv v8 does.

Backstage validates entities with Ajv (``allErrors``) and shows the *first* error, formatted
``<instancePath> <message> - <param>: <value>``. Which error comes first depends on Ajv's
keyword order, so this mirrors it for the keywords the catalog schemas use (``$ref``,
``allOf``/``oneOf``, ``enum``, ``type``, ``minLength``, ``pattern``, ``items``, ``required``,
``additionalProperties``, ``properties``, ``patternProperties``). The ``jsonschema`` package
reports the same failures in another order and other words. Schemas are compiled once into
closures: ingesting ten thousand entities validates each against several schemas.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from scaffolder.catalog.model import js_str

SCHEMA_DIR = Path(__file__).parent / "schemas"

#: A compiled schema: checks ``data`` at ``path``, appending errors.
Check = Callable[[Any, str, list["AjvError"]], None]


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
    """A bundled schema by file name (``Entity``, ``Component``, ...)."""
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


def validate(root: Mapping[str, Any], data: Any) -> list[AjvError]:
    """Every error Ajv reports for ``data`` against ``root``, in Ajv's order."""
    errors: list[AjvError] = []
    _compiled(id(root), root)(data, "", errors)
    return errors


#: Compiled checks by schema identity; the schema is kept so its id is never reused.
_COMPILED: dict[int, tuple[Mapping[str, Any], Check]] = {}


def _compiled(key: int, root: Mapping[str, Any]) -> Check:
    found = _COMPILED.get(key)
    if found is None:
        found = (root, _Compiler().compile(root, str(root.get("$id", ""))))
        _COMPILED[key] = found
    return found[1]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1") if ("~" in key or "/" in key) else key


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


class _Compiler:
    """Turns schema nodes into checks; ``$ref`` targets are compiled lazily (cycles)."""

    def __init__(self) -> None:
        self._refs: dict[str, Check] = {}

    def _ref(self, ref: str, base: str) -> Check:
        registry = _registry()
        key = f"{base}{ref}" if ref.startswith("#") else ref
        if key in self._refs:
            return self._refs[key]
        holder: list[Check] = []

        def deferred(data: Any, path: str, errors: list[AjvError]) -> None:
            holder[0](data, path, errors)

        self._refs[key] = deferred
        if ref.startswith("#"):
            target, target_base = registry.get(key) or {}, base
        else:
            name = ref.split("#")[0]
            target = registry.get(ref) or registry.get(name) or {}
            target_base = str(target.get("$id", name))
        holder.append(self.compile(target, target_base))
        return deferred

    def compile(self, node: Any, base: str) -> Check:
        """The check for one schema node."""
        if node is True or node is None:
            return lambda data, path, errors: None
        if node is False:

            def never(data: Any, path: str, errors: list[AjvError]) -> None:
                errors.append(
                    AjvError(
                        instance_path=path,
                        keyword="false schema",
                        message="boolean schema is false",
                    )
                )

            return never
        if "$ref" in node:
            return self._ref(str(node["$ref"]), base)
        checks: list[Check] = []
        if "enum" in node:
            checks.append(_enum(list(node["enum"])))
        if "oneOf" in node:
            checks.append(_one_of([self.compile(b, base) for b in node["oneOf"]]))
        for sub in node.get("allOf") or []:
            checks.append(self.compile(sub, base))
        types = node.get("type")
        type_list = [types] if isinstance(types, str) else list(types or [])
        string = _string(node)
        items = self.compile(node["items"], base) if "items" in node else None
        obj = self._object(node, base)

        def check(data: Any, path: str, errors: list[AjvError]) -> None:
            for sub_check in checks:
                sub_check(data, path, errors)
            if type_list and not any(_TYPE_CHECKS[t](data) for t in type_list):
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
                if string is not None:
                    string(data, path, errors)
            elif isinstance(data, list):
                if items is not None:
                    for index, item in enumerate(data):
                        items(item, f"{path}/{index}", errors)
            elif isinstance(data, dict) and obj is not None:
                obj(data, path, errors)

        return check

    def _object(self, node: Mapping[str, Any], base: str) -> Check | None:
        required = list(node.get("required") or [])
        properties = {k: self.compile(v, base) for k, v in (node.get("properties") or {}).items()}
        patterns = [
            (re.compile(p), self.compile(v, base))
            for p, v in (node.get("patternProperties") or {}).items()
        ]
        extra = node.get("additionalProperties", True)
        extra_check = self.compile(extra, base) if isinstance(extra, dict) else None
        if not (required or properties or patterns or extra is not True):
            return None

        def check(data: dict[str, Any], path: str, errors: list[AjvError]) -> None:
            for name in required:
                if name not in data:
                    errors.append(
                        AjvError(
                            instance_path=path,
                            keyword="required",
                            message=f"must have required property '{name}'",
                            params={"missingProperty": name},
                        )
                    )
            if extra is not True:
                for key in data:
                    if key in properties or any(p.search(key) for p, _ in patterns):
                        continue
                    if extra_check is not None:
                        extra_check(data[key], f"{path}/{_escape(key)}", errors)
                    else:
                        errors.append(
                            AjvError(
                                instance_path=path,
                                keyword="additionalProperties",
                                message="must NOT have additional properties",
                                params={"additionalProperty": key},
                            )
                        )
            for key, sub in properties.items():
                if key in data:
                    sub(data[key], f"{path}/{_escape(key)}", errors)
            for pattern, sub in patterns:
                for key, value in data.items():
                    if pattern.search(key):
                        sub(value, f"{path}/{_escape(key)}", errors)

        return check


def _enum(allowed: list[Any]) -> Check:
    def check(data: Any, path: str, errors: list[AjvError]) -> None:
        if data not in allowed:
            errors.append(
                AjvError(
                    instance_path=path,
                    keyword="enum",
                    message="must be equal to one of the allowed values",
                    params={"allowedValues": allowed},
                )
            )

    return check


def _string(node: Mapping[str, Any]) -> Check | None:
    limit = node.get("minLength")
    pattern_text = node.get("pattern")
    pattern = re.compile(pattern_text) if isinstance(pattern_text, str) else None
    if not isinstance(limit, int) and pattern is None:
        return None

    def check(data: Any, path: str, errors: list[AjvError]) -> None:
        if isinstance(limit, int) and len(data) < limit:
            errors.append(
                AjvError(
                    instance_path=path,
                    keyword="minLength",
                    message=f"must NOT have fewer than {limit} characters",
                    params={"limit": limit},
                )
            )
        if pattern is not None and not pattern.search(data):
            errors.append(
                AjvError(
                    instance_path=path,
                    keyword="pattern",
                    message=f'must match pattern "{pattern_text}"',
                    params={"pattern": pattern_text},
                )
            )

    return check


def _one_of(branches: list[Check]) -> Check:
    def check(data: Any, path: str, errors: list[AjvError]) -> None:
        collected: list[AjvError] = []
        passing: list[int] = []
        for index, branch in enumerate(branches):
            branch_errors: list[AjvError] = []
            branch(data, path, branch_errors)
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

    return check
