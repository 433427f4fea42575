"""Entity references and the few entity facts the rest of the service relies on."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scaffolder.errors import InputError

DEFAULT_NAMESPACE = "default"
TEMPLATE_API_VERSION = "scaffolder.backstage.io/v1beta3"

_REF = re.compile(r"^(?:(?P<kind>[^:/]+):)?(?:(?P<namespace>[^:/]+)/)?(?P<name>[^:/]+)$")


@dataclass(frozen=True, kw_only=True)
class EntityRef:
    """``kind:namespace/name`` (Backstage's CompoundEntityRef)."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.namespace}/{self.name}".lower()


def parse_entity_ref(
    ref: str,
    *,
    default_kind: str | None = None,
    default_namespace: str = DEFAULT_NAMESPACE,
) -> EntityRef:
    """Parse ``[kind:][namespace/]name`` as Backstage's ``parseEntityRef`` does.

    Raises:
        InputError: when the ref is malformed or has no kind and no default kind.
    """
    match = _REF.match(ref.strip()) if isinstance(ref, str) else None
    if not match:
        raise InputError(
            f'Entity reference "{ref}" was not on the form [<kind>:][<namespace>/]<name>'
        )
    kind = match.group("kind") or default_kind
    if not kind:
        raise InputError(
            f'Entity reference "{ref}" had missing or empty kind (e.g. did not start with '
            '"component:" or similar)'
        )
    return EntityRef(
        kind=kind, namespace=match.group("namespace") or default_namespace, name=match.group("name")
    )


def entity_ref_of(entity: Mapping[str, Any]) -> EntityRef:
    """The ref of an entity (its namespace defaulted)."""
    metadata = entity.get("metadata") or {}
    return EntityRef(
        kind=str(entity.get("kind")),
        namespace=str(metadata.get("namespace") or DEFAULT_NAMESPACE),
        name=str(metadata.get("name")),
    )
