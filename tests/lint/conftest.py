"""Fixtures for the quality gate tests: the fixture projects, copied where a test may change them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scaffolder.lint import Report, run_lint

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "lint"
GOOD = FIXTURES / "good"
BAD = FIXTURES / "bad"
COOKIECUTTER = FIXTURES / "cookiecutter"


@pytest.fixture(scope="session")
def good_report() -> Report:
    """The whole gate on the good project, with the real tools (run once: cfn-lint is slow)."""
    return run_lint(GOOD)


@pytest.fixture(scope="session")
def bad_report() -> Report:
    """The whole gate on the bad project, with the real tools."""
    return run_lint(BAD)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the bad project a test may change."""
    path = tmp_path / "project"
    shutil.copytree(BAD, path)
    return path


def fake_tool(bin_dir: Path, name: str, script: str) -> None:
    """Put an executable ``name`` running the shell ``script`` into ``bin_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\n{script}\n")
    tool.chmod(0o755)
