"""Relations an entity implies (Backstage's BuiltinKindsEntityProcessor, forward direction)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffolder.catalog.model import parse_entity_ref
from scaffolder.errors import InputError

# (source kinds, spec field, default target kind or None, relation type, is a list)
_RULES: tuple[tuple[frozenset[str], str, str | None, str, bool], ...] = (
    (
        frozenset({"component", "api", "resource", "system", "domain", "template"}),
        "owner",
        "group",
        "ownedBy",
        False,
    ),
    (frozenset({"component"}), "subcomponentOf", "component", "partOf", False),
    (frozenset({"component"}), "providesApis", "api", "providesApi", True),
    (frozenset({"component"}), "consumesApis", "api", "consumesApi", True),
    (frozenset({"component", "resource"}), "dependsOn", None, "dependsOn", True),
    (frozenset({"component", "resource"}), "dependencyOf", None, "dependencyOf", True),
    (frozenset({"component", "api", "resource"}), "system", "system", "partOf", False),
    (frozenset({"system"}), "domain", "domain", "partOf", False),
    (frozenset({"domain"}), "subdomainOf", "domain", "partOf", False),
    (frozenset({"user"}), "memberOf", "group", "memberOf", True),
    (frozenset({"group"}), "parent", "group", "childOf", False),
    (frozenset({"group"}), "children", "group", "parentOf", True),
    (frozenset({"group"}), "members", "user", "hasMember", True),
)


def relations_of(entity: Mapping[str, Any]) -> list[dict[str, str]]:
    """The relations an entity declares, sorted by type then target."""
    kind = str(entity.get("kind", "")).lower()
    spec = entity.get("spec") or {}
    namespace = (entity.get("metadata") or {}).get("namespace") or "default"
    found: set[tuple[str, str]] = set()
    for kinds, field, default_kind, relation, many in _RULES:
        if kind not in kinds or field not in spec:
            continue
        values = spec[field] if many and isinstance(spec[field], list) else [spec[field]]
        for value in values:
            if not isinstance(value, str) or not value:
                continue
            try:
                ref = parse_entity_ref(
                    value, default_kind=default_kind, default_namespace=namespace
                )
            except InputError:
                continue
            found.add((relation, str(ref)))
    return [{"type": t, "targetRef": r} for t, r in sorted(found)]
