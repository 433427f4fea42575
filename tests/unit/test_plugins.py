"""Third-party actions arrive through the `scaffolder.actions` entry-point group."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaffolder.actions.registry import ActionRegistry, load_plugin_actions
from scaffolder.errors import ConflictError, NotFoundError


@pytest.fixture
def installed_plugin(tmp_path: Path) -> Iterator[Path]:
    """A tiny installed distribution: a module plus its .dist-info with entry points."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme_actions.py").write_text(
        textwrap.dedent(
            """
            from scaffolder.actions import TemplateAction

            def create_hello_action():
                def handler(ctx):
                    ctx.logger.info("hello " + ctx.input["name"])
                    ctx.output("greeting", "hello " + ctx.input["name"])

                return TemplateAction(
                    id="acme:hello",
                    description="Says hello.",
                    handler=handler,
                    input_schema={"type": "object", "required": ["name"],
                                  "properties": {"name": {"type": "string"}}},
                )
            """
        )
    )
    dist = site / "acme_actions-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-actions\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(
        "[scaffolder.actions]\nhello = acme_actions:create_hello_action\n"
    )
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))
    sys.modules.pop("acme_actions", None)


def test_entry_point_plugin_is_loaded(installed_plugin: Path) -> None:
    actions = load_plugin_actions()
    assert [a.id for a in actions] == ["acme:hello"]
    registry = ActionRegistry(actions)
    assert registry.get("acme:hello").description == "Says hello."
    with pytest.raises(ConflictError):
        registry.register(actions[0])
    with pytest.raises(NotFoundError):
        registry.get("acme:missing")
