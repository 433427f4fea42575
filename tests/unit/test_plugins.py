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


def test_plugin_action_runs_in_a_task(installed_plugin: Path, make_settings) -> None:  # type: ignore[no-untyped-def]
    from scaffolder.app import create_app
    from scaffolder.services import build_services
    from tests.conftest import wait_for_status

    services = build_services(make_settings())
    try:
        client = create_app(services=services).test_client()
        assert "acme:hello" in [a["id"] for a in client.get("/api/scaffolder/v2/actions").json]
        services.catalog.replace_location(
            "file:/plugin.yaml",
            [
                {
                    "apiVersion": "scaffolder.backstage.io/v1beta3",
                    "kind": "Template",
                    "metadata": {"name": "uses-plugin"},
                    "spec": {
                        "type": "service",
                        "steps": [{"id": "hi", "action": "acme:hello", "input": {"name": "ecs"}}],
                        "output": {"greeting": "${{ steps.hi.output.greeting }}"},
                    },
                }
            ],
        )
        task_id = client.post(
            "/api/scaffolder/v2/tasks",
            json={"templateRef": "template:default/uses-plugin", "values": {}},
        ).json["id"]
        assert wait_for_status(services, task_id) == "completed"
        events = client.get(f"/api/scaffolder/v2/tasks/{task_id}/events").json
        assert events[-1]["body"]["output"] == {"greeting": "hello ecs"}
        assert "\x1b[32minfo\x1b[39m: hello ecs" in [e["body"]["message"] for e in events]
    finally:
        services.close()
