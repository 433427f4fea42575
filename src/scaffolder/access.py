"""Template allow-lists (ours, beyond upstream): who may run which template.

Configured by the operator, not by template authors (a template's own annotation would let
whoever registers a template decide), in ``scaffolder.templateAccess``::

    scaffolder:
      templateAccess:
        templates:
          template:default/ecs-web-service: [group:default/platform, user:default/jane]
          template:default/ecs-scheduled-task: [ci-bot]      # a static token's subject
        dryRun: [group:default/platform]                     # who may POST /v2/dry-run

A template that is not listed is open to every authenticated caller. A listed one may be used
(create, retry, dry-run of a body naming it) only by a caller who is listed: its user ref, one
of its ownership refs (the user token's ``ent`` claim: itself and its groups), or its service
subject. The none principal (auth disabled) is never listed. Refusals are upstream's permission
denial: 403 ``NotAllowedError`` with an empty message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scaffolder.catalog.model import parse_entity_ref
from scaffolder.errors import InputError, NotAllowedError
from scaffolder.tasks.service import Caller

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TemplateAccess:
    """The allow-lists: principals by template ref, and who may dry-run."""

    templates: Mapping[str, frozenset[str]] = field(default_factory=dict)
    dry_run: frozenset[str] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TemplateAccess:
        """``scaffolder.templateAccess`` (absent: nothing is restricted)."""
        section = (config.get("scaffolder") or {}).get("templateAccess")
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise InputError("scaffolder.templateAccess must be a mapping")
        templates = section.get("templates") or {}
        if not isinstance(templates, Mapping):
            raise InputError("scaffolder.templateAccess.templates must map template refs to lists")
        parsed = {
            _template_key(str(ref)): _principals(
                principals, f"scaffolder.templateAccess.templates[{ref}]"
            )
            for ref, principals in templates.items()
        }
        dry_run = section.get("dryRun")
        return cls(
            templates=parsed,
            dry_run=(
                None
                if dry_run is None
                else _principals(dry_run, "scaffolder.templateAccess.dryRun")
            ),
        )

    def check_template(self, template_ref: str, caller: Caller) -> None:
        """Refuse ``caller`` a template whose allow-list leaves it out.

        Raises:
            NotAllowedError: 403, upstream's body for a permission denial.
        """
        allowed = self.templates.get(_template_key(template_ref))
        if allowed is not None:
            self._check(allowed, caller, template_ref)

    def check_dry_run(self, template_ref: str, caller: Caller) -> None:
        """Refuse a dry run to a caller not on ``dryRun`` or on the named template's list."""
        if self.dry_run is not None:
            self._check(self.dry_run, caller, "dry-run")
        self.check_template(template_ref, caller)

    @staticmethod
    def _check(allowed: frozenset[str], caller: Caller, what: str) -> None:
        if caller.local or not allowed.isdisjoint(_identities(caller)):
            return
        log.info("template access: %s may not use %s", caller.principal, what)
        raise NotAllowedError("")


def _identities(caller: Caller) -> set[str]:
    ids = {_normalize(ref) for ref in (caller.user_ref, *caller.ownership_refs) if ref}
    if caller.subject:
        ids.add(caller.subject)
    return ids


def _principals(value: Any, key: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"{key} must be a list of entity refs or service subjects")
    return frozenset(_normalize(v) for v in value)


def _normalize(principal: str) -> str:
    """``kind:namespace/name`` in lower case for entity refs; a service subject as it is."""
    if ":" not in principal:
        return principal
    try:
        ref = parse_entity_ref(principal)
    except InputError:
        return principal
    return str(ref).lower()


def _template_key(ref: str) -> str:
    return str(parse_entity_ref(ref, default_kind="template")).lower()
