"""resolve_within: every path a step names stays in its workspace, and resolves as realpath does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scaffolder.errors import InputError
from scaffolder.tasks.workspace import resolve_within


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "work" / "task-1"
    (root / "src" / "deep").mkdir(parents=True)
    (root / "src" / "app.py").write_text("x")
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "out")  # leads out
    os.symlink(root / "src", root / "alias")  # stays in
    os.symlink("deep", root / "src" / "rel")  # relative, stays in
    return root


INSIDE = [
    "",
    ".",
    "src",
    "src/",
    "./src//app.py",
    "src/app.py",
    "src/missing/new.txt",
    "new-dir/new.txt",
    "src/../src/app.py",
    "alias/app.py",
    "src/rel/x",
    "src/app.py/below-a-file",
]


@pytest.mark.parametrize("user_path", INSIDE)
def test_paths_inside_resolve_as_realpath_does(workspace: Path, user_path: str) -> None:
    expected = Path(os.path.realpath(workspace / user_path))
    assert resolve_within(workspace, user_path, input_name="path") == expected


@pytest.mark.parametrize(
    "user_path",
    ["..", "../x", "src/../../x", "/etc/passwd", "out", "out/secret.txt", "alias/../../x"],
)
def test_paths_leading_out_are_refused_naming_the_input(workspace: Path, user_path: str) -> None:
    with pytest.raises(InputError, match="Invalid input 'targetPath'"):
        resolve_within(workspace, user_path, input_name="targetPath")


def test_a_link_made_after_an_earlier_resolution_is_still_seen(workspace: Path) -> None:
    assert resolve_within(workspace, "later/x", input_name="path") == workspace / "later" / "x"
    os.symlink(workspace.parent.parent / "outside", workspace / "later")
    with pytest.raises(InputError):
        resolve_within(workspace, "later/x", input_name="path")


def test_a_nul_byte_is_refused(workspace: Path) -> None:
    with pytest.raises(InputError, match="NUL"):
        resolve_within(workspace, "a\x00b", input_name="path")
