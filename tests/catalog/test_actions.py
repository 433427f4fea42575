"""``catalog:register`` and ``catalog:fetch`` against the embedded catalog.

The actions come from the real services (their registry), run with a real `ActionContext`,
and register files served by a loopback ``http.server`` (allowed by ``backend.reading.allow``)
into the catalog on a temp SQLite database.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from scaffolder.actions.base import ActionContext, ActionLogger, CancelSignal
from scaffolder.actions.builtin import create_builtin_actions
from scaffolder.actions.builtin.catalog_register import pick_entity, resolve_catalog_info_url
from scaffolder.catalog.catalog_client import EmbeddedCatalogClient
from scaffolder.errors import InputError, ScaffolderError
from scaffolder.integrations.scm import ScmIntegrations
from scaffolder.services import Services
from scaffolder.tasks.templating import Templater
from tests.catalog.conftest import component, group

# The catalog store speaks SQL to both engines: run these on SQLite and PostgreSQL.
pytestmark = pytest.mark.both_engines

TRACE_01 = Path(__file__).resolve().parents[1] / "fixtures" / "traces" / "01-get-actions.http"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``(base URL, directory)`` of a loopback HTTP server."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def services(make_catalog: Callable[..., Services], served: tuple[str, Path]) -> Services:
    host = served[0].removeprefix("http://")
    return make_catalog([], reading={"allow": [{"host": host}]})


class Run:
    """One action run: its log lines and outputs."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.outputs: dict[str, Any] = {}

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def run_action(services: Services, action_id: str, input: Mapping[str, Any], tmp_path: Path) -> Run:
    """Validate ``input`` as the runner does, then run the action."""
    action = services.registry.get(action_id)
    assert action.input_schema is not None
    jsonschema.Draft7Validator(action.input_schema).validate(dict(input))
    run = Run()
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    ctx = ActionContext(
        input=dict(input),
        workspace_path=workspace,
        logger=ActionLogger(run.lines.append),
        signal=CancelSignal(),
        task_id="task-1",
        step_id="register",
        step_name="Register",
        _output=run.outputs.__setitem__,
        _checkpoint=lambda key, fn: fn(),
    )
    action.handler(ctx)
    return run


def serve_yaml(root: Path, name: str, *documents: Any) -> None:
    (root / name).write_text(yaml.safe_dump_all(documents, sort_keys=False))


# --- catalog:register ----------------------------------------------------------------------


def test_register_reads_the_location_now_and_outputs_the_component(
    services: Services, served: tuple[str, Path], tmp_path: Path
) -> None:
    base, root = served
    serve_yaml(root, "catalog-info.yaml", group("team-a"), component("svc"))
    url = f"{base}/catalog-info.yaml"

    run = run_action(services, "catalog:register", {"catalogInfoUrl": url}, tmp_path)

    assert run.outputs == {"entityRef": "component:default/svc", "catalogInfoUrl": url}
    assert f"Registering {url} in the catalog" in run.text
    # Read before the step ended: the entity is in the catalog, managed by the location.
    entity = services.catalog.get_entity("component:default/svc")
    assert entity is not None
    assert entity["metadata"]["annotations"]["backstage.io/managed-by-origin-location"] == (
        f"url:{url}"
    )
    assert [loc.target for loc in services.catalog.store.locations()] == [url]


def test_registering_again_refreshes_instead_of_failing(
    services: Services, served: tuple[str, Path], tmp_path: Path
) -> None:
    base, root = served
    serve_yaml(root, "catalog-info.yaml", component("svc"))
    url = f"{base}/catalog-info.yaml"
    run_action(services, "catalog:register", {"catalogInfoUrl": url}, tmp_path)
    serve_yaml(root, "catalog-info.yaml", component("svc", lifecycle="deprecated"))

    again = run_action(services, "catalog:register", {"catalogInfoUrl": url}, tmp_path)

    assert again.outputs == {"entityRef": "component:default/svc", "catalogInfoUrl": url}
    assert f"Location url:{url} was registered already; refreshed it" in again.text
    assert len(services.catalog.store.locations()) == 1
    entity = services.catalog.get_entity("component:default/svc")
    assert entity is not None
    assert entity["spec"]["lifecycle"] == "deprecated"


def test_register_outputs_the_first_non_generated_entity_without_a_component(
    services: Services, served: tuple[str, Path], tmp_path: Path
) -> None:
    base, root = served
    serve_yaml(root, "org.yaml", group("team-b"), group("team-a"))
    run = run_action(services, "catalog:register", {"catalogInfoUrl": f"{base}/org.yaml"}, tmp_path)
    # Upstream's dry run takes a file's entities from a stack: the last document comes first.
    assert run.outputs["entityRef"] == "group:default/team-a"


def test_pick_entity_is_upstreams_choice() -> None:
    location = {"kind": "Location", "metadata": {"name": "generated-abc"}}
    api = {"kind": "API", "metadata": {"name": "api"}}
    svc = {"kind": "Component", "metadata": {"name": "svc"}}
    generated_component = {"kind": "Component", "metadata": {"name": "generated-x"}}
    assert pick_entity([location, api, generated_component, svc]) is svc
    assert pick_entity([location, generated_component, api]) is api
    assert pick_entity([location]) is location


def test_an_unreadable_location_fails_the_step_with_the_catalogs_message(
    services: Services, served: tuple[str, Path], tmp_path: Path
) -> None:
    url = f"{served[0]}/missing.yaml"
    with pytest.raises(InputError) as caught:
        run_action(services, "catalog:register", {"catalogInfoUrl": url}, tmp_path)
    assert caught.value.message == (
        f"NotFoundError: Unable to read url, no matching files found for {url}"
    )


def test_optional_ignores_a_location_that_cannot_be_read(
    services: Services, tmp_path: Path
) -> None:
    url = "https://not-allowed.example.com/catalog-info.yaml"
    run = run_action(
        services, "catalog:register", {"catalogInfoUrl": url, "optional": True}, tmp_path
    )
    assert run.outputs == {"catalogInfoUrl": url}
    assert "No entity to output (optional): InputError: Error: Unable to read url" in run.text


def test_readonly_catalog_refuses_registration_unless_optional(
    make_catalog: Callable[..., Services], served: tuple[str, Path], tmp_path: Path
) -> None:
    base, root = served
    serve_yaml(root, "catalog-info.yaml", component("svc"))
    services = make_catalog(
        [],
        catalog={"readonly": True},
        reading={"allow": [{"host": base.removeprefix("http://")}]},
    )
    url = f"{base}/catalog-info.yaml"
    with pytest.raises(ScaffolderError, match="This operation not allowed in readonly mode"):
        run_action(services, "catalog:register", {"catalogInfoUrl": url}, tmp_path)
    run = run_action(
        services, "catalog:register", {"catalogInfoUrl": url, "optional": True}, tmp_path
    )
    # The dry run still reads the file: the entity it would register is output.
    assert run.outputs == {"entityRef": "component:default/svc", "catalogInfoUrl": url}
    assert services.catalog.store.locations() == []


def test_input_is_one_form_or_the_other(services: Services, tmp_path: Path) -> None:
    with pytest.raises(jsonschema.ValidationError):
        run_action(
            services,
            "catalog:register",
            {"catalogInfoUrl": "https://x", "repoContentsUrl": "https://github.com/o/r"},
            tmp_path,
        )
    with pytest.raises(jsonschema.ValidationError):
        run_action(services, "catalog:register", {"optional": True}, tmp_path)


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        (
            "https://github.com/o/r/blob/main",
            "/catalog-info.yaml",
            "https://github.com/o/r/tree/main/catalog-info.yaml",
        ),
        (
            "https://github.com/o/r/blob/main/services/a",
            "/catalog-info.yaml",
            "https://github.com/o/r/tree/main/catalog-info.yaml",
        ),
        (
            "https://github.com/o/r/blob/main/",
            "docs/catalog-info.yaml",
            "https://github.com/o/r/tree/main/docs/catalog-info.yaml",
        ),
        # A relative path replaces the last segment, as `new URL(path, base)` does.
        (
            "https://github.com/o/r/blob/main",
            "catalog-info.yaml",
            "https://github.com/o/r/blob/catalog-info.yaml".replace("/blob/", "/tree/"),
        ),
        (
            "https://github.com/o/r/blob/main",
            "https://github.com/x/y/blob/dev/c.yaml",
            "https://github.com/x/y/tree/dev/c.yaml",
        ),
    ],
)
def test_repo_contents_url_resolves_as_upstreams_github_integration(
    base: str, path: str, expected: str
) -> None:
    assert resolve_catalog_info_url(ScmIntegrations(), base, path) == expected


def test_repo_contents_url_on_a_git_host_is_joined_under_it(tmp_path: Path) -> None:
    integrations = ScmIntegrations.from_config(
        {"integrations": {"git": [{"host": "localhost", "baseUrl": (tmp_path / "git").as_uri()}]}}
    )
    base = f"{(tmp_path / 'git').as_uri()}/o/r.git/blob/main"
    assert resolve_catalog_info_url(integrations, base, "/catalog-info.yaml") == (
        f"{base}/catalog-info.yaml"
    )
    assert resolve_catalog_info_url(integrations, base + "/", "docs/c.yaml") == (
        f"{base}/docs/c.yaml"
    )


def test_repo_contents_url_without_an_integration_is_upstreams_input_error(
    services: Services, tmp_path: Path
) -> None:
    url = "https://gitlab.example.com/o/r/-/blob/main"
    with pytest.raises(InputError) as caught:
        run_action(services, "catalog:register", {"repoContentsUrl": url}, tmp_path)
    assert caught.value.message == f"No integration found for host {url}"


# --- catalog:fetch -------------------------------------------------------------------------


@pytest.fixture
def populated(services: Services) -> Services:
    services.catalog.replace_location(
        "url:https://example.com/org.yaml",
        [group("team-a"), component("svc"), component("other")],
    )
    return services


def test_fetch_one_entity(populated: Services, tmp_path: Path) -> None:
    run = run_action(populated, "catalog:fetch", {"entityRef": "component:default/svc"}, tmp_path)
    assert run.outputs["entity"] == populated.catalog.get_entity("component:default/svc")
    assert run.outputs["entity"]["metadata"]["uid"]


def test_fetch_with_default_kind_and_namespace(populated: Services, tmp_path: Path) -> None:
    run = run_action(
        populated,
        "catalog:fetch",
        {"entityRef": "team-a", "defaultKind": "Group", "defaultNamespace": "default"},
        tmp_path,
    )
    assert run.outputs["entity"]["kind"] == "Group"


def test_fetch_missing_entity_fails_unless_optional(populated: Services, tmp_path: Path) -> None:
    with pytest.raises(ScaffolderError) as caught:
        run_action(populated, "catalog:fetch", {"entityRef": "component:default/nope"}, tmp_path)
    assert caught.value.message == "Entity component:default/nope not found"
    assert caught.value.name == "Error"
    run = run_action(
        populated,
        "catalog:fetch",
        {"entityRef": "component:default/nope", "optional": True},
        tmp_path,
    )
    assert run.outputs == {"entity": None}


def test_fetch_many_keeps_order_and_nulls_when_optional(
    populated: Services, tmp_path: Path
) -> None:
    refs = ["component:default/other", "component:default/nope", "group:team-a"]
    with pytest.raises(ScaffolderError, match=r"^Entity component:default/nope not found$"):
        run_action(populated, "catalog:fetch", {"entityRefs": refs}, tmp_path)
    run = run_action(populated, "catalog:fetch", {"entityRefs": refs, "optional": True}, tmp_path)
    names = [e and e["metadata"]["name"] for e in run.outputs["entities"]]
    assert names == ["other", None, "team-a"]
    empty = run_action(populated, "catalog:fetch", {"entityRefs": []}, tmp_path)
    assert empty.outputs == {"entities": []}


def test_fetch_without_refs(populated: Services, tmp_path: Path) -> None:
    with pytest.raises(ScaffolderError, match=r"^Missing entity reference or references$"):
        run_action(populated, "catalog:fetch", {}, tmp_path)
    assert run_action(populated, "catalog:fetch", {"optional": True}, tmp_path).outputs == {}


def test_fetch_refuses_a_ref_without_kind(populated: Services, tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        run_action(populated, "catalog:fetch", {"entityRef": "svc"}, tmp_path)
    assert caught.value.message.startswith('Entity reference "svc" had missing or empty kind')


# --- registration and wire shape -----------------------------------------------------------


def test_wire_shape_is_backstages(services: Services) -> None:
    text = TRACE_01.read_text()
    upstream = {a["id"]: a for a in json.loads(text[text.index("\n[\n") + 1 :])}
    actions = create_builtin_actions(
        templater=Templater(), catalog=EmbeddedCatalogClient(services.catalog)
    )
    ids = [a.id for a in actions]
    assert ids[ids.index("debug:wait") + 1 : ids.index("catalog:write")] == [
        "catalog:register",
        "catalog:fetch",
    ]
    for action in actions:
        if action.id in ("catalog:register", "catalog:fetch"):
            assert json.dumps(action.to_json()) == json.dumps(upstream[action.id])
    assert "catalog:register" in services.registry
    assert "catalog:fetch" in services.registry
