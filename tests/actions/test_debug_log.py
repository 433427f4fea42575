from __future__ import annotations

import os
from pathlib import Path

from scaffolder.actions.builtin.debug_log import create_debug_log_action
from tests.actions.conftest import RunAction, write_tree


def test_logs_input_json_then_message(run_action: RunAction) -> None:
    run = run_action(create_debug_log_action(), {"message": "Scaffolding svc-one (python)"})

    assert run.lines == [
        '\x1b[32minfo\x1b[39m: {\n  "message": "Scaffolding svc-one (python)"\n}',
        "\x1b[32minfo\x1b[39m: Scaffolding svc-one (python)",
    ]


def test_empty_input_logs_only_the_json(run_action: RunAction) -> None:
    assert run_action(create_debug_log_action(), {}).messages == ["{}"]


def test_empty_message_is_not_logged(run_action: RunAction) -> None:
    assert run_action(create_debug_log_action(), {"message": ""}).messages == [
        '{\n  "message": ""\n}'
    ]


def test_json_keeps_input_order_and_unicode(run_action: RunAction) -> None:
    run = run_action(create_debug_log_action(), {"message": "héllo", "listWorkspace": False})

    assert run.messages[0] == '{\n  "message": "héllo",\n  "listWorkspace": false\n}'


def test_list_workspace_with_filenames(run_action: RunAction, workspace: Path) -> None:
    write_tree(workspace, {"b.txt": "b", "a/x.txt": "x", "a-b": "", ".hidden": "h"})

    run = run_action(create_debug_log_action(), {"listWorkspace": True})

    # Names sorted per directory, each directory expanded in place (recursiveReadDir).
    assert run.messages[-1] == "Workspace:\n  - .hidden\n  - a/x.txt\n  - a-b\n  - b.txt"


def test_list_workspace_with_filenames_string(run_action: RunAction, workspace: Path) -> None:
    write_tree(workspace, {"f": "x"})

    run = run_action(create_debug_log_action(), {"listWorkspace": "with-filenames"})

    assert run.messages[-1] == "Workspace:\n  - f"


def test_list_empty_workspace(run_action: RunAction) -> None:
    assert run_action(create_debug_log_action(), {"listWorkspace": True}).messages[-1] == (
        "Workspace:\n"
    )


def test_with_contents_format(run_action: RunAction, workspace: Path) -> None:
    write_tree(workspace, {"README.md": "# x\n", "docs/index.md": "docs\n", "setup.cfg": "[m]\n"})

    run = run_action(create_debug_log_action(), {"listWorkspace": "with-contents"})

    assert run.messages == [
        '{\n  "listWorkspace": "with-contents"\n}',
        "Workspace:\n - README.md:\n\n  # x\n\n - docs/index.md:\n\n  docs\n\n"
        " - setup.cfg:\n\n  [m]\n",
    ]


def test_with_contents_does_not_read_through_symlinks_out_of_the_workspace(
    run_action: RunAction, workspace: Path, outside: Path
) -> None:
    os.symlink(outside / "secret.txt", workspace / "leak")
    os.symlink(outside, workspace / "leakdir")
    write_tree(workspace, {"ok.txt": "fine"})

    run = run_action(create_debug_log_action(), {"listWorkspace": "with-contents"})

    listing = run.messages[-1]
    assert "top secret" not in listing
    assert " - leak:\n\n  " in listing
    assert " - leakdir:\n\n  " in listing
    assert " - ok.txt:\n\n  fine" in listing


def test_with_contents_reads_symlinks_inside_the_workspace(
    run_action: RunAction, workspace: Path
) -> None:
    write_tree(workspace, {"real.txt": "real"})
    os.symlink("real.txt", workspace / "link.txt")

    listing = run_action(create_debug_log_action(), {"listWorkspace": "with-contents"}).messages[-1]

    assert " - link.txt:\n\n  real" in listing


def test_supports_dry_run() -> None:
    action = create_debug_log_action()
    assert action.supports_dry_run
    assert action.description == (
        "Writes a message into the log and/or lists all files in the workspace."
    )
