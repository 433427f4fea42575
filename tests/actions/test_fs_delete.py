from __future__ import annotations

import os
from pathlib import Path

import pytest

from scaffolder.actions.builtin.fs_delete import create_fs_delete_action
from scaffolder.errors import InputError
from tests.actions.conftest import RunAction, tree, write_tree


@pytest.fixture
def files(workspace: Path) -> Path:
    write_tree(
        workspace,
        {
            "file1.txt": "1",
            "file2.txt": "2",
            ".env": "secret",
            ".github/workflows/ci.yml": "ci",
            "docs/index.md": "docs",
            "docs/.nav.yml": "nav",
            "src/main.py": "main",
        },
    )
    return workspace


def test_deletes_listed_files_and_logs_each(run_action: RunAction, files: Path) -> None:
    run = run_action(create_fs_delete_action(), {"files": ["file1.txt", "file2.txt"]})

    assert not (files / "file1.txt").exists()
    assert not (files / "file2.txt").exists()
    assert run.messages == [
        f"File {files}/file1.txt deleted successfully",
        f"File {files}/file2.txt deleted successfully",
    ]


def test_deletes_a_directory_by_name(run_action: RunAction, files: Path) -> None:
    run_action(create_fs_delete_action(), {"files": ["docs"]})

    assert not (files / "docs").exists()
    assert (files / "src/main.py").exists()


def test_missing_path_is_not_an_error(run_action: RunAction, files: Path) -> None:
    assert run_action(create_fs_delete_action(), {"files": ["nope.txt"]}).messages == []


def test_wildcard(run_action: RunAction, files: Path) -> None:
    run_action(create_fs_delete_action(), {"files": ["*.txt"]})

    assert sorted(tree(files)) == [
        ".env",
        ".github/workflows/ci.yml",
        "docs/.nav.yml",
        "docs/index.md",
        "src/main.py",
    ]


def test_wildcards_match_dotfiles(run_action: RunAction, files: Path) -> None:
    run_action(create_fs_delete_action(), {"files": ["docs/*", ".*"]})

    # Like globby, wildcards match files only: `.github/` is not matched by `.*`.
    assert sorted(tree(files)) == [
        ".github/workflows/ci.yml",
        "file1.txt",
        "file2.txt",
        "src/main.py",
    ]


def test_globstar_deletes_every_file(run_action: RunAction, files: Path) -> None:
    run = run_action(create_fs_delete_action(), {"files": ["**"]})

    assert tree(files) == {}
    # Files first at each level, directories in the order they were found (globby's order).
    assert run.messages[:4] == [
        f"File {files}/.env deleted successfully",
        f"File {files}/file1.txt deleted successfully",
        f"File {files}/file2.txt deleted successfully",
        f"File {files}/docs/.nav.yml deleted successfully",
    ]


def test_dot_empties_the_workspace_but_keeps_it(run_action: RunAction, files: Path) -> None:
    run_action(create_fs_delete_action(), {"files": ["."]})

    assert files.is_dir()
    assert list(files.iterdir()) == []


def test_braces_and_character_classes(run_action: RunAction, files: Path) -> None:
    run_action(create_fs_delete_action(), {"files": ["{docs,src}/*.{md,py}", "file[1].txt"]})

    assert sorted(tree(files)) == [".env", ".github/workflows/ci.yml", "docs/.nav.yml", "file2.txt"]


@pytest.mark.parametrize("bad", ["../outside/secret.txt", "/etc/passwd", "docs/../../x", "../*"])
def test_paths_outside_the_workspace_are_refused(
    run_action: RunAction, files: Path, outside: Path, bad: str
) -> None:
    with pytest.raises(InputError, match=r"files\[1\]"):
        run_action(create_fs_delete_action(), {"files": ["file1.txt", bad]})

    assert (outside / "secret.txt").read_text() == "top secret\n"


@pytest.mark.parametrize("through_link", ["link/secret.txt", "link/*", "link"])
def test_symlinks_out_of_the_workspace_are_refused(
    run_action: RunAction, files: Path, outside: Path, through_link: str
) -> None:
    os.symlink(outside, files / "link")

    with pytest.raises(InputError, match=r"Invalid input 'files\[0\]'"):
        run_action(create_fs_delete_action(), {"files": [through_link]})

    assert (outside / "secret.txt").read_text() == "top secret\n"
    assert (files / "link").is_symlink()


def test_wildcards_remove_symlinks_without_following_them(
    run_action: RunAction, files: Path, outside: Path
) -> None:
    os.symlink(outside, files / "docs" / "linked-dir")
    os.symlink(outside / "secret.txt", files / "docs" / "linked-file")

    run_action(create_fs_delete_action(), {"files": ["docs/**"]})

    assert not (files / "docs" / "linked-dir").is_symlink()
    assert not (files / "docs" / "linked-file").is_symlink()
    assert (outside / "secret.txt").read_text() == "top secret\n"


def test_supports_dry_run() -> None:
    assert create_fs_delete_action().supports_dry_run
