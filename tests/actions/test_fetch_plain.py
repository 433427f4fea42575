from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from scaffolder.actions.builtin.fetch_plain import create_fetch_plain_action
from scaffolder.actions.builtin.fetch_plain_file import create_fetch_plain_file_action
from scaffolder.errors import InputError
from tests.actions.conftest import RunAction, tree, write_tree


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    path = tmp_path / "template"
    write_tree(
        path,
        {
            "template.yaml": "kind: Template\n",
            "content/README.md": "# ${{ values.name }}\n",
            "content/.hidden": "h",
            "content/bin/run.sh": "#!/bin/sh\n",
            "content/nested/deep/file.txt": "deep",
            "single.txt": "one file",
        },
    )
    os.chmod(path / "content/bin/run.sh", 0o755)
    return path


@pytest.fixture
def info(template_dir: Path) -> dict[str, str]:
    return {"baseUrl": f"file://{template_dir}/template.yaml"}


def test_copies_the_tree_verbatim(
    run_action: RunAction, workspace: Path, info: dict[str, str]
) -> None:
    run = run_action(create_fetch_plain_action(), {"url": "./content"}, template_info=info)

    assert run.messages == ["Fetching plain content from remote URL"]
    assert tree(workspace) == {
        ".hidden": "h",
        "README.md": "# ${{ values.name }}\n",
        "bin/run.sh": "#!/bin/sh\n",
        "nested/deep/file.txt": "deep",
    }
    assert stat.S_IMODE((workspace / "bin/run.sh").stat().st_mode) == 0o755


def test_target_path_and_overwrite(
    run_action: RunAction, workspace: Path, info: dict[str, str]
) -> None:
    write_tree(workspace, {"out/README.md": "old", "out/mine.txt": "kept"})

    run_action(
        create_fetch_plain_action(), {"url": "./content", "targetPath": "out"}, template_info=info
    )

    assert tree(workspace)["out/README.md"] == "# ${{ values.name }}\n"
    assert tree(workspace)["out/mine.txt"] == "kept"


@pytest.mark.parametrize("bad", ["../escape", "/tmp/escape", "link"])
def test_target_path_stays_inside(
    run_action: RunAction, workspace: Path, outside: Path, info: dict[str, str], bad: str
) -> None:
    os.symlink(outside, workspace / "link")

    with pytest.raises(InputError, match="Invalid input 'targetPath'"):
        run_action(
            create_fetch_plain_action(), {"url": "./content", "targetPath": bad}, template_info=info
        )

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_existing_symlink_in_the_workspace_is_not_written_through(
    run_action: RunAction, workspace: Path, outside: Path, info: dict[str, str]
) -> None:
    os.symlink(outside, workspace / "nested")

    with pytest.raises(InputError, match="outside the workspace"):
        run_action(create_fetch_plain_action(), {"url": "./content"}, template_info=info)

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_symlinks_out_of_the_source_are_not_copied(
    run_action: RunAction, workspace: Path, outside: Path, template_dir: Path, info: dict[str, str]
) -> None:
    os.symlink(outside / "secret.txt", template_dir / "content" / "leak.txt")
    os.symlink(outside, template_dir / "content" / "leakdir")
    os.symlink("README.md", template_dir / "content" / "readme-link")

    run = run_action(create_fetch_plain_action(), {"url": "./content"}, template_info=info)

    assert not (workspace / "leak.txt").exists()
    assert not (workspace / "leak.txt").is_symlink()
    assert not (workspace / "leakdir").is_symlink()
    assert os.readlink(workspace / "readme-link") == "README.md"
    assert "Skipping symbolic link leak.txt: it points outside the template." in run.messages


def test_url_outside_the_template_dir(run_action: RunAction, info: dict[str, str]) -> None:
    with pytest.raises(InputError, match="Invalid input 'url'"):
        run_action(create_fetch_plain_action(), {"url": "../../"}, template_info=info)


def test_absolute_url(run_action: RunAction, info: dict[str, str]) -> None:
    with pytest.raises(InputError, match=r"^No integration found for location https://x/y$"):
        run_action(create_fetch_plain_action(), {"url": "https://x/y"}, template_info=info)


def test_no_template_location(run_action: RunAction) -> None:
    with pytest.raises(InputError, match="template location could not be determined"):
        run_action(create_fetch_plain_action(), {"url": "./content"})


def test_plain_file(run_action: RunAction, workspace: Path, info: dict[str, str]) -> None:
    run = run_action(
        create_fetch_plain_file_action(),
        {"url": "./content/bin/run.sh", "targetPath": "scripts/run.sh"},
        template_info=info,
    )

    assert run.messages == ["Fetching plain content from remote URL"]
    assert (workspace / "scripts/run.sh").read_text() == "#!/bin/sh\n"
    assert stat.S_IMODE((workspace / "scripts/run.sh").stat().st_mode) == 0o755


@pytest.mark.parametrize(
    ("url", "target", "named"),
    [
        ("./single.txt", "../x.txt", "targetPath"),
        ("./single.txt", "link/x.txt", "targetPath"),
        ("../../outside/secret.txt", "x.txt", "url"),
    ],
)
def test_plain_file_paths_stay_inside(
    run_action: RunAction,
    workspace: Path,
    outside: Path,
    info: dict[str, str],
    url: str,
    target: str,
    named: str,
) -> None:
    os.symlink(outside, workspace / "link")

    with pytest.raises(InputError, match=f"Invalid input '{named}'"):
        run_action(
            create_fetch_plain_file_action(), {"url": url, "targetPath": target}, template_info=info
        )

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert not (workspace / "x.txt").exists()
