from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from scaffolder.actions.builtin.fs_rename import create_fs_rename_action
from scaffolder.errors import InputError, ScaffolderError
from tests.actions.conftest import ActionRun, RunAction, tree, write_tree


def test_renames_files_and_logs(run_action: RunAction, workspace: Path) -> None:
    write_tree(workspace, {"file1.txt": "1", "dir/a.txt": "a"})

    run = run_action(
        create_fs_rename_action(),
        {"files": [{"from": "file1.txt", "to": "renamed.txt"}, {"from": "dir", "to": "x/y/dir2"}]},
    )

    assert tree(workspace) == {"renamed.txt": "1", "x/y/dir2/a.txt": "a"}
    assert run.messages == [
        f"File {workspace}/file1.txt renamed to {workspace}/renamed.txt successfully",
        f"File {workspace}/dir renamed to {workspace}/x/y/dir2 successfully",
    ]


def test_existing_destination_needs_overwrite(run_action: RunAction, workspace: Path) -> None:
    write_tree(workspace, {"a.txt": "a", "b.txt": "b"})

    with pytest.raises(ScaffolderError, match=r"^dest already exists\.$"):
        run_action(create_fs_rename_action(), {"files": [{"from": "a.txt", "to": "b.txt"}]})
    assert tree(workspace) == {"a.txt": "a", "b.txt": "b"}

    run_action(
        create_fs_rename_action(), {"files": [{"from": "a.txt", "to": "b.txt", "overwrite": True}]}
    )
    assert tree(workspace) == {"b.txt": "a"}


def test_failure_is_logged_as_an_error(
    make_context: Callable[..., ActionRun], workspace: Path
) -> None:
    run = make_context({"files": [{"from": "missing.txt", "to": "b.txt"}]})

    with pytest.raises(ScaffolderError, match="ENOENT"):
        create_fs_rename_action().handler(run.ctx)

    assert run.levels() == ["error"]
    assert run.messages[0].startswith(f"Failed to rename file {workspace}/missing.txt to ")


def test_empty_from_or_to(make_context: Callable[..., ActionRun]) -> None:
    run = make_context({"files": [{"from": "", "to": "b"}]})

    with pytest.raises(InputError, match=r"^each file must have a from and to property$"):
        create_fs_rename_action().handler(run.ctx)


@pytest.mark.parametrize(
    ("item", "named"),
    [
        ({"from": "../outside/secret.txt", "to": "stolen.txt"}, "files[0].from"),
        ({"from": "a.txt", "to": "../outside/planted.txt"}, "files[0].to"),
        ({"from": "a.txt", "to": "/tmp/planted.txt"}, "files[0].to"),
        ({"from": "link/secret.txt", "to": "stolen.txt"}, "files[0].from"),
        ({"from": "a.txt", "to": "link/planted.txt"}, "files[0].to"),
    ],
)
def test_paths_stay_inside_the_workspace(
    run_action: RunAction, workspace: Path, outside: Path, item: dict[str, str], named: str
) -> None:
    write_tree(workspace, {"a.txt": "a"})
    os.symlink(outside, workspace / "link")

    with pytest.raises(InputError, match=re.escape(f"Invalid input '{named}'")):
        run_action(create_fs_rename_action(), {"files": [item]})

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (workspace / "a.txt").exists()


def test_renames_a_symlink_not_its_target(run_action: RunAction, workspace: Path) -> None:
    write_tree(workspace, {"target.txt": "t"})
    os.symlink("target.txt", workspace / "link.txt")

    run_action(create_fs_rename_action(), {"files": [{"from": "link.txt", "to": "moved.txt"}]})

    assert (workspace / "moved.txt").is_symlink()
    assert (workspace / "target.txt").read_text() == "t"
