"""Deep-merge infra/overrides/*.yaml over infra/service.yaml and print the result as JSON.

The escape hatch for what the template does not offer: an override file is a fragment of a
CloudFormation template. Mappings merge key by key, anything else (lists, scalars,
intrinsic functions) replaces what the base has, and ``null`` deletes the key. Short-form
tags (``!Ref``, ``!Sub`` ...) work in both files: cfn-lint's loader reads them.

Usage: python infra/merge_overrides.py infra/service.yaml [OVERRIDE.yaml ...] > build/service.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml


def load(path: Path) -> Any:
    """Read a template or fragment; an empty file (only comments) is ``None``."""
    text = path.read_text(encoding="utf-8")
    return cfn_yaml.loads(text, str(path)) if text.strip() else None


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
