"""Entity references and the few entity facts the rest of the service relies on."""

from __future__ import annotations

import hashlib
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


# --- Upstream's ref and location helpers (catalog-model), used by the catalog engine ---------

ANNOTATION_LOCATION = "backstage.io/managed-by-location"
ANNOTATION_ORIGIN_LOCATION = "backstage.io/managed-by-origin-location"
ANNOTATION_VIEW_URL = "backstage.io/view-url"
ANNOTATION_EDIT_URL = "backstage.io/edit-url"
ANNOTATION_SOURCE_LOCATION = "backstage.io/source-location"
ANNOTATION_ORPHAN = "backstage.io/orphan"
LOCATION_API_VERSION = "backstage.io/v1alpha1"
STATUS_PROCESSING_TYPE = "backstage.io/catalog-processing"

_SCRIPT_PROTOCOL = re.compile(
    r"^[\u0000-\u001F ]*j[\r\n\t]*a[\r\n\t]*v[\r\n\t]*a[\r\n\t]*s[\r\n\t]*c[\r\n\t]*r[\r\n\t]*"
    r"i[\r\n\t]*p[\r\n\t]*t[\r\n\t]*:",
    re.IGNORECASE,
)


class RefError(ValueError):
    """A ref that ``parseEntityRef`` refuses (its message is upstream's)."""


def js_str(value: Any) -> str:
    """``String(value)`` as JavaScript writes it (for messages that quote a value)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join("" if v is None else js_str(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def parse_ref(
    ref: str, *, default_kind: str | None = None, default_namespace: str | None = None
) -> tuple[str, str, str]:
    """``parseEntityRef`` of catalog-model: ``(kind, namespace, name)``, case kept.

    Raises:
        RefError: with upstream's message when a part is empty or missing.
    """
    if not ref:
        raise RefError("Entity reference must not be empty")
    colon = ref.find(":")
    slash = ref.find("/")
    if slash != -1 and slash < colon:
        colon = -1
    kind = None if colon == -1 else ref[:colon]
    namespace = None if slash == -1 else ref[colon + 1 : slash]
    name = ref[max(colon + 1, slash + 1) :]
    if kind == "" or namespace == "" or name == "":
        raise RefError(
            f'Entity reference "{ref}" was not on the form [<kind>:][<namespace>/]<name>'
        )
    kind = kind if kind is not None else default_kind
    namespace = namespace if namespace is not None else (default_namespace or DEFAULT_NAMESPACE)
    textual = '"' + ref.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if not kind:
        raise RefError(
            f"Entity reference {textual} had missing or empty kind "
            '(e.g. did not start with "component:" or similar)'
        )
    return kind, namespace, name


def stringify_ref(kind: str, namespace: str | None, name: str) -> str:
    """``stringifyEntityRef``: ``kind:namespace/name``, all lower-cased."""
    return f"{kind}:{namespace or DEFAULT_NAMESPACE}/{name}".lower()


def ref_of(entity: Mapping[str, Any]) -> str:
    """The lower-cased ref of an entity whose envelope is valid."""
    metadata = entity["metadata"]
    return stringify_ref(str(entity["kind"]), metadata.get("namespace"), str(metadata["name"]))


def is_script_url(value: str) -> bool:
    """Whether ``value`` is a ``javascript:`` URL (refused in location refs and view-urls)."""
    return bool(_SCRIPT_PROTOCOL.match(value))


@dataclass(frozen=True, kw_only=True)
class LocationSpec:
    """A place entities are read from: ``type`` (``url`` or ``file``), ``target``, presence."""

    type: str
    target: str
    presence: str = "required"

    @property
    def key(self) -> str:
        """``type:target``, the location ref (and location key) upstream writes."""
        return f"{self.type}:{self.target}"


def parse_location_ref(ref: Any) -> LocationSpec:
    """``parseLocationRef``: ``type:target``.

    Raises:
        RefError: with upstream's message.
    """
    if not isinstance(ref, str):
        raise RefError(f"Unable to parse location ref '{js_str(ref)}', unexpected argument")
    index = ref.find(":")
    usage = "expected '<type>:<target>', e.g. 'url:https://host/path'"
    if index < 0:
        raise RefError(f"Unable to parse location ref '{ref}', {usage}")
    kind, target = ref[:index].strip(), ref[index + 1 :].strip()
    if not kind or not target:
        raise RefError(f"Unable to parse location ref '{ref}', {usage}")
    if kind in ("http", "https"):
        raise RefError(
            f"Invalid location ref '{ref}', please prefix it with 'url:', e.g. 'url:{ref}'"
        )
    if is_script_url(target):
        raise RefError(f"Invalid location ref '{ref}', target is a javascript: URL")
    return LocationSpec(type=kind, target=target)


def location_entity_name(kind: str, target: str) -> str:
    """``generated-<sha1 of type:target>``, the name of a location's Location entity."""
    digest = hashlib.sha1(f"{kind}:{target}".encode()).hexdigest()  # noqa: S324 - a name
    return f"generated-{digest}"


def location_entity_ref(kind: str, target: str) -> str:
    """The ref of the Location entity for ``kind:target``."""
    return stringify_ref("Location", DEFAULT_NAMESPACE, location_entity_name(kind, target))


def location_entity(
    spec: LocationSpec, *, parent: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``locationSpecToLocationEntity``: the Location entity that reads ``spec``.

    A root location's entity is managed by (and originates at) itself; one emitted by a parent
    entity (a Location's ``spec.targets``) inherits the parent's location and origin.
    """
    if parent is None:
        own = origin = spec.key
    else:
        annotations = parent["metadata"].get("annotations") or {}
        own = annotations[ANNOTATION_LOCATION]
        origin = annotations[ANNOTATION_ORIGIN_LOCATION]
    body: dict[str, Any] = {"type": spec.type, "target": spec.target}
    if spec.presence != "required":
        body["presence"] = spec.presence
    return {
        "apiVersion": LOCATION_API_VERSION,
        "kind": "Location",
        "metadata": {
            "name": location_entity_name(spec.type, spec.target),
            "annotations": {ANNOTATION_LOCATION: own, ANNOTATION_ORIGIN_LOCATION: origin},
        },
        "spec": body,
    }
