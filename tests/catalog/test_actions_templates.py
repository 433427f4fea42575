"""Templates from the catalog: the frontend's template list, and a template registered at
runtime (``POST /locations``) that the scaffolder then runs.

The requests are those the Backstage frontend's template list page sends through
catalog-react: the list (``GET /entities/by-query`` with ``filter=kind=template``, paged and
ordered), the type picker (facets of ``spec.type``) and the tag picker (facets of
``metadata.tags``), all for templates only.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient

from scaffolder.app import create_app
from scaffolder.services import Services
from tests.catalog.conftest import CATALOG
from tests.conftest import FIXTURE_TEMPLATES

TASKS = "/api/scaffolder/v2/tasks"

RUNTIME_TEMPLATE = {
    "apiVersion": "scaffolder.backstage.io/v1beta3",
    "kind": "Template",
    "metadata": {
        "name": "runtime-template",
        "title": "Registered at runtime",
        "tags": ["runtime", "python"],
    },
    "spec": {
        "owner": "group:default/platform",
        "type": "website",
        "parameters": [
            {"required": ["name"], "properties": {"name": {"type": "string", "title": "Name"}}}
        ],
        "steps": [
            {
                "id": "hello",
                "action": "debug:log",
                "input": {"message": "Hi ${{ parameters.name }}"},
            },
            {
                "id": "write",
                "action": "catalog:write",
                "input": {
                    "entity": {
                        "apiVersion": "backstage.io/v1alpha1",
                        "kind": "Component",
                        "metadata": {"name": "${{ parameters.name }}"},
                        "spec": {"type": "website", "lifecycle": "experimental", "owner": "me"},
                    }
                },
            },
            {"id": "list", "action": "debug:log", "input": {"listWorkspace": "with-contents"}},
        ],
        "output": {"text": [{"title": "Done", "content": "${{ parameters.name }} is ready"}]},
    },
}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
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
def app_client(
    make_catalog: Callable[..., Services], served: tuple[str, Path]
) -> tuple[Services, FlaskClient]:
    # A server as `make serve` runs it: workers and the background refresher.
    services = make_catalog(
        [{"type": "file", "target": f"{FIXTURE_TEMPLATES}/*/template.yaml"}],
        with_worker=True,
        reading={"allow": [{"host": served[0].removeprefix("http://")}]},
    )
    return services, create_app(services=services).test_client()


def template_list(client: FlaskClient) -> dict[str, Any]:
    response = client.get(
        f"{CATALOG}/entities/by-query?filter=kind=template&limit=20"
        "&orderField=metadata.title,asc&fields=kind,metadata,spec.type"
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


def facets(client: FlaskClient, facet: str) -> list[dict[str, Any]]:
    response = client.get(f"{CATALOG}/entity-facets?facet={facet}&filter=kind=template")
    assert response.status_code == 200
    found: list[dict[str, Any]] = response.get_json()["facets"][facet]
    return found


def test_the_template_list_and_a_template_registered_at_runtime(
    app_client: tuple[Services, FlaskClient], served: tuple[str, Path]
) -> None:
    _, client = app_client
    before = template_list(client)
    assert before["totalItems"] == 3
    titles = [item["metadata"]["title"] for item in before["items"]]
    assert titles == sorted(titles)
    assert {item["spec"]["type"] for item in before["items"]} == {"service"}
    assert facets(client, "spec.type") == [{"value": "service", "count": 3}]

    base, root = served
    (root / "template.yaml").write_text(yaml.safe_dump(RUNTIME_TEMPLATE, sort_keys=False))
    response = client.post(
        f"{CATALOG}/locations", json={"type": "url", "target": f"{base}/template.yaml"}
    )
    assert response.status_code == 201
    # The refresher reads a new location within moments.
    deadline = time.monotonic() + 10
    while template_list(client)["totalItems"] < 4:
        assert time.monotonic() < deadline, "the registered template never showed up"
        time.sleep(0.05)

    after = template_list(client)
    assert "Registered at runtime" in [item["metadata"]["title"] for item in after["items"]]
    assert facets(client, "spec.type") == [
        {"value": "service", "count": 3},
        {"value": "website", "count": 1},
    ]
    tags = {f["value"]: f["count"] for f in facets(client, "metadata.tags")}
    assert tags["runtime"] == 1
    assert tags["python"] >= 1
    # The wizard reads the template by name (edit-url, form).
    entity = client.get(f"{CATALOG}/entities/by-name/template/default/runtime-template")
    assert entity.status_code == 200
    assert entity.get_json()["metadata"]["annotations"]["backstage.io/view-url"] == (
        f"{base}/template.yaml"
    )
    schema = client.get(
        "/api/scaffolder/v2/templates/default/template/runtime-template/parameter-schema"
    )
    assert schema.status_code == 200
    assert schema.get_json()["title"] == "Registered at runtime"

    created = client.post(
        TASKS,
        json={"templateRef": "template:default/runtime-template", "values": {"name": "site"}},
    )
    assert created.status_code == 201
    task_id = created.get_json()["id"]
    deadline = time.monotonic() + 30
    while (task := client.get(f"{TASKS}/{task_id}").get_json())["status"] in (
        "open",
        "processing",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert task["status"] == "completed"
    events = client.get(f"{TASKS}/{task_id}/events").get_json()
    messages = "\n".join(str(e["body"].get("message", "")) for e in events)
    assert "Hi site" in messages
    assert "backstage.io/source-template: template:default/runtime-template" in messages
    assert events[-1]["body"]["output"]["text"] == [{"title": "Done", "content": "site is ready"}]
