from __future__ import annotations

import os
from pathlib import Path

import pytest

from scaffolder.actions.builtin.fs_readdir import create_fs_readdir_action
from scaffolder.errors import InputError, ScaffolderError
from tests.actions.conftest import RunAction, write_tree


def _entry(workspace: Path, rel: str) -> dict[str, str]:
    return {"name": rel.rsplit("/", 1)[-1], "path": rel, "fullPath": f"{workspace}/{rel}"}


@pytest.fixture
def layout(workspace: Path) -> Path:
    write_tree(
        workspace,
        {"b.txt": "b", "a/1.txt": "1", "a/sub/2.txt": "2", "c/3.txt": "3", "docs/x.md": "x"},
    )
    return workspace


def test_lists_one_level(run_action: RunAction, layout: Path) -> None:
    run = run_action(create_fs_readdir_action(), {"paths": ["."]})

    assert run.outputs == {
        "files": [_entry(layout, "b.txt")],
        "folders": [_entry(layout, "a"), _entry(layout, "c"), _entry(layout, "docs")],
    }


def test_recursive_order_is_nodes(run_action: RunAction, layout: Path) -> None:
    run = run_action(create_fs_readdir_action(), {"paths": ["."], "recursive": True})

    # Node pops the directory found last first.
    assert [f["path"] for f in run.outputs["files"]] == [
        "b.txt",
        "docs/x.md",
        "c/3.txt",
        "a/1.txt",
        "a/sub/2.txt",
    ]
    assert [f["path"] for f in run.outputs["folders"]] == ["a", "c", "docs", "a/sub"]


def test_several_paths(run_action: RunAction, layout: Path) -> None:
    run = run_action(create_fs_readdir_action(), {"paths": ["a", "docs"]})

    assert run.outputs["files"] == [_entry(layout, "a/1.txt"), _entry(layout, "docs/x.md")]
    assert run.outputs["folders"] == [_entry(layout, "a/sub")]


def test_symlinks_are_files_and_not_followed(
    run_action: RunAction, layout: Path, outside: Path
) -> None:
    os.symlink(outside, layout / "docs" / "elsewhere")

    run = run_action(create_fs_readdir_action(), {"paths": ["docs"], "recursive": True})

    assert [f["path"] for f in run.outputs["files"]] == ["docs/elsewhere", "docs/x.md"]
    assert run.outputs["folders"] == []


@pytest.mark.parametrize("bad", ["..", "../outside", "/etc", "link"])
def test_paths_outside_the_workspace_are_refused(
    run_action: RunAction, layout: Path, outside: Path, bad: str
) -> None:
    os.symlink(outside, layout / "link")

    with pytest.raises(InputError, match=r"Invalid input 'paths\[1\]'"):
        run_action(create_fs_readdir_action(), {"paths": ["a", bad]})


def test_missing_directory(run_action: RunAction, layout: Path) -> None:
    with pytest.raises(ScaffolderError, match=r"^ENOENT: no such file or directory, scandir '"):
        run_action(create_fs_readdir_action(), {"paths": ["missing"]})
