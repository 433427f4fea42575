"""Replace ``__OutputKey__`` placeholders in a file with the stack's outputs.

Usage: python infra/fill_placeholders.py OUTPUTS.json IN OUT
where OUTPUTS.json is ``aws cloudformation describe-stacks --query Stacks[0].Outputs``.
A placeholder left without a matching output is an error, so a renamed output cannot
slip an ``__ExecutionRoleArn__`` into a registered task definition.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

PLACEHOLDER = re.compile(r"__([A-Za-z][A-Za-z0-9]*)__")
# Filled later by amazon-ecs-render-task-definition, not by the stack.
LEFT_FOR_LATER = frozenset({"ImageUri"})


def fill(text: str, outputs: dict[str, str]) -> str:
    """``text`` with every ``__Key__`` that names an output replaced by its value."""

    def repl(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in outputs:
            return outputs[key]
        if key in LEFT_FOR_LATER:
            return match.group(0)
        raise KeyError(f"no stack output named {key!r} for placeholder {match.group(0)}")

    return PLACEHOLDER.sub(repl, text)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    raw = json.loads(Path(argv[0]).read_text(encoding="utf-8")) or []
    outputs = {item["OutputKey"]: item["OutputValue"] for item in raw}
    text = fill(Path(argv[1]).read_text(encoding="utf-8"), outputs)
    Path(argv[2]).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
