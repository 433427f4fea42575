from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from scaffolder.actions.base import CancelSignal, TemplateAction
from scaffolder.actions.builtin.catalog_write import create_catalog_write_action
from scaffolder.actions.builtin.debug_log import create_debug_log_action
from scaffolder.actions.builtin.fetch_template import (
    EXTENSION_INCOMPATIBLE,
    create_fetch_template_action,
)
from scaffolder.errors import InputError, ScaffolderError, TaskCancelledError
from scaffolder.tasks.templating import Templater
from tests.actions.conftest import FIXTURES, RunAction, tree, write_tree

# The values of trace 05 (POST /v2/tasks for hello-template).
HELLO_VALUES = {
    "name": "svc-one",
    "description": "First service",
    "owner": "group:default/platform",
    "language": "python",
    "port": 8080,
}
HELLO_FILES = {
    ".editorconfig": "root = true\n[*]\nindent_style = space\nindent_size = 2\n",
    "LICENSE": "Plain license text with no substitutions.\n",
    "Makefile": '# Makefile for svc-one\nrun:\n\techo "running svc-one on port 8080"\n',
    "README.md": (
        "# svc-one\n\nFirst service\n\n"
        "Owned by `group:default/platform`. Language: python. Port: 8080.\n"
    ),
    "config.yaml": "service:\n  name: svc-one\n  port: 8080\n  owner: group:default/platform\n",
    "docs/index.md": "# svc-one docs\n\nFirst service\n",
    "docs/mkdocs.yml": "site_name: svc-one\n",
    "src/app.txt": "APP_NAME=svc-one\nAPP_PORT=8080\n",
    "src/main.txt": "service SVC-ONE says hello\nlanguage-specific: python\n",
    "tests/test_basic.txt": "test for svc-one\n",
}
# The last debug:log line of trace 06 (listWorkspace: with-contents after catalog:write).
TRACE_06_WORKSPACE = (
    "\x1b[32minfo\x1b[39m: Workspace:\n - .editorconfig:\n\n  root = true\n[*]\nindent_style = "
    "space\nindent_size = 2\n\n - LICENSE:\n\n  Plain license text with no substitutions.\n\n"
    ' - Makefile:\n\n  # Makefile for svc-one\nrun:\n\techo "running svc-one on port 8080"\n\n'
    " - README.md:\n\n  # svc-one\n\nFirst service\n\nOwned by `group:default/platform`. "
    "Language: python. Port: 8080.\n\n - catalog-info.yaml:\n\n  apiVersion: backstage.io/v1alpha1"
    "\nkind: Component\nmetadata:\n  name: svc-one\n  description: First service\n  annotations:"
    "\n    backstage.io/source-template: template:default/hello-template\nspec:\n  type: service"
    "\n  lifecycle: experimental\n  owner: group:default/platform\n\n - config.yaml:\n\n  service:"
    "\n  name: svc-one\n  port: 8080\n  owner: group:default/platform\n\n - docs/index.md:\n\n"
    "  # svc-one docs\n\nFirst service\n\n - docs/mkdocs.yml:\n\n  site_name: svc-one\n\n"
    " - src/app.txt:\n\n  APP_NAME=svc-one\nAPP_PORT=8080\n\n - src/main.txt:\n\n  service SVC-ONE"
    " says hello\nlanguage-specific: python\n\n - tests/test_basic.txt:\n\n  test for svc-one\n"
)


@pytest.fixture(scope="module")
def templater() -> Templater:
    return Templater()


@pytest.fixture
def action(templater: Templater) -> TemplateAction:
    return create_fetch_template_action(templater=templater)


@pytest.fixture
def hello(tmp_path: Path) -> dict[str, str]:
    """A writable copy of the hello template, with the modes it had upstream."""
    root = tmp_path / "templates" / "hello-template"
    shutil.copytree(FIXTURES / "templates" / "hello-template", root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return {
        "baseUrl": f"file://{root}/template.yaml",
        "entityRef": "template:default/hello-template",
    }


@pytest.fixture
def skeleton(tmp_path: Path) -> Path:
    path = tmp_path / "tpl" / "skeleton"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def info(skeleton: Path) -> dict[str, str]:
    template_yaml = skeleton.parent / "template.yaml"
    template_yaml.write_text("kind: Template\n")
    return {"baseUrl": f"file://{template_yaml}"}


def test_hello_skeleton_renders_and_logs_like_backstage(
    run_action: RunAction, action, workspace: Path, hello: dict[str, str]
) -> None:
    run = run_action(action, {"url": "./skeleton", "values": HELLO_VALUES}, template_info=hello)

    assert tree(workspace) == HELLO_FILES
    # Trace 06, events 7 to 23: the same lines in the same order.
    assert run.messages == [
        "Fetching template content from remote URL",
        "Listing files and directories in template",
        "Processing 13 template files/directories with input values "
        '{"description":"First service","language":"python","name":"svc-one",'
        '"owner":"group:default/platform","port":8080}',
        "Writing file .editorconfig to template output path with mode 33188.",
        "Writing file LICENSE to template output path with mode 33188.",
        "Writing file Makefile to template output path with mode 33188.",
        "Writing file README.md to template output path with mode 33188.",
        "Writing file config.yaml to template output path with mode 33188.",
        "Writing directory docs/ to template output path.",
        "Writing directory src/ to template output path.",
        "Writing directory tests/ to template output path.",
        "Writing file docs/index.md to template output path with mode 33188.",
        "Writing file docs/mkdocs.yml to template output path with mode 33188.",
        "Writing file src/app.txt to template output path with mode 33188.",
        "Writing file src/main.txt to template output path with mode 33188.",
        "Writing file tests/test_basic.txt to template output path with mode 33188.",
        f"Template result written to {workspace}",
    ]
    assert set(run.levels()) == {"info"}


def test_hello_template_steps_end_as_in_trace_06(
    run_action: RunAction, action, hello: dict[str, str]
) -> None:
    run_action(action, {"url": "./skeleton", "values": HELLO_VALUES}, template_info=hello)
    run_action(
        create_catalog_write_action(),
        {
            "filePath": "catalog-info.yaml",
            "entity": {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": "svc-one", "description": "First service"},
                "spec": {
                    "type": "service",
                    "lifecycle": "experimental",
                    "owner": "group:default/platform",
                },
            },
        },
        template_info=hello,
    )

    run = run_action(create_debug_log_action(), {"listWorkspace": "with-contents"})

    assert run.lines[-1] == TRACE_06_WORKSPACE


def test_target_path(run_action: RunAction, action, workspace: Path, hello: dict[str, str]) -> None:
    run = run_action(
        action,
        {"url": "./skeleton", "values": HELLO_VALUES, "targetPath": "./out/svc"},
        template_info=hello,
    )

    assert tree(workspace / "out" / "svc") == HELLO_FILES
    assert run.messages[-1] == f"Template result written to {workspace}/out/svc"


def test_no_values(run_action: RunAction, action, skeleton: Path, info: dict[str, str]) -> None:
    write_tree(skeleton, {"a.txt": "plain"})

    run = run_action(action, {"url": "./skeleton"}, template_info=info)

    assert run.messages[2] == "Processing 1 template files/directories with input values"


def test_paths_are_rendered_and_empty_ones_skipped(
    run_action: RunAction, action, workspace: Path, skeleton: Path, info: dict[str, str]
) -> None:
    write_tree(
        skeleton,
        {
            "${{ values.name }}/README.md": "# ${{ values.name }}",
            '${{ "Dockerfile" if values.docker }}': "FROM x",
            '${{ "ci" if values.ci }}/pipeline.yml': "ci",
            'docs/${{ "extra" if values.extra }}/more.md': "more",
            "always.txt": "a",
        },
    )

    run_action(
        action,
        {"url": "./skeleton", "values": {"name": "svc", "docker": False, "ci": False}},
        template_info=info,
    )

    assert tree(workspace) == {"svc/README.md": "# svc", "always.txt": "a"}


@pytest.mark.parametrize("name", ["../../evil", "../evil", "a/../../evil", ".."])
def test_rendered_names_cannot_escape(
    run_action: RunAction,
    action,
    workspace: Path,
    skeleton: Path,
    info: dict[str, str],
    tmp_path: Path,
    name: str,
) -> None:
    write_tree(skeleton, {"${{ values.name }}": "pwned", "ok.txt": "ok"})
    before = sorted(p.name for p in tmp_path.iterdir())

    with pytest.raises(InputError, match="leads outside targetPath"):
        run_action(
            action,
            {"url": "./skeleton", "values": {"name": name}, "targetPath": "sub"},
            template_info=info,
        )

    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (workspace / "evil").exists()
    assert not (tmp_path / "evil").exists()


def test_rendered_directory_names_cannot_escape(
    run_action: RunAction, action, skeleton: Path, info: dict[str, str], tmp_path: Path
) -> None:
    write_tree(skeleton, {"${{ values.dir }}/x.txt": "pwned"})

    with pytest.raises(InputError, match="Invalid input 'values'"):
        run_action(action, {"url": "./skeleton", "values": {"dir": "../.."}}, template_info=info)

    assert not (tmp_path / "x.txt").exists()


def test_absolute_rendered_names_are_skipped(
    run_action: RunAction, action, workspace: Path, skeleton: Path, info: dict[str, str]
) -> None:
    write_tree(skeleton, {"${{ values.name }}": "pwned"})

    run_action(action, {"url": "./skeleton", "values": {"name": "/tmp/evil"}}, template_info=info)

    assert tree(workspace) == {}
    assert not Path("/tmp/evil").exists()


def test_existing_symlink_in_the_workspace_is_not_written_through(
    run_action: RunAction,
    action,
    workspace: Path,
    skeleton: Path,
    info: dict[str, str],
    outside: Path,
) -> None:
    write_tree(skeleton, {"docs/index.md": "x"})
    os.symlink(outside, workspace / "docs")

    with pytest.raises(InputError):
        run_action(action, {"url": "./skeleton", "values": {}}, template_info=info)

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


@pytest.mark.parametrize("target", ["../out", "/tmp/out", "link", "link/sub"])
def test_target_path_stays_inside(
    run_action: RunAction,
    action,
    workspace: Path,
    hello: dict[str, str],
    outside: Path,
    target: str,
) -> None:
    os.symlink(outside, workspace / "link")

    with pytest.raises(InputError, match="Invalid input 'targetPath'"):
        run_action(
            action,
            {"url": "./skeleton", "values": HELLO_VALUES, "targetPath": target},
            template_info=hello,
        )

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_target_path_inside_the_template_is_refused(
    run_action: RunAction, action, workspace: Path
) -> None:
    write_tree(workspace, {"tpl/template.yaml": "", "tpl/skeleton/a.txt": "a"})

    with pytest.raises(InputError, match=r"^targetPath must not be within template path$"):
        run_action(
            action,
            {"url": "./skeleton", "targetPath": "tpl/skeleton/out"},
            template_info={"baseUrl": f"file://{workspace}/tpl/template.yaml"},
        )


def test_url_cannot_leave_the_template_dir(
    run_action: RunAction, action, info: dict[str, str]
) -> None:
    with pytest.raises(InputError, match="Invalid input 'url'"):
        run_action(action, {"url": "../../"}, template_info=info)


def test_copy_without_templating_with_negation(
    run_action: RunAction, action, workspace: Path, skeleton: Path, info: dict[str, str]
) -> None:
    write_tree(
        skeleton,
        {
            "${{ values.name }}.md": "${{ values.name }}",
            "static/a.txt": "${{ values.name }}",
            "static/keep/b.txt": "${{ values.name }}",
            ".github/workflows/ci.yml": "${{ github.sha }}",
        },
    )

    run = run_action(
        action,
        {
            "url": "./skeleton",
            "values": {"name": "svc"},
            "copyWithoutTemplating": [".github/workflows/*", "static", "!static/keep"],
        },
        template_info=info,
    )

    assert tree(workspace) == {
        "svc.md": "svc",
        "static/a.txt": "${{ values.name }}",
        "static/keep/b.txt": "svc",
        ".github/workflows/ci.yml": "${{ github.sha }}",
    }
    assert "Copying file/directory .github/workflows/ci.yml without processing." in run.messages
    assert "Copying file/directory static/a.txt without processing." in run.messages
    assert "Copying file/directory static/keep/b.txt without processing." not in run.messages


def test_copy_without_render_is_an_alias(
    run_action: RunAction, action, workspace: Path, skeleton: Path, info: dict[str, str]
) -> None:
    write_tree(skeleton, {"${{ values.name }}.txt": "${{ values.name }}", "b.txt": "${{ 1 + 1 }}"})

    run_action(
        action,
        {"url": "./skeleton", "values": {"name": "svc"}, "copyWithoutRender": ["*.txt", "!b.txt"]},
        template_info=info,
    )

    assert tree(workspace) == {"svc.txt": "${{ values.name }}", "b.txt": "2"}


@pytest.mark.parametrize(("extension", "suffix"), [(True, ".njk"), ("tmpl", ".tmpl")])
def test_template_file_extension(
    run_action: RunAction,
    action,
    workspace: Path,
    skeleton: Path,
    info: dict[str, str],
    extension: bool | str,
    suffix: str,
) -> None:
    write_tree(
        skeleton,
        {
            f"${{{{ values.name }}}}.md{suffix}": "# ${{ values.name }}",
            "raw.md": "${{ values.name }}",
        },
    )

    run = run_action(
        action,
        {"url": "./skeleton", "values": {"name": "svc"}, "templateFileExtension": extension},
        template_info=info,
    )

    assert tree(workspace) == {"svc.md": "# svc", "raw.md": "${{ values.name }}"}
    assert not any("without processing" in m for m in run.messages)


@pytest.mark.parametrize(
    "extra",
    [
        {"copyWithoutTemplating": ["x"]},
        {"copyWithoutTemplating": []},
        {"copyWithoutRender": ["x"]},
        {"cookiecutterCompat": True},
    ],
)
def test_template_file_extension_incompatibilities(
    run_action: RunAction, action, info: dict[str, str], extra: dict[str, object]
) -> None:
    with pytest.raises(InputError) as raised:
        run_action(
            action,
            {"url": "./skeleton", "templateFileExtension": True, **extra},
            template_info=info,
        )

    assert raised.value.message == EXTENSION_INCOMPATIBLE
    assert EXTENSION_INCOMPATIBLE == (
        "Fetch action input extension incompatible with copyWithoutTemplating and "
        "cookiecutterCompat"
    )


def test_existing_files_are_kept_unless_replace(
    run_action: RunAction, action, workspace: Path, skeleton: Path, info: dict[str, str]
) -> None:
    write_tree(skeleton, {"a.txt": "new ${{ values.n }}", "b.txt": "b"})
    write_tree(workspace, {"a.txt": "old"})

    run = run_action(action, {"url": "./skeleton", "values": {"n": 1}}, template_info=info)
    assert tree(workspace) == {"a.txt": "old", "b.txt": "b"}
    assert not any("a.txt" in m for m in run.messages)

    run_action(
        action, {"url": "./skeleton", "values": {"n": 1}, "replace": True}, template_info=info
    )
    assert tree(workspace) == {"a.txt": "new 1", "b.txt": "b"}


def test_file_mode_is_preserved(
    run_action: RunAction, action, workspace: Path, skeleton: Path, info: dict[str, str]
) -> None:
    write_tree(skeleton, {"run.sh": "#!/bin/sh\necho ${{ values.n }}\n"})
    os.chmod(skeleton / "run.sh", 0o755)

    run = run_action(action, {"url": "./skeleton", "values": {"n": 1}}, template_info=info)

    assert stat.S_IMODE((workspace / "run.sh").stat().st_mode) == 0o755
    assert "Writing file run.sh to template output path with mode 33261." in run.messages


def test_binary_files_are_copied_as_is(
    run_action: RunAction, action, workspace: Path, skeleton: Path, info: dict[str, str]
) -> None:
    blob = b"\x89PNG\r\n\x1a\n\x00\x00${{ values.n }}\xff\xfe"
    write_tree(skeleton, {"logo.png": blob})

    run = run_action(action, {"url": "./skeleton", "values": {"n": 1}}, template_info=info)

    assert (workspace / "logo.png").read_bytes() == blob
    assert (
        "Copying file binary or symbolic link at logo.png, to template output path." in run.messages
    )


def test_symlinks(
    run_action: RunAction,
    action,
    workspace: Path,
    skeleton: Path,
    info: dict[str, str],
    outside: Path,
) -> None:
    write_tree(skeleton, {"real.txt": "real", "dir/inner.txt": "inner"})
    os.symlink("real.txt", skeleton / "inside-link")
    os.symlink("../real.txt", skeleton / "dir" / "up-link")
    os.symlink(outside / "secret.txt", skeleton / "abs-leak")
    os.symlink("../../outside/secret.txt", skeleton / "rel-leak")
    os.symlink(str(outside), skeleton / "dir-leak")
    os.symlink(str(skeleton / "real.txt"), skeleton / "abs-inside")

    run = run_action(action, {"url": "./skeleton", "values": {}}, template_info=info)

    assert os.readlink(workspace / "inside-link") == "real.txt"
    assert os.readlink(workspace / "dir" / "up-link") == "../real.txt"
    for leak in ("abs-leak", "rel-leak", "dir-leak", "abs-inside"):
        assert not os.path.lexists(workspace / leak), leak
        assert f"Skipping symbolic link {leak}: it points outside the template." in run.messages
    assert "top secret" not in str(tree(workspace))


def test_processing_order_is_breadth_first(
    run_action: RunAction, action, skeleton: Path, info: dict[str, str]
) -> None:
    write_tree(skeleton, {"b/c/d.txt": "", "a/x.txt": "", "z.txt": "", "a/y/w.txt": ""})

    run = run_action(action, {"url": "./skeleton"}, template_info=info)

    written = [m.split(" ")[2] for m in run.messages if m.startswith("Writing")]
    assert written == ["a/", "b/", "z.txt", "a/x.txt", "a/y/", "b/c/", "a/y/w.txt", "b/c/d.txt"]


def test_cookiecutter_compat(
    run_action: RunAction, action, workspace: Path, skeleton: Path, info: dict[str, str]
) -> None:
    write_tree(skeleton, {"{{ cookiecutter.name }}.txt": "hi {{ cookiecutter.name }}"})

    run_action(
        action,
        {"url": "./skeleton", "values": {"name": "svc"}, "cookiecutterCompat": True},
        template_info=info,
    )

    assert tree(workspace) == {"svc.txt": "hi svc"}


def test_plain_double_braces_are_literal_without_cookiecutter_compat(
    run_action: RunAction, action, workspace: Path, skeleton: Path, info: dict[str, str]
) -> None:
    write_tree(skeleton, {"a.txt": "{{ values.name }} ${{ values.name }}"})

    run_action(action, {"url": "./skeleton", "values": {"name": "svc"}}, template_info=info)

    assert tree(workspace) == {"a.txt": "{{ values.name }} svc"}


def test_trim_and_lstrip_blocks(
    run_action: RunAction, action, workspace: Path, skeleton: Path, info: dict[str, str]
) -> None:
    write_tree(skeleton, {"a.txt": "x\n    {% if true %}\ny\n    {% endif %}\nz\n"})

    run_action(
        action,
        {"url": "./skeleton", "trimBlocks": True, "lstripBlocks": True},
        template_info=info,
    )

    assert tree(workspace) == {"a.txt": "x\ny\nz\n"}


def test_render_errors_fail_the_step(
    run_action: RunAction, action, skeleton: Path, info: dict[str, str]
) -> None:
    write_tree(skeleton, {"bad.txt": "${{ values.name | no_such_filter }}"})

    with pytest.raises(InputError):
        run_action(action, {"url": "./skeleton", "values": {"name": "x"}}, template_info=info)


def test_cancelled_task_stops(
    run_action: RunAction, action, workspace: Path, hello: dict[str, str]
) -> None:
    signal = CancelSignal()
    signal.cancel()

    with pytest.raises(TaskCancelledError):
        run_action(
            action,
            {"url": "./skeleton", "values": HELLO_VALUES},
            template_info=hello,
            signal=signal,
        )

    assert tree(workspace) == {}


def test_filesystem_errors_are_reported_node_style(
    run_action: RunAction, action, workspace: Path, skeleton: Path, info: dict[str, str]
) -> None:
    write_tree(skeleton, {"a.txt": "a"})
    (workspace / "a.txt").mkdir()

    with pytest.raises(ScaffolderError, match=r"^EISDIR: is a directory, open '.*a\.txt'$"):
        run_action(action, {"url": "./skeleton", "replace": True}, template_info=info)
