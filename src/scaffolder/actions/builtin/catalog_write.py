"""``catalog:write``: write an entity as YAML (``catalog-info.yaml``) into the workspace."""

from __future__ import annotations

import os
import re
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


#: A string PyYAML prints plain under `_Dumper`: it starts with a letter (so no number, date,
#: tag, anchor or indicator), has single spaces inside only, no ``#``, no ``: ``, and does
#: not end with ``:``. Words PyYAML reads as booleans or null are excluded apart.
_PLAIN = re.compile(r"[A-Za-z](?:[A-Za-z0-9_./@+=-]|:(?! )|(?<! ) (?! ))*(?<![: ])")
_RESOLVED_WORDS = frozenset({"yes", "no", "true", "false", "on", "off", "null", "y", "n"})
#: Past this column a plain string with spaces may be folded onto the next line (width 80).
_FOLD_SAFE_COLUMN = 70


def dump_yaml(document: Any) -> str:
    """``yaml.stringify(document)``: block style, keys in order, Unicode as is.

    An entity made of mappings, lists of mappings or scalars, and short plain strings (nearly
    every catalog-info.yaml) is printed directly: PyYAML's pure-Python emitter took 0.54 ms for
    a small entity, about a twentieth of a worker's CPU per task (the C emitter cannot take
    `_Dumper`'s style choices). Anything else goes to PyYAML; tests compare the two on
    thousands of generated documents.
    """
    lines: list[str] = []
    if isinstance(document, dict) and document and _block_mapping(document, 0, lines):
        lines.append("")
        return "\n".join(lines)
    text: str = yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=80,
    )
    return text


def _scalar(value: Any) -> str | None:
    """How `_Dumper` prints ``value`` as a plain scalar, or ``None`` when not simply."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    if type(value) is str and _PLAIN.fullmatch(value) and value.lower() not in _RESOLVED_WORDS:
        return value
    return None


def _block_mapping(mapping: dict[Any, Any], indent: int, lines: list[str]) -> bool:
    """Append ``mapping``'s lines at ``indent``; ``False`` when it is not simple enough."""
    pad = " " * indent
    for key, value in mapping.items():
        name = _scalar(key) if type(key) is str else None
        if name is None:
            return False
        if isinstance(value, dict | list):
            if not value:
                return False
            lines.append(f"{pad}{name}:")
            if isinstance(value, dict):
                nested = _block_mapping(value, indent + 2, lines)
            else:
                nested = _block_sequence(value, indent + 2, lines)
            if not nested:
                return False
        else:
            text = _scalar(value)
            if text is None or (
                " " in text and indent + len(name) + 2 + len(text) > _FOLD_SAFE_COLUMN
            ):
                return False
            lines.append(f"{pad}{name}: {text}")
    return True


def _block_sequence(items: list[Any], indent: int, lines: list[str]) -> bool:
    pad = " " * indent
    for item in items:
        if isinstance(item, dict):
            if not item:
                return False
            # The first key goes on the dash's line, the others under it.
            start = len(lines)
            if not _block_mapping(item, indent + 2, lines):
                return False
            lines[start] = f"{pad}- {lines[start][indent + 2 :]}"
        elif isinstance(item, list):
            return False
        else:
            text = _scalar(item)
            if text is None or (" " in text and indent + 2 + len(text) > _FOLD_SAFE_COLUMN):
                return False
            lines.append(f"{pad}- {text}")
    return True
