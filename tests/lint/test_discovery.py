from __future__ import annotations

from pathlib import Path

from scaffolder.lint.discovery import discover
from tests.lint.conftest import BAD, COOKIECUTTER


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def displays(targets: tuple[object, ...]) -> list[str]:
    return [t.display for t in targets]  # type: ignore[attr-defined]


def test_files_are_sorted_into_the_checks_that_read_them() -> None:
    targets = discover(BAD).targets

    assert displays(targets.cloudformation) == ["infra/service.yaml"]
    assert displays(targets.dockerfiles) == ["Dockerfile"]
    assert displays(targets.workflows) == [".github/workflows/ci.yml"]
    assert displays(targets.catalog) == ["catalog-info.yaml"]
    assert displays(targets.yaml) == [
        ".github/workflows/ci.yml",
        "catalog-info.yaml",
        "config.yaml",
        "infra/service.yaml",
    ]


def test_cloudformation_is_recognised_by_content_anywhere(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "stack.json": '{"AWSTemplateFormatVersion": "2010-09-09", "Resources": {}}',
            "deploy/queue.yml": "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
            "deploy/app.template": "Resources:\n  Q:\n    Type: 'AWS::SQS::Queue'\n",
            "infra/params.json": '[{"ParameterKey": "Env", "ParameterValue": "prod"}]',
            "infra/nested/any.yaml": "Description: taken for a template under infra/\n",
            "compose.yaml": "services:\n  web:\n    image: nginx\n",
        },
    )

    assert displays(discover(tmp_path).targets.cloudformation) == [
        "deploy/app.template",
        "deploy/queue.yml",
        "infra/nested/any.yaml",
        "stack.json",
    ]


def test_dockerfiles_and_catalog_files_by_name_or_content(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Dockerfile": "FROM python\n",
            "Dockerfile.dev": "FROM python\n",
            "docker/worker.Dockerfile": "FROM python\n",
            "prod-catalog-info.yml": "kind: Component\n",
            "template.yaml": "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\n",
            "other.yaml": "apiVersion: v1\nkind: ConfigMap\n",
        },
    )
    targets = discover(tmp_path).targets

    assert displays(targets.dockerfiles) == [
        "Dockerfile",
        "Dockerfile.dev",
        "docker/worker.Dockerfile",
    ]
    assert displays(targets.catalog) == ["prod-catalog-info.yml", "template.yaml"]


def test_cookiecutter_placeholders_are_left_out_when_rendering() -> None:
    found = discover(COOKIECUTTER, find_cookiecutters=True)

    assert found.cookiecutters == (COOKIECUTTER,)
    assert displays(found.targets.dockerfiles) == []
    assert displays(discover(COOKIECUTTER).targets.dockerfiles) == [
        "{{cookiecutter.slug}}/Dockerfile"
    ]
