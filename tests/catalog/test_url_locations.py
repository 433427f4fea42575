"""``url`` locations: the allow-list, GitHub (raw and contents API), errors, a real loopback read.

HTTP to GitHub and other hosts is answered by ``responses`` (nothing leaves the machine: an
unexpected request fails the test); one test serves files from a loopback ``http.server``.
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
import responses
import yaml

from scaffolder.app import create_app
from scaffolder.catalog.model import location_entity_ref
from scaffolder.catalog.readers import ReadError, UrlReader, integrations_from_config
from scaffolder.services import Services
from tests.catalog.conftest import CATALOG, component, refresh_all

BLOB = "https://github.com/acme/svc/blob/main/catalog-info.yaml"
RAW = "https://raw.githubusercontent.com/acme/svc/main/catalog-info.yaml"
CONTENTS = "https://api.github.com/repos/acme/svc/contents/catalog-info.yaml?ref=main"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _url_catalog(make_catalog: Callable[..., Services], target: str, **kwargs: Any) -> Services:
    return make_catalog([{"type": "url", "target": target}], **kwargs)


def test_github_blob_without_token_reads_raw_and_sets_scm_annotations(
    make_catalog: Callable[..., Services], mocked: responses.RequestsMock
) -> None:
    mocked.get(RAW, body=yaml.safe_dump(component("svc")))
    services = _url_catalog(make_catalog, BLOB)
    entity = services.catalog.get_entity("component:default/svc")
    # As upstream: the GitHub integration resolves the target to its /tree/ form, and the
    # entities read from it are managed by that URL.
    tree = BLOB.replace("/blob/", "/tree/")
    assert entity["metadata"]["annotations"] == {
        "backstage.io/managed-by-location": f"url:{tree}",
        "backstage.io/managed-by-origin-location": f"url:{BLOB}",
        "backstage.io/view-url": tree,
        "backstage.io/edit-url": "https://github.com/acme/svc/edit/main/catalog-info.yaml",
        "backstage.io/source-location": "url:https://github.com/acme/svc/tree/main/",
    }
    assert mocked.calls[0].request.headers["Accept"] == "application/vnd.github.v3.raw"
    assert "Authorization" not in mocked.calls[0].request.headers


def test_github_with_token_reads_the_contents_api(
    make_catalog: Callable[..., Services], mocked: responses.RequestsMock
) -> None:
    mocked.get(CONTENTS, body=yaml.safe_dump(component("svc")))
    tree = BLOB.replace("/blob/", "/tree/")
    services = _url_catalog(
        make_catalog,
        tree,
        extra={"integrations": {"github": [{"host": "github.com", "token": "ghp_secret"}]}},
    )
    assert services.catalog.get_entity("component:default/svc") is not None
    request = mocked.calls[0].request
    assert request.url == CONTENTS
    assert request.headers["Authorization"] == "Bearer ghp_secret"
    assert request.headers["Accept"] == "application/vnd.github.v3.raw"


def test_hosts_outside_the_allow_list_are_refused_before_any_request(
    make_catalog: Callable[..., Services], mocked: responses.RequestsMock
) -> None:
    target = "https://git.example.com/catalog-info.yaml"
    services = _url_catalog(make_catalog, target)
    assert len(mocked.calls) == 0
    root = services.catalog.get_entity(location_entity_ref("url", target))
    assert [i["message"] for i in root["status"]["items"]] == [
        f"Error: Unable to read url, Reading from '{target}' is not allowed. You may need to "
        "configure an integration for the target host, or add it to the configured list of "
        "allowed hosts at 'backend.reading.allow'"
    ]


def test_allowed_host_errors_keep_what_was_read_before(
    make_catalog: Callable[..., Services], mocked: responses.RequestsMock
) -> None:
    target = "https://git.example.com/catalog-info.yaml"
    mocked.get(target, body=yaml.safe_dump(component("svc")))
    services = _url_catalog(make_catalog, target, reading={"allow": [{"host": "git.example.com"}]})
    assert services.catalog.get_entity("component:default/svc") is not None
    root_ref = location_entity_ref("url", target)

    mocked.replace(responses.GET, target, status=500)
    refresh_all(services)
    assert services.catalog.get_entity("component:default/svc") is not None
    assert [i["message"] for i in services.catalog.get_entity(root_ref)["status"]["items"]] == [
        f"Error: Unable to read url, could not read {target}, 500 Internal Server Error"
    ]

    mocked.replace(responses.GET, target, status=404)
    refresh_all(services)
    assert services.catalog.get_entity("component:default/svc") is not None
    assert [i["message"] for i in services.catalog.get_entity(root_ref)["status"]["items"]] == [
        f"NotFoundError: Unable to read url, no matching files found for {target}"
    ]


def test_redirects_off_the_allow_list_and_oversized_bodies_are_refused(
    mocked: responses.RequestsMock,
) -> None:
    from scaffolder.catalog.readers import AllowRule

    reader = UrlReader(allow=[AllowRule(host="ok.example.com")], max_bytes=1000)
    mocked.get(
        "https://ok.example.com/a.yaml",
        status=302,
        headers={"location": "https://evil.example.com/a.yaml"},
    )
    with pytest.raises(ReadError, match=r"URL not allowed by backend\.reading\.allow"):
        reader.read_url("https://ok.example.com/a.yaml")
    assert [c.request.url for c in mocked.calls] == ["https://ok.example.com/a.yaml"]

    mocked.get("https://ok.example.com/big.yaml", body="x" * 5000)
    with pytest.raises(ReadError, match="larger than 1000 bytes"):
        reader.read_url("https://ok.example.com/big.yaml")


def test_read_timeouts_are_errors(mocked: responses.RequestsMock) -> None:
    import requests

    from scaffolder.catalog.readers import AllowRule

    mocked.get("https://slow.example.com/a.yaml", body=requests.exceptions.ReadTimeout("slow"))
    reader = UrlReader(allow=[AllowRule(host="slow.example.com")], timeout=0.5)
    with pytest.raises(ReadError, match=r"Unable to read https://slow.example.com/a.yaml, slow"):
        reader.read_url("https://slow.example.com/a.yaml")


def test_github_enterprise_needs_its_api_base_url() -> None:
    [ghe, default] = integrations_from_config(
        {
            "integrations": {
                "github": [
                    {
                        "host": "ghe.acme.com",
                        "apiBaseUrl": "https://ghe.acme.com/api/v3",
                        "token": "t",
                    }
                ]
            }
        }
    )
    assert default.host == "github.com"
    url, headers = ghe.fetch_url("https://ghe.acme.com/o/r/blob/dev/path/c.yaml")
    assert url == "https://ghe.acme.com/api/v3/repos/o/r/contents/path/c.yaml?ref=dev"
    assert headers["Authorization"] == "Bearer t"
    with pytest.raises(ReadError, match="path traversal"):
        ghe.fetch_url("https://ghe.acme.com/o/r/blob/dev/../secret")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_registered_location_is_read_over_loopback_http(
    make_catalog: Callable[..., Services], file_server: tuple[str, Path]
) -> None:
    host, root = file_server
    (root / "catalog-info.yaml").write_text(
        yaml.safe_dump_all(
            [
                component("served"),
                {
                    "apiVersion": "backstage.io/v1alpha1",
                    "kind": "Location",
                    "metadata": {"name": "more"},
                    "spec": {"target": "./more.yaml"},
                },
            ]
        )
    )
    (root / "more.yaml").write_text(yaml.safe_dump(component("more-served")))
    services = make_catalog(with_worker=True, reading={"allow": [{"host": host}]})
    client = create_app(services=services).test_client()
    target = f"http://{host}/catalog-info.yaml"

    res = client.post(f"{CATALOG}/locations", json={"type": "url", "target": target})
    assert res.status_code == 201
    assert res.json["entities"] == []
    deadline = time.monotonic() + 10
    while services.catalog.get_entity("component:default/more-served") is None:
        assert time.monotonic() < deadline, "the registered location was not read"
        time.sleep(0.05)
    served = services.catalog.get_entity("component:default/served")
    assert served["metadata"]["annotations"] == {
        "backstage.io/managed-by-location": f"url:{target}",
        "backstage.io/managed-by-origin-location": f"url:{target}",
        "backstage.io/view-url": target,
    }
    more = services.catalog.get_entity("component:default/more-served")
    assert more["metadata"]["annotations"]["backstage.io/managed-by-location"] == (
        f"url:http://{host}/more.yaml"
    )
    by_entity = client.get(f"{CATALOG}/locations/by-entity/component/default/more-served")
    assert by_entity.json == res.json["location"]

    client.delete(f"{CATALOG}/locations/{res.json['location']['id']}")
    assert services.catalog.get_entity("component:default/served") is None
    assert services.catalog.get_entity("component:default/more-served") is None
