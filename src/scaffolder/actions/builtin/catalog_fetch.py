"""``catalog:fetch``: entities from the catalog by ref, as step outputs.

Upstream's inputs and behaviour (CONTRACT §7.4): ``entityRef`` outputs ``entity`` (the
entity, or null when ``optional`` and missing); ``entityRefs`` outputs ``entities`` (null for
each missing one when ``optional``). Refs may leave out the kind or namespace when
``defaultKind``/``defaultNamespace`` supply them. Without either input the action fails with
``Missing entity reference or references`` unless ``optional``. It also runs in dry runs.
"""

from __future__ import annotations

from typing import Any

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action
from scaffolder.catalog.catalog_client import CatalogClient
from scaffolder.catalog.model import RefError, parse_ref, stringify_ref
from scaffolder.errors import InputError, ScaffolderError

ACTION_ID = "catalog:fetch"


def create_catalog_fetch_action(*, catalog: CatalogClient) -> TemplateAction:
    """Build ``catalog:fetch``.

    Args:
        catalog: the catalog to read (embedded, or a Backstage catalog).
    """

    def handler(ctx: ActionContext) -> None:
        entity_ref = ctx.input.get("entityRef")
        entity_refs = ctx.input.get("entityRefs")
        optional = bool(ctx.input.get("optional"))
        default_kind = ctx.input.get("defaultKind")
        default_namespace = ctx.input.get("defaultNamespace")

        def full(ref: str) -> str:
            try:
                kind, namespace, name = parse_ref(
                    ref, default_kind=default_kind, default_namespace=default_namespace
                )
            except RefError as exc:
                raise InputError(str(exc)) from None
            return stringify_ref(kind, namespace, name)

        # JavaScript truthiness, as upstream tests them: "" is missing, [] is not.
        if not entity_ref and entity_refs is None:
            if optional:
                return
            raise ScaffolderError("Missing entity reference or references")
        if entity_ref:
            entity = catalog.get_entity_by_ref(full(entity_ref))
            if entity is None and not optional:
                raise ScaffolderError(f"Entity {entity_ref} not found")
            ctx.output("entity", entity)
        if entity_refs is not None:
            found = catalog.get_entities_by_refs([full(ref) for ref in entity_refs])
            entities: list[Any] = []
            for ref, item in zip(entity_refs, found, strict=True):
                if item is None and not optional:
                    raise ScaffolderError(f"Entity {ref} not found")
                entities.append(item)
            ctx.output("entities", entities)

    return build_action(ACTION_ID, handler, supports_dry_run=True)
