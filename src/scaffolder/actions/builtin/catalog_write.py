"""``catalog:write``: write an entity as YAML (``catalog-info.yaml``) into the workspace."""

from __future__ import annotations

import os
from typing import Any

import yaml

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action

ACTION_ID = "catalog:write"

#: The annotation that records which template produced the entity.
SOURCE_TEMPLATE_ANNOTATION = "backstage.io/source-template"
DEFAULT_FILE_PATH = "catalog-info.yaml"


def create_catalog_write_action() -> TemplateAction:
    """Build ``catalog:write``.

    Writes ``entity`` to ``filePath`` (default ``catalog-info.yaml``) in block-style YAML with
    the keys in the order given, as the ``yaml`` npm package does. When the task knows its
    template (``templateInfo.entityRef``), ``metadata.annotations`` gets
    ``backstage.io/source-template`` pointing at it.
    """

    def handler(ctx: ActionContext) -> None:
        file_path = ctx.input.get("filePath") or DEFAULT_FILE_PATH
        ctx.logger.info(f"Writing {file_path}")
        target = ctx.resolve_path(file_path, input_name="filePath")
        entity_ref = (ctx.template_info or {}).get("entityRef")
        document = _with_source_template(ctx.input["entity"], entity_ref)
        os.makedirs(target.parent, exist_ok=True)
        target.write_text(dump_yaml(document), encoding="utf-8")

    return build_action(ACTION_ID, handler, supports_dry_run=True)


def _with_source_template(entity: dict[str, Any], entity_ref: Any) -> dict[str, Any]:
    # `{...entity, metadata: {...entity.metadata, annotations: {...}}}`: keys keep their
    # places, and a new key goes last.
    metadata = dict(entity.get("metadata") or {})
    if entity_ref:
        annotations = dict(metadata.get("annotations") or {})
        annotations[SOURCE_TEMPLATE_ANNOTATION] = entity_ref
        metadata["annotations"] = annotations
    return {**entity, "metadata": metadata}


class _Dumper(yaml.SafeDumper):
    """PyYAML tuned to print what the ``yaml`` npm package prints for the same value."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # `yaml` indents a sequence under its mapping key; PyYAML would not.
        super().increase_indent(flow, False)

    def choose_scalar_style(self) -> str:
        style: str = super().choose_scalar_style()
        if style == "'" and self.event is not None:
            value = getattr(self.event, "value", "")
            # `yaml` quotes with double quotes unless only single quotes avoid escaping.
            if not ('"' in value and "'" not in value):
                return '"'
        return style


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(document: Any) -> str:
    """``yaml.stringify(document)``: block style, keys in order, Unicode as is."""
    text: str = yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=80,
    )
    return text
