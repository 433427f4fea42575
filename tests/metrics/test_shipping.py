"""The image and the ECS example: they lint clean and the image's config is safe by default."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scaffolder.server import check_listen_policy
from scaffolder.settings import load_settings
from tests.conftest import REPO

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_tool("hadolint"), str(REPO / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ecs_example_passes_cfn_lint() -> None:
    result = subprocess.run(
        [_tool("cfn-lint"), str(REPO / "deploy/ecs/service.yaml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_config_needs_tokens_and_may_listen_everywhere() -> None:
    config = REPO / "deploy/app-config.production.yaml"
    bare = load_settings([config], environ={})
    assert bare.host == "0.0.0.0"
    assert not bare.auth_disabled
    assert bare.static_tokens == ()
    assert bare.backstage_identity is None
    check_listen_policy(bare, bare.host)
    configured = load_settings(
        [config],
        environ={
            "SCAFFOLDER_STATIC_TOKEN": "0123456789abcdef",
            "BACKSTAGE_BASE_URL": "https://backstage.example.com",
            "SCAFFOLDER_DATABASE_URL": "postgresql+psycopg://scaffolder:pw@db:5432/scaffolder",
        },
    )
    assert configured.static_tokens[0].plugins == ("scaffolder", "catalog")
    assert configured.backstage_identity is not None
    assert configured.database_url.startswith("postgresql+psycopg://")
    assert configured.trusted_templates == ("/app/cookiecutters",)
