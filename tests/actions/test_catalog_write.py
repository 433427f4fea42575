from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from scaffolder.actions.builtin.catalog_write import create_catalog_write_action, dump_yaml
from scaffolder.errors import InputError
from tests.actions.conftest import RunAction

ENTITY = {
    "apiVersion": "backstage.io/v1alpha1",
    "kind": "Component",
    "metadata": {"name": "svc-one", "description": "First service"},
    "spec": {"type": "service", "lifecycle": "experimental", "owner": "group:default/platform"},
}
HELLO_INFO = {"entityRef": "template:default/hello-template", "baseUrl": "file:///t/template.yaml"}


def test_writes_what_backstage_writes(run_action: RunAction, workspace: Path) -> None:
    run = run_action(
        create_catalog_write_action(),
        {"filePath": "catalog-info.yaml", "entity": ENTITY},
        template_info=HELLO_INFO,
    )

    assert run.messages == ["Writing catalog-info.yaml"]
    assert (workspace / "catalog-info.yaml").read_text() == (
        "apiVersion: backstage.io/v1alpha1\n"
        "kind: Component\n"
        "metadata:\n"
        "  name: svc-one\n"
        "  description: First service\n"
        "  annotations:\n"
        "    backstage.io/source-template: template:default/hello-template\n"
        "spec:\n"
        "  type: service\n"
        "  lifecycle: experimental\n"
        "  owner: group:default/platform\n"
    )


def test_default_path_and_no_template_ref(run_action: RunAction, workspace: Path) -> None:
    run_action(create_catalog_write_action(), {"entity": ENTITY})

    written = yaml.safe_load((workspace / "catalog-info.yaml").read_text())
    assert written == ENTITY
    assert list(written) == list(ENTITY)


def test_existing_annotations_are_kept_in_place(run_action: RunAction, workspace: Path) -> None:
    entity = {
        "kind": "Component",
        "metadata": {"annotations": {"a": "1"}, "name": "x"},
        "spec": {},
    }

    run_action(
        create_catalog_write_action(),
        {"entity": entity, "filePath": "sub/dir/out.yaml"},
        template_info=HELLO_INFO,
    )

    assert (workspace / "sub/dir/out.yaml").read_text() == (
        "kind: Component\n"
        "metadata:\n"
        "  annotations:\n"
        '    a: "1"\n'
        "    backstage.io/source-template: template:default/hello-template\n"
        "  name: x\n"
        "spec: {}\n"
    )


def test_yaml_style_matches_the_yaml_package() -> None:
    assert dump_yaml({"tags": ["a", "b"], "n": None, "t": True, "s": "true", "m": "l1\nl2\n"}) == (
        'tags:\n  - a\n  - b\nn: null\nt: true\ns: "true"\nm: |\n  l1\n  l2\n'
    )


@pytest.mark.parametrize("bad", ["../outside/x.yaml", "/tmp/x.yaml", "link/x.yaml"])
def test_file_path_stays_inside_the_workspace(
    run_action: RunAction, workspace: Path, outside: Path, bad: str
) -> None:
    os.symlink(outside, workspace / "link")

    with pytest.raises(InputError, match="Invalid input 'filePath'"):
        run_action(create_catalog_write_action(), {"entity": ENTITY, "filePath": bad})

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
