"""The relations an entity emits (BuiltinKindsEntityProcessor, ScaffolderEntitiesProcessor).

Every relation is emitted in both directions by the entity that declares it: a Component
whose ``spec.owner`` is ``team-a`` emits ``component -ownedBy-> group:default/team-a`` and
``group:default/team-a -ownerOf-> component``. Stitching gives each entity the relations whose
source it is, so the Group shows ``ownerOf`` although nothing in its own file says so.
Targets need not exist. Kinds are matched with upstream's exact case (``kind: component``
is no Component here either).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffolder.catalog.errors import EntityError, input_error, plain_error
from scaffolder.catalog.model import RefError, parse_ref, stringify_ref

TEMPLATE_API_VERSION = "scaffolder.backstage.io/v1beta3"

#: One relation row: (source ref, type, target ref), refs lower-cased.
Relation = tuple[str, str, str]

# kind -> (spec field, default target kind, forward type, reverse type)
_RULES: Mapping[str, tuple[tuple[str, str | None, str, str], ...]] = {
    "Component": (
        ("owner", "Group", "ownedBy", "ownerOf"),
        ("subcomponentOf", "Component", "partOf", "hasPart"),
        ("providesApis", "API", "providesApi", "apiProvidedBy"),
        ("consumesApis", "API", "consumesApi", "apiConsumedBy"),
        ("dependsOn", None, "dependsOn", "dependencyOf"),
        ("dependencyOf", None, "dependencyOf", "dependsOn"),
        ("system", "System", "partOf", "hasPart"),
    ),
    "API": (
        ("owner", "Group", "ownedBy", "ownerOf"),
        ("system", "System", "partOf", "hasPart"),
    ),
    "Resource": (
        ("owner", "Group", "ownedBy", "ownerOf"),
        ("dependsOn", None, "dependsOn", "dependencyOf"),
        ("dependencyOf", None, "dependencyOf", "dependsOn"),
        ("system", "System", "partOf", "hasPart"),
    ),
    "User": (("memberOf", "Group", "memberOf", "hasMember"),),
    "Group": (
        ("parent", "Group", "childOf", "parentOf"),
        ("children", "Group", "parentOf", "childOf"),
        ("members", "User", "hasMember", "memberOf"),
    ),
    "System": (
        ("owner", "Group", "ownedBy", "ownerOf"),
        ("domain", "Domain", "partOf", "hasPart"),
    ),
    "Domain": (
        ("owner", "Group", "ownedBy", "ownerOf"),
        ("subdomainOf", "Domain", "partOf", "hasPart"),
    ),
}

#: String arrays the builtin processor sorts in place before anything else sees them.
SORTED_SPEC_FIELDS = (
    "providesApis",
    "consumesApis",
    "dependsOn",
    "dependencyOf",
    "memberOf",
    "children",
    "members",
)


def sort_spec_arrays(entity: dict[str, Any]) -> None:
    """``preProcessEntity`` of the builtin processor: sort the ref arrays of ``spec``."""
    spec = entity.get("spec")
    if not isinstance(spec, dict):
        return
    for name in SORTED_SPEC_FIELDS:
        value = spec.get(name)
        if value and isinstance(value, list) and all(isinstance(v, str) for v in value):
            # JavaScript's default sort compares UTF-16 code units.
            value.sort(key=lambda s: s.encode("utf-16-be"))


def emit_relations(entity: Mapping[str, Any]) -> list[Relation]:
    """Both directions of every relation ``entity`` declares, in emission order.

    Raises:
        EntityError: upstream's ``Processor ... threw an error while postprocessing`` when a
            target is not a valid ref.
    """
    kind = str(entity.get("kind"))
    metadata = entity.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "default")
    self_ref = stringify_ref(kind, namespace, str(metadata.get("name")))
    spec = entity.get("spec") or {}
    out: list[Relation] = []

    def emit(targets: Any, default_kind: str | None, forward: str, reverse: str) -> None:
        if not targets:
            return
        for target in targets if isinstance(targets, list) else [targets]:
            try:
                if not isinstance(target, str):
                    raise RefError(f"Entity reference {target!r} was not a string")
                t_kind, t_namespace, t_name = parse_ref(
                    target, default_kind=default_kind, default_namespace=namespace
                )
            except RefError as exc:
                raise plain_error(str(exc)) from None
            target_ref = stringify_ref(t_kind, t_namespace, t_name)
            out.append((self_ref, forward, target_ref))
            out.append((target_ref, reverse, self_ref))

    processor = "BuiltinKindsEntityProcessor"
    try:
        for field, default_kind, forward, reverse in _RULES.get(kind, ()):
            emit(spec.get(field), default_kind, forward, reverse)
        if entity.get("apiVersion") == TEMPLATE_API_VERSION and kind == "Template":
            processor = "ScaffolderEntitiesProcessor"
            emit(spec.get("owner"), "Group", "ownedBy", "ownerOf")
    except EntityError as exc:
        raise input_error(
            f"Processor {processor} threw an error while postprocessing", exc
        ) from None
    return out


def relations_of(entity: Mapping[str, Any]) -> list[dict[str, str]]:
    """The relations ``entity`` itself is the source of, sorted by type then target."""
    own = stringify_ref(
        str(entity.get("kind")),
        (entity.get("metadata") or {}).get("namespace"),
        str((entity.get("metadata") or {}).get("name")),
    )
    found = sorted({(t, target) for source, t, target in emit_relations(entity) if source == own})
    return [{"type": t, "targetRef": r} for t, r in found]
