"""The `scaffolder` command, driven through click with the real services underneath."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from scaffolder.catalog.ingestion import read_entities
from scaffolder.catalog.validation import validate_entity
from scaffolder.cli import main
from tests.conftest import FIXTURE_TEMPLATES, REPO


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "app-config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "backend": {
                    "database": {"connection": f"sqlite:///{tmp_path / 'db.sqlite'}"},
                    "workingDirectory": str(tmp_path / "work"),
                },
                "catalog": {
                    "locations": [
                        {"type": "file", "target": f"{FIXTURE_TEMPLATES}/*/template.yaml"},
                        {"type": "file", "target": f"{REPO}/examples/*/template.yaml"},
                    ]
                },
            }
        )
    )
    return path


def test_run_prints_log_and_output_and_exits_zero(config: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--config",
            str(config),
            "template:default/hello-template",
            "-v",
            "name=cli-svc",
            "-v",
            "port=9000",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Starting up task with 4 steps" in result.output
    assert "Run completed with status: completed" in result.output
    assert "link: Fake repo http://127.0.0.1/repos/cli-svc" in result.output
    assert "APP_PORT=9000" in result.output


def test_run_exits_nonzero_on_failure_and_on_bad_values(config: Path, tmp_path: Path) -> None:
    bad = CliRunner().invoke(
        main,
        ["run", "--config", str(config), "template:default/hello-template", "-v", "name=Bad Name"],
    )
    assert bad.exit_code == 2
    assert "instance.name does not match pattern" in bad.output
    values = tmp_path / "values.yaml"
    values.write_text("seconds: 0\n")
    ok = CliRunner().invoke(
        main,
        ["run", "--config", str(config), "template:default/slow-template", "--values", str(values)],
    )
    assert ok.exit_code == 0, ok.output


def test_dry_run_writes_files(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "dry-run",
            "--config",
            str(config),
            str(REPO / "examples/hello-service/template.yaml"),
            "-v",
            "name=dry-svc",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "README.md").read_text().startswith("# dry-svc\n")
    assert "PORT = 8080" in (out / "src/app.py").read_text()
    assert "Rendered dry-svc" in result.output


def test_templates_and_actions_list(config: Path) -> None:
    templates = CliRunner().invoke(main, ["templates", "list", "--config", str(config)])
    assert "template:default/hello-service" in templates.output
    assert "template:default/slow-template" in templates.output
    actions = CliRunner().invoke(main, ["actions", "list", "--config", str(config)])
    ids = [line.split("\t")[0] for line in actions.output.splitlines()]
    assert ids == sorted(ids)
    assert "catalog:write" in ids
    assert "fetch:template\t" in actions.output


def test_db_upgrade(config: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 0
    assert (tmp_path / "db.sqlite").exists()


def test_own_catalog_info_is_valid() -> None:
    entities = read_entities(REPO / "catalog-info.yaml")
    assert [e["kind"] for e in entities] == ["Component", "API"]
    for entity in entities:
        validate_entity(entity)
    assert entities[0]["spec"]["providesApis"] == ["scaffolder-api"]
