"""``catalog.rules``: which kinds a location may bring into the catalog.

Upstream's default allows only Component, API and Location. This catalog serves a scaffolder,
which needs Templates, and the Users and Groups that own things, so our default allows every
built-in kind: Component, API, Location, Template, Group, User, System, Domain, Resource.
Configure ``catalog.rules`` to narrow it (or to add your own kinds). Rules apply to what a
location's files contain, matched against the location the chain was registered at; a
``catalog.locations[]`` entry may carry its own ``rules`` for its target.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scaffolder.catalog.model import LocationSpec
from scaffolder.errors import InputError

DEFAULT_ALLOWED_KINDS = (
    "Component",
    "API",
    "Location",
    "Template",
    "Group",
    "User",
    "System",
    "Domain",
    "Resource",
)


@dataclass(frozen=True, kw_only=True)
class KindMatcher:
    """An ``allow`` item: a kind, optionally narrowed to one ``spec.type``."""

    kind: str
    spec_type: str | None = None

    def matches(self, entity: Mapping[str, Any]) -> bool:
        """Whether the entity is of this kind (and spec type), case-insensitively."""
        if str(entity.get("kind", "")).lower() != self.kind.lower():
            return False
        if self.spec_type is None:
            return True
        spec_type = (entity.get("spec") or {}).get("type")
        return isinstance(spec_type, str) and spec_type.lower() == self.spec_type.lower()


@dataclass(frozen=True, kw_only=True)
class LocationMatcher:
    """A rule's ``locations`` item: a type and an exact target or a glob pattern."""

    type: str
    exact: str | None = None
    pattern: str | None = None

    def matches(self, location: LocationSpec) -> bool:
        """Whether ``location`` is this one."""
        if location.type != self.type:
            return False
        if self.exact is not None and self.exact != location.target:
            return False
        return self.pattern is None or fnmatch.fnmatch(
            location.target.lower(), self.pattern.lower()
        )


@dataclass(frozen=True, kw_only=True)
class Rule:
    """Kinds allowed, for every location or only the listed ones."""

    allow: tuple[KindMatcher, ...]
    locations: tuple[LocationMatcher, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class CatalogRules:
    """The rules enforcer (``DefaultCatalogRulesEnforcer``)."""

    rules: tuple[Rule, ...]

    def is_allowed(self, entity: Mapping[str, Any], origin: LocationSpec) -> bool:
        """Whether some rule lets ``entity`` in from a chain that started at ``origin``."""
        for rule in self.rules:
            if rule.locations is not None and not any(m.matches(origin) for m in rule.locations):
                continue
            if any(m.matches(entity) for m in rule.allow):
                return True
        return False

    @classmethod
    def default(cls) -> CatalogRules:
        """Our default: every built-in kind from every location."""
        return cls(rules=(Rule(allow=tuple(KindMatcher(kind=k) for k in DEFAULT_ALLOWED_KINDS)),))

    @classmethod
    def from_config(cls, catalog: Mapping[str, Any]) -> CatalogRules:
        """``catalog.rules`` (or our default) plus each ``catalog.locations[].rules``.

        Raises:
            InputError: when a rule is malformed.
        """
        rules: list[Rule] = []
        configured = catalog.get("rules")
        if configured is None:
            rules.extend(cls.default().rules)
        else:
            if not isinstance(configured, list):
                raise InputError("catalog.rules must be a list of {allow, locations?}")
            for index, item in enumerate(configured):
                if not isinstance(item, Mapping):
                    raise InputError(f"catalog.rules[{index}] must be an object with allow")
                rules.append(
                    Rule(
                        allow=_allow(item.get("allow"), f"catalog.rules[{index}].allow"),
                        locations=_locations(item.get("locations"), index),
                    )
                )
        for index, location in enumerate(catalog.get("locations") or []):
            if not isinstance(location, Mapping) or location.get("rules") is None:
                continue
            kind = str(location.get("type", "file"))
            target = str(location.get("target", ""))
            if kind == "file":
                target = os.path.abspath(target)
            for rule_index, item in enumerate(location["rules"]):
                where = f"catalog.locations[{index}].rules[{rule_index}].allow"
                allow = item.get("allow") if isinstance(item, Mapping) else None
                rules.append(
                    Rule(
                        allow=_allow(allow, where),
                        locations=(LocationMatcher(type=kind, exact=target),),
                    )
                )
        return cls(rules=tuple(rules))


def _allow(value: Any, where: str) -> tuple[KindMatcher, ...]:
    if not isinstance(value, list):
        raise InputError(f"{where} must be a list of kinds")
    matchers = []
    for item in value:
        if isinstance(item, str):
            matchers.append(KindMatcher(kind=item))
        elif isinstance(item, Mapping) and isinstance(item.get("kind"), str):
            spec_type = item.get("spec.type")
            matchers.append(
                KindMatcher(kind=item["kind"], spec_type=str(spec_type) if spec_type else None)
            )
        else:
            raise InputError(f"{where} items must be kinds or {{kind, spec.type}}")
    return tuple(matchers)


def _locations(value: Any, index: int) -> tuple[LocationMatcher, ...] | None:
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise InputError(f"catalog.rules[{index}].locations must be a list")
    matchers = []
    for item in value:
        if not isinstance(item, Mapping) or not item.get("type"):
            raise InputError(f"catalog.rules[{index}].locations items need a type")
        if item.get("exact") is not None and item.get("pattern") is not None:
            raise InputError("A catalog rule location cannot have both exact and pattern values")
        matchers.append(
            LocationMatcher(
                type=str(item["type"]),
                exact=str(item["exact"]) if item.get("exact") is not None else None,
                pattern=str(item["pattern"]) if item.get("pattern") is not None else None,
            )
        )
    return tuple(matchers)
