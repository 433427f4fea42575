"""Catalog files in the local git host's bare repositories, and a task that publishes and
registers one (``publish:git`` then ``catalog:register``), with real git."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient

from scaffolder.app import create_app
from scaffolder.catalog.git_reader import GitFileReader
from scaffolder.catalog.model import location_entity_ref
from scaffolder.catalog.readers import ReadError
from scaffolder.services import Services
from scaffolder.tasks.service import Caller
from tests.catalog.conftest import CATALOG, component, group
from tests.conftest import wait_for_status

GIT_ENV = {
    "PATH": os.environ["PATH"],
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=True
    ).stdout


def push(
    bare: Path, files: Mapping[str, str], *, branch: str = "main", tag: str | None = None
) -> str:
    """Commit ``files`` on ``branch`` of the bare repository ``bare`` (created if needed)."""
    if not bare.exists():
        git("init", "-q", "--bare", str(bare))
    work = bare.parent / f".work-{bare.name}-{branch.replace('/', '_')}"
    git("init", "-q", str(work))
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "c", cwd=work)
    git("push", "-q", "-f", str(bare), f"HEAD:refs/heads/{branch}", cwd=work)
    if tag:
        git("push", "-q", str(bare), f"HEAD:refs/tags/{tag}", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).strip()


def dump(*documents: Any) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


@pytest.fixture
def git_root(tmp_path: Path) -> Path:
    """The local git host of `make_settings` (``integrations.git`` ``localhost``)."""
    root = tmp_path / "git"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture
def catalog_client(make_catalog: Callable[..., Services]) -> tuple[Services, FlaskClient]:
    services = make_catalog([])
    return services, create_app(services=services).test_client()


def register(client: FlaskClient, target: str) -> dict[str, Any]:
    response = client.post(f"{CATALOG}/locations", json={"type": "url", "target": target})
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def location_errors(services: Services, target: str) -> list[str]:
    entity = services.catalog.get_entity(location_entity_ref("url", target))
    assert entity is not None
    return [item["error"]["message"] for item in entity.get("status", {}).get("items", [])]


# --- reading ------------------------------------------------------------------------------


def test_a_file_of_a_bare_repository_is_read_through_post_locations(
    catalog_client: tuple[Services, FlaskClient], git_root: Path
) -> None:
    services, client = catalog_client
    push(
        git_root / "platform" / "svc.git",
        {
            "catalog-info.yaml": dump(
                component("svc", system="sys"),
                {
                    "apiVersion": "backstage.io/v1alpha1",
                    "kind": "Location",
                    "metadata": {"name": "more"},
                    "spec": {"targets": ["./docs/more.yaml"]},
                },
            ),
            "docs/more.yaml": dump(group("team-a", description={"$text": "../README.md"})),
            "README.md": "the team\n",
        },
    )
    target = f"{git_root.as_uri()}/platform/svc.git/blob/main/catalog-info.yaml"

    register(client, target)

    entity = services.catalog.get_entity("component:default/svc")
    assert entity is not None
    assert entity["metadata"]["annotations"] == {
        "backstage.io/managed-by-location": f"url:{target}",
        "backstage.io/managed-by-origin-location": f"url:{target}",
        "backstage.io/view-url": target,
    }
    # A Location in the repository reads relative targets, and placeholders, from it too.
    team = services.catalog.get_entity("group:default/team-a")
    assert team is not None
    assert team["spec"]["description"] == "the team\n"
    assert location_errors(services, target) == []


def test_branches_with_slashes_tags_and_commits(
    catalog_client: tuple[Services, FlaskClient], git_root: Path
) -> None:
    services, client = catalog_client
    bare = git_root / "o" / "r.git"
    push(bare, {"c.yaml": dump(component("on-main"))})
    push(bare, {"c.yaml": dump(component("on-feature"))}, branch="feature/x", tag="v1")
    commit = push(bare, {"c.yaml": dump(component("on-commit"))}, branch="other")
    for rest in ("feature/x/c.yaml", "v1/c.yaml", f"{commit}/c.yaml", "main/c.yaml"):
        register(client, f"{bare.as_uri()}/blob/{rest}")
    for name in ("on-main", "on-feature", "on-commit"):
        assert services.catalog.get_entity(f"component:default/{name}") is not None


def test_a_missing_file_or_branch_is_not_found(
    catalog_client: tuple[Services, FlaskClient], git_root: Path
) -> None:
    services, client = catalog_client
    bare = git_root / "o" / "r.git"
    push(bare, {"c.yaml": dump(component("svc"))})
    for rest in ("main/nope.yaml", "nope/c.yaml"):
        target = f"{bare.as_uri()}/blob/{rest}"
        register(client, target)
        assert location_errors(services, target) == [
            f"Unable to read url, no matching files found for {target}"
        ]
    # The dry run (catalog:register's second call) answers upstream's 400 with it.
    response = client.post(
        f"{CATALOG}/locations?dryRun=true",
        json={"type": "url", "target": f"{bare.as_uri()}/blob/main/nope.yaml"},
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["message"].startswith(
        "NotFoundError: Unable to read url, no matching files found"
    )


def test_reader_refuses_what_is_not_a_file_of_a_repository_under_a_root(
    tmp_path: Path, git_root: Path
) -> None:
    bare = git_root / "o" / "r.git"
    push(bare, {"c.yaml": dump(component("svc")), "dir/x.yaml": "a: 1\n"})
    elsewhere = tmp_path / "elsewhere" / "r.git"
    elsewhere.parent.mkdir()
    push(elsewhere, {"c.yaml": dump(component("svc"))})
    (git_root / "o" / "link.git").symlink_to(elsewhere)
    reader = GitFileReader(roots=(git_root,))

    assert yaml.safe_load(reader.read(f"{bare.as_uri()}/blob/main/c.yaml"))["kind"] == "Component"
    refused = [
        f"{elsewhere.as_uri()}/blob/main/c.yaml",
        f"{git_root.as_uri()}/o/link.git/blob/main/c.yaml",  # a symlink out of the root
        f"{bare.as_uri()}/blob/main/../../../../etc/passwd",
        f"{bare.as_uri()}/blob/main/dir/../c.yaml",
        f"{bare.as_uri()}/c.yaml",
        "file:///etc/passwd",
        f"file://otherhost{bare}/blob/main/c.yaml",
        f"{bare.as_uri()}/blob/main/c.yaml?x=1",
    ]
    for url in refused:
        with pytest.raises(ReadError) as caught:
            reader.read(url)
        assert caught.value.name == "NotAllowedError", url
        assert caught.value.message.startswith(f"Reading from '{url}' is not allowed"), url
    with pytest.raises(ReadError, match="it is a tree, not a file"):
        reader.read(f"{bare.as_uri()}/blob/main/dir")
    small = GitFileReader(roots=(git_root,), max_bytes=10)
    with pytest.raises(ReadError, match="larger than 10 bytes"):
        small.read(f"{bare.as_uri()}/blob/main/c.yaml")


def test_file_urls_are_refused_without_a_local_git_host(
    make_catalog: Callable[..., Services], git_root: Path
) -> None:
    services = make_catalog([], extra={"integrations": {"git": []}})
    client = create_app(services=services).test_client()
    bare = git_root / "o" / "r.git"
    push(bare, {"c.yaml": dump(component("svc"))})
    target = f"{bare.as_uri()}/blob/main/c.yaml"
    register(client, target)
    assert services.catalog.get_entity("component:default/svc") is None
    [message] = location_errors(services, target)
    assert message.startswith(f"Unable to read url, Reading from '{target}' is not allowed.")


# --- publish, register, retry -------------------------------------------------------------

TEMPLATE = {
    "apiVersion": "scaffolder.backstage.io/v1beta3",
    "kind": "Template",
    "metadata": {"name": "publish-register"},
    "spec": {
        "owner": "group:default/platform",
        "type": "service",
        "parameters": [{"required": ["name"], "properties": {"name": {"type": "string"}}}],
        "steps": [
            {
                "id": "fetch",
                "action": "fetch:template",
                "input": {"url": "./skeleton", "values": {"name": "${{ parameters.name }}"}},
            },
            {
                "id": "publish",
                "action": "publish:git",
                "input": {"repoUrl": "localhost?owner=platform&repo=${{ parameters.name }}"},
            },
            {
                "id": "register",
                "action": "catalog:register",
                "input": {
                    "repoContentsUrl": "${{ steps.publish.output.repoContentsUrl }}",
                    "catalogInfoPath": "/catalog-info.yaml",
                },
            },
        ],
        "output": {
            "links": [
                {
                    "title": "Open in catalog",
                    "icon": "catalog",
                    "entityRef": "${{ steps.register.output.entityRef }}",
                }
            ]
        },
    },
}


def test_a_task_publishes_registers_and_a_retry_registers_again(
    make_catalog: Callable[..., Services], tmp_path: Path, git_root: Path
) -> None:
    template_dir = tmp_path / "templates" / "publish-register"
    (template_dir / "skeleton").mkdir(parents=True)
    (template_dir / "template.yaml").write_text(yaml.safe_dump(TEMPLATE, sort_keys=False))
    (template_dir / "skeleton" / "catalog-info.yaml").write_text(
        dump({**component("${{ values.name }}"), "metadata": {"name": "${{ values.name }}"}})
    )
    # Recovery off: the retry runs every step again (with it, the completed ones are skipped).
    services = make_catalog(
        [{"type": "file", "target": str(template_dir / "template.yaml")}],
        with_worker=True,
        extra={"scaffolder": {"taskRecovery": {"enabled": False}}},
    )

    task_id = services.scaffolder.create_task(
        template_ref="template:default/publish-register",
        values={"name": "payments"},
        secrets=None,
        caller=Caller(),
    )
    assert wait_for_status(services, task_id, timeout=60) == "completed"

    target = f"{git_root.as_uri()}/platform/payments.git/blob/main/catalog-info.yaml"
    entity = services.catalog.get_entity("component:default/payments")
    assert entity is not None
    assert entity["metadata"]["annotations"]["backstage.io/managed-by-location"] == f"url:{target}"
    completion = services.broker.store.list_events(task_id)[-1].body
    assert completion["output"]["links"] == [
        {"title": "Open in catalog", "icon": "catalog", "entityRef": "component:default/payments"}
    ]

    services.scaffolder.retry_task(task_id, secrets=None, caller=Caller())
    assert wait_for_status(services, task_id, timeout=60) == "completed"
    messages = [str(e.body.get("message", "")) for e in services.broker.store.list_events(task_id)]
    assert any(f"Location url:{target} was registered already" in m for m in messages)
    assert [loc.target for loc in services.catalog.store.locations()] == [target]
