"""The Backstage catalog client's HTTP details: configuration, retries and error translation.

The catalog is answered by ``responses`` here (the real one is in test_actions_upstream.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator

import pytest
import requests
import responses

from scaffolder.actions.base import ActionContext, ActionLogger, CancelSignal
from scaffolder.catalog.catalog_client import EmbeddedCatalogClient
from scaffolder.errors import (
    AuthenticationError,
    ConflictError,
    InputError,
    NotAllowedError,
    ScaffolderError,
)
from scaffolder.integrations.backstage_catalog import (
    BackstageCatalogClient,
    catalog_api_url,
    catalog_client_from_config,
)
from scaffolder.services import Services

BASE = "https://backstage.example.com/api/catalog"
TARGET = "https://github.com/o/r/blob/main/catalog-info.yaml"


def error_body(name: str, message: str, status: int) -> dict[str, object]:
    return {
        "error": {"name": name, "message": message},
        "request": {"method": "GET", "url": "/x"},
        "response": {"statusCode": status},
    }


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def client(slept: list[float]) -> BackstageCatalogClient:
    return BackstageCatalogClient(base_url=BASE, token="s3cret", sleep=slept.append)


def test_by_name_quotes_the_ref_and_sends_the_token(
    mocked: responses.RequestsMock, client: BackstageCatalogClient
) -> None:
    entity = {"kind": "Component", "metadata": {"name": "a b"}}
    mocked.get(f"{BASE}/entities/by-name/Component/default/a%20b", json=entity)
    mocked.get(f"{BASE}/entities/by-name/component/default/nope", status=404)
    assert client.get_entity_by_ref("Component:default/a b") == entity
    assert client.get_entity_by_ref("component:default/nope") is None
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer s3cret"
    assert "s3cret" not in repr(client)
    with pytest.raises(InputError, match="had missing or empty kind"):
        client.get_entity_by_ref("nope")


def test_by_refs_in_order(mocked: responses.RequestsMock, client: BackstageCatalogClient) -> None:
    mocked.post(f"{BASE}/entities/by-refs", json={"items": [{"kind": "Group"}, None]})
    assert client.get_entities_by_refs(["group:default/a", "group:default/b"]) == [
        {"kind": "Group"},
        None,
    ]
    assert json.loads(mocked.calls[0].request.body or b"") == {
        "entityRefs": ["group:default/a", "group:default/b"]
    }
    assert client.get_entities_by_refs([]) == []
    mocked.post(f"{BASE}/entities/by-refs", json={"items": []})
    with pytest.raises(ScaffolderError, match="without one item per ref"):
        client.get_entities_by_refs(["group:default/a"])


def test_a_409_refreshes_the_existing_location(
    mocked: responses.RequestsMock, client: BackstageCatalogClient
) -> None:
    mocked.post(
        f"{BASE}/locations",
        status=409,
        json=error_body("ConflictError", f"Location url:{TARGET} already exists", 409),
    )
    mocked.post(f"{BASE}/refresh", status=200)
    location = client.add_location(TARGET)
    digest = hashlib.sha1(f"url:{TARGET}".encode()).hexdigest()
    assert location.existed
    assert location.entity_ref == f"location:default/generated-{digest}"
    assert json.loads(mocked.calls[1].request.body or b"") == {"entityRef": location.entity_ref}


def test_a_new_location(mocked: responses.RequestsMock, client: BackstageCatalogClient) -> None:
    body = {"type": "url", "target": TARGET, "id": "abc", "entityRef": "location:default/g"}
    mocked.post(f"{BASE}/locations", status=201, json={"location": body, "entities": []})
    location = client.add_location(TARGET)
    assert (location.id, location.entity_ref, location.existed) == ("abc", body["entityRef"], False)
    mocked.post(
        f"{BASE}/locations?dryRun=true",
        status=201,
        json={"exists": True, "location": body, "entities": [{"kind": "Location"}]},
    )
    assert client.dry_run_location(TARGET) == [{"kind": "Location"}]


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (400, InputError, "NotFoundError: Unable to read url, no matching files found for x"),
        (403, NotAllowedError, "This operation not allowed in readonly mode"),
        (409, ConflictError, "Conflict"),
    ],
)
def test_statuses_become_our_errors_with_backstages_message(
    mocked: responses.RequestsMock,
    client: BackstageCatalogClient,
    status: int,
    error: type[ScaffolderError],
    message: str,
) -> None:
    mocked.post(
        f"{BASE}/locations?dryRun=true",
        status=status,
        json=error_body("InputError", message, status),
    )
    with pytest.raises(error) as caught:
        client.dry_run_location(TARGET)
    assert caught.value.message == message


def test_401_names_the_token_and_500_the_call(
    mocked: responses.RequestsMock, client: BackstageCatalogClient
) -> None:
    mocked.get(
        f"{BASE}/entities/by-name/component/default/a",
        status=401,
        json=error_body("AuthenticationError", "Illegal token", 401),
    )
    with pytest.raises(AuthenticationError, match=r"refused the credentials \(catalog.token\)"):
        client.get_entity_by_ref("component:default/a")
    mocked.get(f"{BASE}/entities/by-name/component/default/b", status=500, body="boom")
    with pytest.raises(ScaffolderError) as caught:
        client.get_entity_by_ref("component:default/b")
    assert caught.value.message == (
        f"The catalog at {BASE} answered GET /entities/by-name/component/default/b with 500: boom"
    )
    mocked.get(f"{BASE}/entities/by-name/component/default/c", body="<html>")
    with pytest.raises(ScaffolderError, match="a body that is not JSON"):
        client.get_entity_by_ref("component:default/c")


def test_lost_connections_and_503_are_retried_then_reported(
    mocked: responses.RequestsMock, client: BackstageCatalogClient, slept: list[float]
) -> None:
    url = f"{BASE}/entities/by-name/component/default/a"
    mocked.get(url, status=503)
    mocked.get(url, body=requests.ConnectionError("reset"))
    mocked.get(url, json={"kind": "Component"})
    assert client.get_entity_by_ref("component:default/a") == {"kind": "Component"}
    assert slept == [0.5, 1.5]

    slept.clear()
    for _ in range(3):
        mocked.post(f"{BASE}/entities/by-refs", body=requests.ConnectionError("refused"))
    with pytest.raises(ScaffolderError) as caught:
        client.get_entities_by_refs(["component:default/a"])
    assert caught.value.message.startswith(
        f"Could not reach the catalog at {BASE} (POST /entities/by-refs): refused"
    )
    assert slept == [0.5, 1.5]


def test_configuration(services: Services) -> None:
    embedded = EmbeddedCatalogClient(services.catalog)
    assert catalog_client_from_config({}, embedded=embedded) is embedded
    assert catalog_client_from_config({"catalog": {"backend": "embedded"}}, embedded=embedded) is (
        embedded
    )
    remote = catalog_client_from_config(
        {
            "catalog": {
                "backend": "backstage",
                "baseUrl": "https://backstage.example.com/",
                "token": "t",
                "timeoutSeconds": 5,
            }
        },
        embedded=embedded,
    )
    assert isinstance(remote, BackstageCatalogClient)
    assert (remote.base_url, remote.token, remote.timeout) == (BASE, "t", 5.0)
    assert catalog_api_url("http://127.0.0.1:7007/api/catalog/") == (
        "http://127.0.0.1:7007/api/catalog"
    )

    def refused(catalog: dict[str, object]) -> str:
        with pytest.raises(InputError) as caught:
            catalog_client_from_config({"catalog": catalog}, embedded=embedded)
        return caught.value.message

    assert refused({"backend": "gitlab"}) == (
        "catalog.backend must be one of embedded, backstage, got 'gitlab'"
    )
    assert "needs catalog.baseUrl" in refused({"backend": "backstage"})
    assert "must be an http(s) URL" in refused({"backend": "backstage", "baseUrl": "ftp://x"})
    assert "must not hold credentials" in refused(
        {"backend": "backstage", "baseUrl": "https://u:p@x"}
    )
    assert "timeoutSeconds" in refused(
        {"backend": "backstage", "baseUrl": "https://x", "timeoutSeconds": "soon"}
    )


def test_services_use_the_remote_catalog_when_configured(
    make_catalog: Callable[..., Services], mocked: responses.RequestsMock
) -> None:
    services = make_catalog(
        [], catalog={"backend": "backstage", "baseUrl": "https://backstage.example.com"}
    )
    fetch = services.registry.get("catalog:fetch")
    mocked.get(f"{BASE}/entities/by-name/group/default/a", json={"kind": "Group"})
    outputs: dict[str, object] = {}
    fetch.handler(
        ActionContext(
            input={"entityRef": "group:a"},
            workspace_path=services.settings.working_directory,
            logger=ActionLogger(lambda line: None),
            signal=CancelSignal(),
            task_id="t",
            step_id="s",
            step_name="S",
            _output=outputs.__setitem__,
            _checkpoint=lambda key, fn: fn(),
        )
    )
    assert outputs == {"entity": {"kind": "Group"}}
