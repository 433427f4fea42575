from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from scaffolder.errors import InputError
from scaffolder.lint import INSTALL_HINT, Level, LintOptions, Report, parse_checks, run_lint
from tests.lint.conftest import BAD, COOKIECUTTER, fake_tool


def located(report: Report) -> set[tuple[str, int, str, str]]:
    return {(f.file, f.line, f.tool, f.code) for f in report.findings}


def test_good_project_is_clean(good_report: Report) -> None:
    assert good_report.findings == ()
    assert good_report.failing() == []
    assert good_report.summary() == "clean: 5 files checked, no findings"
    assert {run.check: run.files for run in good_report.runs} == {
        "cfn": 1,
        "hadolint": 1,
        "zizmor": 1,
        "yamllint": 4,
        "catalog": 1,
    }


def test_cfn_lint_reports_template_errors_at_their_lines(bad_report: Report) -> None:
    assert {
        ("infra/service.yaml", 7, "cfn-lint", "E3002"),  # BucketNam
        ("infra/service.yaml", 11, "cfn-lint", "E3012"),  # VisibilityTimeout: soon
    } <= located(bad_report)
    finding = next(f for f in bad_report.findings if f.code == "E3002")
    assert finding.level is Level.ERROR
    assert finding.column == 7
    assert "BucketNam" in finding.message


def test_hadolint_reports_dockerfile_rules_with_their_levels(bad_report: Report) -> None:
    hadolint = {(f.line, f.code, f.level) for f in bad_report.findings if f.tool == "hadolint"}

    assert hadolint == {
        (1, "DL3006", Level.WARNING),  # FROM python, untagged
        (3, "DL3020", Level.ERROR),  # ADD for a local file
        (4, "DL3025", Level.WARNING),  # CMD in shell form
    }


def test_zizmor_reports_workflow_findings(bad_report: Report) -> None:
    zizmor = {(f.file, f.line, f.code, f.level) for f in bad_report.findings if f.tool == "zizmor"}

    assert {
        (".github/workflows/ci.yml", 8, "unpinned-uses", Level.ERROR),
        (".github/workflows/ci.yml", 9, "template-injection", Level.ERROR),
    } <= zizmor
    injection = next(f for f in bad_report.findings if f.code == "template-injection")
    assert injection.column == 24
    assert "attacker-controllable" in injection.message


def test_yamllint_reports_with_the_relaxed_config(bad_report: Report) -> None:
    yamllint = {
        (f.file, f.line, f.code, f.level) for f in bad_report.findings if f.tool == "yamllint"
    }

    # The workflow's `on:` key and the missing `---` are not findings.
    assert yamllint == {
        ("config.yaml", 4, "key-duplicates", Level.ERROR),
        ("config.yaml", 5, "line-length", Level.WARNING),
    }


def test_catalog_entities_are_validated_at_the_field_they_break(bad_report: Report) -> None:
    catalog = [f for f in bad_report.findings if f.tool == "catalog"]

    assert [(f.file, f.line, f.column, f.code) for f in catalog] == [
        ("catalog-info.yaml", 13, 3, "invalid-entity"),  # metadata.name of the 2nd document
        ("catalog-info.yaml", 23, 1, "invalid-entity"),  # spec of the 3rd (API, no definition)
    ]
    assert catalog[0].message.startswith('"metadata.name" is not valid')
    assert "To learn more" not in catalog[0].message
    assert "definition" in catalog[1].message


def test_report_counts_sorts_and_fails(bad_report: Report) -> None:
    findings = list(bad_report.findings)
    assert findings == sorted(findings, key=lambda f: (f.file, f.line, f.column, f.tool, f.code))
    assert bad_report.summary() == "13 findings (8 errors, 5 warnings, 0 info) in 5 files checked"
    assert len(bad_report.failing()) == 13
    assert len(bad_report.failing(warnings_ok=True)) == 8


def test_only_selected_checks_run() -> None:
    report = run_lint(BAD, LintOptions(checks=("hadolint", "catalog")))

    assert {f.tool for f in report.findings} == {"hadolint", "catalog"}
    assert [run.check for run in report.runs] == ["hadolint", "catalog"]


def test_parse_checks_normalises_and_rejects() -> None:
    assert parse_checks(["catalog", " CFN-lint ", ""]) == ("cfn", "catalog")
    with pytest.raises(InputError, match="Unknown check 'tflint'"):
        parse_checks(["tflint"])
    with pytest.raises(InputError, match="No check selected"):
        parse_checks([" "])


def test_project_yamllint_config_replaces_the_default(project: Path) -> None:
    (project / ".yamllint").write_text("extends: default\nrules:\n  key-duplicates: disable\n")

    report = run_lint(project, LintOptions(checks=("yamllint",)))

    codes = {(f.file, f.code) for f in report.findings}
    assert ("config.yaml", "key-duplicates") not in codes
    assert ("config.yaml", "document-start") in codes  # the default preset wants `---`
    assert (".github/workflows/ci.yml", "truthy") in codes


def test_project_yamllint_ignore_from_file_is_read_from_the_project(project: Path) -> None:
    (project / ".yamllint").write_text("extends: relaxed\nignore-from-file: .lintignore\n")
    (project / ".lintignore").write_text("config.yaml\n")

    report = run_lint(project, LintOptions(checks=("yamllint",)))

    assert report.findings == ()


def test_invalid_project_yamllint_config_is_an_error(project: Path) -> None:
    (project / ".yamllint").write_text("rules: [nonsense]\n")

    report = run_lint(project, LintOptions(checks=("yamllint",)))

    assert [(f.tool, f.code, f.level) for f in report.findings] == [
        ("yamllint", "config", Level.ERROR)
    ]


def test_a_missing_tool_is_an_error_finding_saying_how_to_install_it(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setattr(sys, "executable", str(empty / "python"))
    monkeypatch.setenv("PATH", str(empty))

    report = run_lint(project, LintOptions(checks=("hadolint", "zizmor")))

    assert [f.to_text() for f in report.findings] == [
        f".:0:0: error hadolint/not-installed hadolint is not installed; run: {INSTALL_HINT}",
        f".:0:0: error zizmor/not-installed zizmor is not installed; run: {INSTALL_HINT}",
    ]


def test_a_missing_tool_with_nothing_to_check_is_not_a_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "README.md").write_text("# nothing to lint\n")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))

    report = run_lint(tmp_path)

    assert report.findings == ()
    assert report.files == 0


def test_a_tool_that_runs_too_long_is_stopped_and_reported(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "hadolint", "exec sleep 30")
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))

    started = time.monotonic()
    report = run_lint(project, LintOptions(checks=("hadolint",), timeout=1))

    assert time.monotonic() - started < 10
    assert [(f.tool, f.code, f.level) for f in report.findings] == [
        ("hadolint", "timeout", Level.ERROR)
    ]
    assert "did not finish within 1 s" in report.findings[0].message


def test_a_tool_that_fails_is_reported_with_its_stderr(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "zizmor", "echo 'fatal: no audit for you' >&2; exit 1")
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))

    report = run_lint(project, LintOptions(checks=("zizmor",)))

    assert [(f.tool, f.code) for f in report.findings] == [("zizmor", "failed")]
    assert "fatal: no audit for you" in report.findings[0].message


def test_linters_get_no_credentials_from_the_environment(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    seen = tmp_path / "env.txt"
    fake_tool(bin_dir, "hadolint", f"env > {seen}; echo '[]'")
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_s3cr3t")

    report = run_lint(project, LintOptions(checks=("hadolint",)))

    assert report.findings == ()
    env = seen.read_text()
    assert "s3cr3t" not in env
    assert f"PATH={os.environ['PATH']}" in env


def test_cookiecutter_is_rendered_with_its_defaults_and_reported_in_template_paths() -> None:
    report = run_lint(COOKIECUTTER)

    # Unrendered, the Dockerfile's `FROM python:{{ ... }}` and the catalog file's
    # `name: {{ cookiecutter.slug }}` are not valid; rendered, only the real problem is left.
    assert [f.to_text() for f in report.findings] == [
        "{{cookiecutter.slug}}/Dockerfile:3:1: error hadolint/DL3020 "
        "Use COPY instead of ADD for files and folders"
    ]
    assert report.runs[0].check == "render"


def test_cookiecutter_sources_are_checked_as_they_are_without_rendering() -> None:
    report = run_lint(COOKIECUTTER, LintOptions(render=False, checks=("hadolint", "catalog")))

    assert {(f.file, f.code) for f in report.findings} == {
        ("{{cookiecutter.slug}}/Dockerfile", "DL1000"),
        ("{{cookiecutter.slug}}/catalog-info.yaml", "yaml-syntax"),
    }


def test_nested_cookiecutters_are_found_and_rendered(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(COOKIECUTTER, tmp_path / "templates" / "web" / "cookiecutter")

    report = run_lint(tmp_path, LintOptions(checks=("hadolint",)))

    assert [(f.file, f.line, f.code) for f in report.findings] == [
        ("templates/web/cookiecutter/{{cookiecutter.slug}}/Dockerfile", 3, "DL3020")
    ]


def test_cookiecutter_that_cannot_render_is_an_error_and_hooks_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "hook-ran"
    template = tmp_path / "template"
    (template / "hooks").mkdir(parents=True)
    (template / "{{cookiecutter.slug}}").mkdir()
    (template / "{{cookiecutter.slug}}" / "Dockerfile").write_text("FROM python\n")
    (template / "hooks" / "pre_gen_project.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (template / "cookiecutter.json").write_text('{"slug": "svc"}')

    ok = run_lint(template, LintOptions(checks=("hadolint",)))
    assert [f.code for f in ok.findings] == ["DL3006"]
    assert not marker.exists()

    (template / "cookiecutter.json").write_text('{"slug": "{{ cookiecutter.missing }}"}')
    broken = run_lint(template, LintOptions(checks=("hadolint",)))

    [finding] = broken.findings
    assert (finding.file, finding.tool, finding.code, finding.level) == (
        "cookiecutter.json",
        "cookiecutter",
        "render",
        Level.ERROR,
    )
    assert "missing" in finding.message
    assert not marker.exists()


def test_skipped_directories_and_symlinks_are_not_checked(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Dockerfile").write_text("FROM python\n")
    root = tmp_path / "root"
    for skipped in (".git", "node_modules", ".venv"):
        (root / skipped).mkdir(parents=True)
        (root / skipped / "Dockerfile").write_text("FROM python\n")
    (root / "Dockerfile").symlink_to(outside / "Dockerfile")
    (root / "linked").symlink_to(outside)

    report = run_lint(root, LintOptions(checks=("hadolint",)))

    assert report.findings == ()
    assert report.files == 0


def test_catalog_finding_points_at_an_unknown_root_field(tmp_path: Path) -> None:
    (tmp_path / "catalog-info.yaml").write_text(
        "# the service\n"
        "apiVersion: backstage.io/v1alpha1\n"
        "kind: Component\n"
        "metadata:\n"
        "  name: ok\n"
        "extra: true\n"
        "spec: {type: service, lifecycle: production, owner: team}\n"
        "---\n"
        "- not\n"
        "- an entity\n"
    )

    report = run_lint(tmp_path, LintOptions(checks=("catalog",)))

    assert [(f.line, f.column, f.message) for f in report.findings] == [
        (6, 1, "Unknown field extra"),
        (9, 1, "Expected object at root, got list"),
    ]


def test_catalog_syntax_error_is_reported_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "catalog-info.yaml").write_text("kind: Component\nmetadata:\n  name: [x\n")

    report = run_lint(tmp_path, LintOptions(checks=("catalog",)))

    [finding] = report.findings
    assert (finding.code, finding.level, finding.line) == ("yaml-syntax", Level.ERROR, 4)


def test_yamllint_default_flags_truthy_values_but_not_keys(tmp_path: Path) -> None:
    (tmp_path / "settings.yml").write_text("on:\n  push: {}\nenabled: yes\nlegacy: off\n")

    report = run_lint(tmp_path, LintOptions(checks=("yamllint",)))

    assert [(f.line, f.code, f.level) for f in report.findings] == [
        (3, "truthy", Level.WARNING),
        (4, "truthy", Level.WARNING),
    ]


def test_cookiecutter_renders_in_the_jinja_sandbox(tmp_path: Path) -> None:
    template = tmp_path / "template"
    (template / "{{cookiecutter.slug}}").mkdir(parents=True)
    (template / "{{cookiecutter.slug}}" / "config.yaml").write_text(
        "x: {{ ''.__class__.__mro__[1].__subclasses__() }}\n"
    )
    (template / "cookiecutter.json").write_text('{"slug": "svc"}')

    report = run_lint(template, LintOptions(checks=("yamllint",)))

    [finding] = report.findings
    assert (finding.tool, finding.code) == ("cookiecutter", "render")
    assert "SecurityError" in finding.message
