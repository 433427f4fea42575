from __future__ import annotations

import os
from pathlib import Path

import pytest

from scaffolder.actions.base import TemplateAction
from scaffolder.actions.builtin.fetch_template_file import create_fetch_template_file_action
from scaffolder.errors import InputError
from scaffolder.tasks.templating import Templater
from tests.actions.conftest import RunAction, tree, write_tree


@pytest.fixture
def action() -> TemplateAction:
    return create_fetch_template_file_action(templater=Templater())


@pytest.fixture
def info(tmp_path: Path) -> dict[str, str]:
    write_tree(
        tmp_path / "tpl",
        {
            "template.yaml": "kind: Template\n",
            "skeleton.txt": "name: ${{ values.name }}\n",
            "cookie.txt": "name: {{ cookiecutter.name }}\n",
        },
    )
    return {"baseUrl": f"file://{tmp_path}/tpl/template.yaml"}


def test_renders_one_file(
    run_action: RunAction, action, workspace: Path, info: dict[str, str]
) -> None:
    run = run_action(
        action,
        {"url": "./skeleton.txt", "targetPath": "./target/skeleton.txt", "values": {"name": "p"}},
        template_info=info,
    )

    assert tree(workspace) == {"target/skeleton.txt": "name: p\n"}
    assert run.messages == [
        "Fetching template file content from remote URL",
        'Processing template file with input values {"name":"p"}',
        f"Template file has been written to {workspace}/target/skeleton.txt",
    ]


def test_cookiecutter_compat(
    run_action: RunAction, action, workspace: Path, info: dict[str, str]
) -> None:
    run_action(
        action,
        {
            "url": "./cookie.txt",
            "targetPath": "out.txt",
            "values": {"name": "c"},
            "cookiecutterCompat": True,
        },
        template_info=info,
    )

    assert tree(workspace) == {"out.txt": "name: c\n"}


def test_existing_file_is_kept_unless_replace(
    run_action: RunAction, action, workspace: Path, info: dict[str, str]
) -> None:
    write_tree(workspace, {"out.txt": "old"})
    input = {"url": "./skeleton.txt", "targetPath": "out.txt", "values": {"name": "p"}}

    run = run_action(action, input, template_info=info)
    assert tree(workspace) == {"out.txt": "old"}
    assert run.messages[-1] == "File out.txt already exists in workspace, not replacing."

    run_action(action, {**input, "replace": True}, template_info=info)
    assert tree(workspace) == {"out.txt": "name: p\n"}


@pytest.mark.parametrize(
    ("url", "target", "named"),
    [
        ("./skeleton.txt", "../evil.txt", "targetPath"),
        ("./skeleton.txt", "/tmp/evil.txt", "targetPath"),
        ("./skeleton.txt", "link/evil.txt", "targetPath"),
        ("../../outside/secret.txt", "stolen.txt", "url"),
    ],
)
def test_paths_stay_inside(
    run_action: RunAction,
    action,
    workspace: Path,
    outside: Path,
    info: dict[str, str],
    url: str,
    target: str,
    named: str,
) -> None:
    os.symlink(outside, workspace / "link")

    with pytest.raises(InputError, match=f"Invalid input '{named}'"):
        run_action(action, {"url": url, "targetPath": target}, template_info=info)

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert not (workspace / "stolen.txt").exists()
