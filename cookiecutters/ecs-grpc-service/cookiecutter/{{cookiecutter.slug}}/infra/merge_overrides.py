"""Deep-merge infra/overrides/*.yaml over infra/service.yaml and print the result as JSON.

The escape hatch for what the template does not offer: an override file is a fragment of a
CloudFormation template. Mappings merge key by key, anything else (lists, scalars,
intrinsic functions) replaces what the base has, and ``null`` deletes the key. Short-form
tags (``!Ref``, ``!Sub``, ``!GetAtt`` ...) work in both files and come out in long form.

Usage: python infra/merge_overrides.py infra/service.yaml [OVERRIDE.yaml ...] > build/service.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags read as their long-form mappings."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref" or tag_suffix == "Condition":
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def load(path: Path) -> Any:
    """Read a template or fragment; an empty file (only comments) is ``None``."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_TemplateLoader)  # noqa: S506


def merge(base: Any, override: Any) -> Any:
    """``override`` over ``base``: mappings recursively, anything else replaced."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    template = load(Path(argv[0]))
    for name in argv[1:]:
        override = load(Path(name))
        if override is not None:
            template = merge(template, override)
    json.dump(template, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
