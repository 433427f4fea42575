"""Entity validation as Backstage's catalog does it, with its exact messages.

Processing runs, in this order (CONTRACT §9.2-9.3):

1. the envelope (``apiVersion``, ``kind``, ``metadata.name``): `check_envelope`;
2. the entity policies: the ``Entity`` schema, the default namespace, no foreign root
   fields, and the field formats (``FieldFormatEntityPolicy``): `enforce_policies`;
3. the kind schemas of the processors that know the kind: `validate_kind`.

`validate_entity` runs the same checks for the linter, dry runs and tests, and raises
`InputError` with the innermost message (``"metadata.name" is not valid; ...``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from scaffolder.catalog import ajv
from scaffolder.catalog.errors import EntityError, input_error, plain_error
from scaffolder.catalog.model import DEFAULT_NAMESPACE, js_str, stringify_ref
from scaffolder.catalog.placeholders import stand_in_placeholders
from scaffolder.errors import InputError

_HELP = (
    " To learn more about catalog file format, visit: "
    "https://github.com/backstage/backstage/blob/master/docs/architecture-decisions/"
    "adr002-default-catalog-file-format.md"
)
_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_LABEL = re.compile(r"^[a-z0-9]+(?:-+[a-z0-9]+)*$")
_KIND = re.compile(r"^[a-zA-Z][a-z0-9A-Z]*$")
_VERSION = re.compile(r"^[a-z0-9A-Z]+$")
_TAG = re.compile(r"^[a-z0-9:+#]+(-[a-z0-9:+#]+)*$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
KNOWN_ROOT_FIELDS = ("apiVersion", "kind", "metadata", "spec")

_OBJECT_NAME = (
    "a string that is sequences of [a-zA-Z0-9] separated by any of [-_.], "
    "at most 63 characters in total"
)
_PREFIX_SUFFIX = "a valid prefix and/or suffix"
_DNS = "a string that is sequences of [a-z0-9] separated by [-], at most 63 characters in total"

#: (processor, kind schemas) in upstream's order: the builtin kinds, then the scaffolder's.
KIND_PROCESSORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "BuiltinKindsEntityProcessor",
        ("API", "Component", "Resource", "Group", "Location", "User", "System", "Domain"),
    ),
    ("ScaffolderEntitiesProcessor", ("Template",)),
)
KNOWN_KINDS = frozenset(k.lower() for _, kinds in KIND_PROCESSORS for k in kinds)


def _dns_label(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 63 and bool(_DNS_LABEL.match(value))


def _dns_subdomain(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= 253
        and all(_dns_label(p) for p in value.split("."))
    )


def _object_name(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 63 and bool(_NAME.match(value))


def _prefix_suffix(value: Any, suffix: Callable[[Any], bool]) -> bool:
    if not isinstance(value, str):
        return False
    parts = value.split("/")
    if len(parts) == 1:
        return suffix(parts[0])
    return len(parts) == 2 and _dns_subdomain(parts[0]) and suffix(parts[1])


def _api_version(value: Any) -> bool:
    return _prefix_suffix(
        value, lambda n: isinstance(n, str) and 1 <= len(n) <= 63 and bool(_VERSION.match(n))
    )


def _kind(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 63 and bool(_KIND.match(value))


def _tag(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 63 and bool(_TAG.match(value))


def _url(value: Any) -> bool:
    if not isinstance(value, str) or not _URL.match(value):
        return False
    try:
        urlsplit(value)
    except ValueError:
        return False
    return True


def _non_empty(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def check_envelope(entity: Any) -> dict[str, Any]:
    """``entityEnvelopeSchemaValidator``: the entity, or a ``TypeError`` `EntityError`."""
    errors = ajv.validate(ajv.schema("EntityEnvelope"), entity)
    if errors:
        raise EntityError(name="TypeError", message=errors[0].text())
    assert isinstance(entity, dict)
    return entity


def _field_error(
    field: str, value: Any, check: Callable[[Any], bool], expectation: str
) -> EntityError | None:
    if value is None:
        return plain_error(f"{field} must have a value")
    if not check(value):
        return plain_error(
            f'"{field}" is not valid; expected {expectation} but found "{js_str(value)}".{_HELP}'
        )
    return None


def field_format_errors(entity: Mapping[str, Any]) -> list[tuple[str, EntityError]]:
    """Every ``FieldFormatEntityPolicy`` failure, in upstream's order: ``(field, error)``.

    Upstream stops at the first (`enforce_policies` raises it); ``scaffolder catalog
    validate`` shows them all. The field is named as upstream's message names it
    (``labels.<key>``, ``tags.<index>``: under ``metadata``).
    """
    metadata = entity["metadata"]
    checks: list[tuple[str, Any, Callable[[Any], bool], str]] = [
        ("apiVersion", entity.get("apiVersion"), _api_version, _PREFIX_SUFFIX),
        (
            "kind",
            entity.get("kind"),
            _kind,
            "a string that is a sequence of [a-zA-Z][a-z0-9A-Z], at most 63 characters in total",
        ),
        ("metadata.name", metadata.get("name"), _object_name, _OBJECT_NAME),
    ]
    if "namespace" in metadata:
        checks.append(("metadata.namespace", metadata["namespace"], _dns_label, _DNS))
    for key, value in (metadata.get("labels") or {}).items():
        checks.append(
            (f"labels.{key}", key, lambda k: _prefix_suffix(k, _object_name), _PREFIX_SUFFIX)
        )
        checks.append((f"labels.{key}", value, lambda v: v == "" or _object_name(v), _OBJECT_NAME))
    for key, value in (metadata.get("annotations") or {}).items():
        checks.append(
            (f"annotations.{key}", key, lambda k: _prefix_suffix(k, _object_name), _PREFIX_SUFFIX)
        )
        checks.append((f"annotations.{key}", value, lambda v: isinstance(v, str), "a string"))
    for index, tag in enumerate(metadata.get("tags") or []):
        checks.append(
            (
                f"tags.{index}",
                tag,
                _tag,
                "a string that is sequences of [a-z0-9+#] separated by [-], "
                "at most 63 characters in total",
            )
        )
    for index, link in enumerate(metadata.get("links") or []):
        link = link if isinstance(link, Mapping) else {}
        checks.append((f"links.{index}.url", link.get("url"), _url, "a string that is a valid url"))
        for part in ("title", "icon"):
            if part in link:
                checks.append(
                    (f"links.{index}.{part}", link[part], _non_empty, "a non empty string")
                )
    found = []
    for field, value, check, expectation in checks:
        error = _field_error(field, value, check, expectation)
        if error is not None:
            found.append((field, error))
    return found


def _field_formats(entity: Mapping[str, Any]) -> None:
    errors = field_format_errors(entity)
    if errors:
        raise errors[0][1]


def enforce_policies(entity: dict[str, Any]) -> dict[str, Any]:
    """The default entity policies, in upstream's order; returns the (namespaced) entity.

    Raises:
        EntityError: the policy's own error (callers wrap it in ``Policy check failed``).
    """
    errors = ajv.validate(ajv.schema("Entity"), entity)
    if errors:
        first = errors[0]
        raise plain_error(f"Malformed envelope, {first.instance_path or '<root>'} {first.message}")
    metadata = entity["metadata"]
    if not metadata.get("namespace"):
        entity = {"metadata": {"namespace": DEFAULT_NAMESPACE, **metadata}} | {
            k: v for k, v in entity.items() if k != "metadata"
        }
    for key in entity:
        if key not in KNOWN_ROOT_FIELDS:
            raise plain_error(f"Unknown field {key}")
    _field_formats(entity)
    return entity


@cache
def _kind_schema(name: str) -> tuple[frozenset[str], frozenset[str], dict[str, Any]]:
    """A kind schema's apiVersion and kind enums, and its part beyond ``Entity``."""
    parts = ajv.schema(name)["allOf"]
    own = next(p for p in parts if "$ref" not in p)
    properties = own.get("properties") or {}
    return (
        frozenset(properties.get("apiVersion", {}).get("enum", [])),
        frozenset(properties.get("kind", {}).get("enum", [])),
        own,
    )


def _kind_check(name: str, entity: Mapping[str, Any]) -> bool:
    """``entityKindSchemaValidator(...).check``: True, False (not this kind) or a throw.

    The entity has passed the ``Entity`` schema already (the policies ran it), so a kind
    schema can only fail on its own part, and a kind or apiVersion outside its enums is the
    "soft" failure that means "not this kind".
    """
    versions, kinds, own = _kind_schema(name)
    if entity.get("apiVersion") not in versions or entity.get("kind") not in kinds:
        return False
    errors = ajv.validate(own, entity)
    if not errors:
        return True
    raise EntityError(name="TypeError", message=errors[0].text())


def kind_schema_errors(entity: Mapping[str, Any]) -> list[ajv.AjvError] | None:
    """Every error of the kind schema that claims the entity's kind and apiVersion (Ajv's
    order); None when no kind schema claims it (`validate_kind` then fails with "No processor
    recognized ..."). Upstream shows the first; ``scaffolder catalog validate`` all."""
    for _, kinds in KIND_PROCESSORS:
        for name in kinds:
            versions, kind_names, own = _kind_schema(name)
            if entity.get("apiVersion") in versions and entity.get("kind") in kind_names:
                return ajv.validate(own, entity)
    return None


def validate_kind(entity: Mapping[str, Any]) -> None:
    """The processors' ``validateEntityKind``; some processor must recognize the entity.

    Raises:
        EntityError: ``Processor <name> threw an error while validating the entity <ref>`` or
            ``No processor recognized the entity <ref> as valid, ...``.
    """
    ref = stringify_ref(
        str(entity["kind"]), entity["metadata"].get("namespace"), entity["metadata"]["name"]
    )
    valid = False
    for processor, kinds in KIND_PROCESSORS:
        try:
            if any(_kind_check(kind, entity) for kind in kinds):
                valid = True
        except EntityError as exc:
            raise input_error(
                f"Processor {processor} threw an error while validating the entity {ref}", exc
            ) from None
    if not valid:
        raise input_error(
            f"No processor recognized the entity {ref} as valid, "
            "possibly caused by a foreign kind or apiVersion"
        )


def validate_entity(entity: Any) -> None:
    """Check one entity as a file in a catalog location would be checked.

    Used where no location processing happens (the linter, dry runs): foreign root fields are
    named first, kinds no processor knows are accepted, and the message is the innermost one.

    Raises:
        InputError: naming the first field that breaks Backstage's rules.
    """
    if not isinstance(entity, Mapping):
        raise InputError(f"Expected object at root, got {type(entity).__name__}")
    for key in entity:
        if key not in KNOWN_ROOT_FIELDS:
            raise InputError(f"Unknown field {key}")
    try:
        checked = enforce_policies(check_envelope(stand_in_placeholders(dict(entity))))
        if str(checked["kind"]).lower() in KNOWN_KINDS:
            validate_kind(checked)
    except EntityError as exc:
        innermost = exc
        while innermost.cause is not None:
            innermost = innermost.cause
        raise InputError(innermost.message) from None
