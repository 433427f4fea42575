from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from scaffolder.cli import main
from tests.lint.conftest import BAD, GOOD


def test_bad_project_prints_one_line_per_finding_and_exits_1() -> None:
    result = CliRunner().invoke(main, ["lint", str(BAD), "--only", "hadolint,catalog"])

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert (
        lines[0]
        == "Dockerfile:1:1: warning hadolint/DL3006 Always tag the version of an image explicitly"
    )
    assert (
        "Dockerfile:3:1: error hadolint/DL3020 Use COPY instead of ADD for files and folders"
        in lines
    )
    assert any(
        line.startswith("catalog-info.yaml:13:3: error catalog/invalid-entity ") for line in lines
    )
    assert lines[-1] == "5 findings (3 errors, 2 warnings, 0 info) in 2 files checked"


def test_good_project_exits_0() -> None:
    result = CliRunner().invoke(main, ["lint", str(GOOD)])

    assert result.exit_code == 0, result.output
    assert result.stdout == "clean: 5 files checked, no findings\n"


def test_warnings_fail_unless_warnings_ok(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text('FROM python\nUSER 10001\nCMD ["python"]\n')

    strict = CliRunner().invoke(main, ["lint", str(tmp_path)])
    relaxed = CliRunner().invoke(main, ["lint", str(tmp_path), "--warnings-ok"])

    assert strict.exit_code == 1
    assert relaxed.exit_code == 0
    assert relaxed.stdout.splitlines()[0].startswith("Dockerfile:1:1: warning hadolint/DL3006 ")


def test_infos_never_fail(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text('FROM python:3.12-slim\nUSER nobody\nCMD ["python"]\n')

    result = CliRunner().invoke(main, ["lint", str(tmp_path)])

    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith("Dockerfile:2:1: info hadolint/DL3066 ")


def test_json_format() -> None:
    result = CliRunner().invoke(main, ["lint", str(BAD), "--only", "yamllint", "--format", "json"])

    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["count"] == 2
    assert body["summary"] == {"error": 1, "warning": 1, "info": 0}
    assert body["findings"][0] == {
        "tool": "yamllint",
        "file": "config.yaml",
        "line": 4,
        "column": 3,
        "level": "error",
        "code": "key-duplicates",
        "message": 'duplication of key "name" in mapping',
    }
    assert set(body["checks"]) == {"yamllint"}


def test_verbose_prints_the_time_of_each_check_to_stderr() -> None:
    result = CliRunner().invoke(
        main, ["lint", str(BAD), "--only", "hadolint,yamllint", "--verbose"]
    )

    timings = result.stderr.splitlines()
    assert [line.split(":")[0] for line in timings] == ["hadolint", "yamllint"]
    assert timings[0].startswith("hadolint: 1 files, ")
    assert timings[0].endswith(" s, 3 findings")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    unknown = CliRunner().invoke(main, ["lint", str(GOOD), "--only", "cfn,tflint"])
    missing = CliRunner().invoke(main, ["lint", str(tmp_path / "nope")])
    a_file = CliRunner().invoke(main, ["lint", str(GOOD / "Dockerfile")])
    bad_format = CliRunner().invoke(main, ["lint", str(GOOD), "--format", "xml"])

    assert [r.exit_code for r in (unknown, missing, a_file, bad_format)] == [2, 2, 2, 2]
    assert "Unknown check 'tflint'" in unknown.stderr
