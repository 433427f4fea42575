"""Entity validation: the envelope, Backstage's field format rules, and kind schemas."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from scaffolder.catalog.model import TEMPLATE_API_VERSION
from scaffolder.errors import InputError

_HELP = (
    "To learn more about catalog file format, visit: "
    "https://github.com/backstage/backstage/blob/master/docs/architecture-decisions/"
    "adr002-default-catalog-file-format.md"
)
_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_LABEL = re.compile(r"^[a-z0-9]+(?:-+[a-z0-9]+)*$")
_KIND = re.compile(r"^[a-zA-Z][a-z0-9A-Z]*$")
_VERSION = re.compile(r"^[a-z0-9A-Z]+$")
_TAG = re.compile(r"^[a-z0-9:+#]+(-[a-z0-9:+#]+)*$")
_ROOT_FIELDS = {"apiVersion", "kind", "metadata", "spec", "relations", "status"}

_NAME_RULE = (
    "a string that is sequences of [a-zA-Z0-9] separated by any of [-_.], "
    "at most 63 characters in total"
)
_NS_RULE = "a string that is sequences of [a-z0-9] separated by [-], at most 63 characters in total"
_KIND_RULE = "a string that is a sequence of [a-zA-Z][a-z0-9A-Z], at most 63 characters in total"

#: Required spec fields per kind (catalog-model's kind schemas; Template per scaffolder-common).
REQUIRED_SPEC: Mapping[str, tuple[str, ...]] = {
    "component": ("type", "lifecycle", "owner"),
    "api": ("type", "lifecycle", "owner", "definition"),
    "system": ("owner",),
    "domain": ("owner",),
    "resource": ("type", "owner"),
    "group": ("type", "children"),
    "user": ("memberOf",),
    "location": (),
    "template": ("type", "steps"),
}


def _bad(field: str, expectation: str, value: Any) -> InputError:
    return InputError(
        f'"{field}" is not valid; expected {expectation} but found "{value}". {_HELP}'
    )


def _dns_subdomain(value: str) -> bool:
    return len(value) <= 253 and all(_DNS_LABEL.match(p) and len(p) <= 63 for p in value.split("."))


def _key_ok(key: str) -> bool:
    parts = key.split("/")
    if len(parts) > 2:
        return False
    if len(parts) == 2 and not _dns_subdomain(parts[0]):
        return False
    name = parts[-1]
    return len(name) <= 63 and bool(_NAME.match(name))


def validate_entity(entity: Any) -> None:
    """Raise `InputError` naming the first field that breaks Backstage's rules."""
    if not isinstance(entity, Mapping):
        raise InputError(f"Expected object at root, got {type(entity).__name__}")
    for key in entity:
        if key not in _ROOT_FIELDS:
            raise InputError(f"Unknown field {key}")
    api_version, kind, metadata = (
        entity.get("apiVersion"),
        entity.get("kind"),
        entity.get("metadata"),
    )
    if not isinstance(api_version, str) or not api_version:
        raise InputError("Entity apiVersion must be a non-empty string")
    group, _, version = api_version.rpartition("/")
    if (group and not _dns_subdomain(group)) or not _VERSION.match(version) or len(version) > 63:
        raise _bad("apiVersion", "a string that is a valid apiVersion", api_version)
    if not isinstance(kind, str) or not _KIND.match(kind) or len(kind) > 63:
        raise _bad("kind", _KIND_RULE, kind)
    if not isinstance(metadata, Mapping):
        raise InputError("Entity metadata must be an object")
    name = metadata.get("name")
    if not isinstance(name, str) or len(name) > 63 or not _NAME.match(name):
        raise _bad("metadata.name", _NAME_RULE, name)
    namespace = metadata.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str) or len(namespace) > 63 or not _DNS_LABEL.match(namespace)
    ):
        raise _bad("metadata.namespace", _NS_RULE, namespace)
    for field in ("labels", "annotations"):
        values = metadata.get(field) or {}
        if not isinstance(values, Mapping):
            raise InputError(f"Entity metadata.{field} must be an object")
        for key, value in values.items():
            if not _key_ok(str(key)):
                raise _bad(f"metadata.{field}.{key}", "a valid key", key)
            if not isinstance(value, str):
                raise _bad(f"metadata.{field}.{key}", "a string", value)
            if field == "labels" and value and not _NAME.match(value):
                raise _bad(f"metadata.labels.{key}", _NAME_RULE, value)
    for tag in metadata.get("tags") or []:
        if not isinstance(tag, str) or len(tag) > 63 or not _TAG.match(tag):
            raise _bad(
                "metadata.tags",
                "a string that is sequences of [a-z0-9+#] separated by [-], "
                "at most 63 characters in total",
                tag,
            )
    for link in metadata.get("links") or []:
        url = link.get("url") if isinstance(link, Mapping) else None
        if not isinstance(url, str) or not urlparse(url).scheme:
            raise _bad("metadata.links", "a link with a url", link)
    spec = entity.get("spec")
    lowered = kind.lower()
    if lowered == "template" and api_version != TEMPLATE_API_VERSION:
        raise InputError(f"Unsupported apiVersion field in schema entity, {api_version}")
    required = REQUIRED_SPEC.get(lowered, ())
    if required and not isinstance(spec, Mapping):
        raise InputError("/spec must be object")
    for field in required:
        value = spec.get(field) if isinstance(spec, Mapping) else None
        if value is None or value == "":
            raise InputError(
                f"/spec must have required property '{field}' - missingProperty: {field}"
            )
    if lowered == "template":
        assert isinstance(spec, Mapping)
        if not isinstance(spec.get("steps"), list):
            raise InputError("/spec/steps must be array")
        params = spec.get("parameters")
        if params is not None and not isinstance(params, Mapping | list):
            raise InputError("/spec/parameters must be object or array")
