"""Rendering a cookiecutter with its defaults, so that the gate checks what it generates.

A cookiecutter's files are Jinja templates (``name: {{ cookiecutter.name }}``), which no linter
can read as YAML, Dockerfile or CloudFormation. The gate renders the template with the
defaults from ``cookiecutter.json`` and checks the result instead.

Rendering runs in a child Python process (``python -P -m scaffolder.lint.render TEMPLATE
OUT``): cookiecutter changes the working directory while it renders, which threads of a server
must never see, and the child can be killed at the timeout. Hooks never run, and the template
directory is not put on ``sys.path``, so ``local_extensions`` cannot import code from it.
Templates render in Jinja's sandbox with cookiecutter's own extensions only, since the
action may render a template nobody reviewed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from scaffolder.lint.discovery import COOKIECUTTER_JSON, is_templated_dir
from scaffolder.lint.external import ToolContext, ToolFailure, failed, run_process


def render_defaults(template: Path, output: Path, ctx: ToolContext) -> tuple[Path, str]:
    """Render ``template`` with its defaults into ``output``.

    Returns:
        The rendered project directory, and the name of the template directory it was
        rendered from (``{{cookiecutter.slug}}``), under which findings in it are reported.

    Raises:
        ToolFailure: the template cannot be rendered with its defaults.
    """
    argv = [sys.executable, "-P", "-m", __name__, str(template), str(output)]
    status, stdout, stderr = run_process("cookiecutter", argv, ctx)
    if status:
        raise ToolFailure("render", f"cannot render with the defaults: {_last_line(stderr)}")
    try:
        project = Path(json.loads(stdout)["project"])
    except (ValueError, KeyError, TypeError):
        raise failed("cookiecutter", status, stderr or stdout) from None
    return project, _template_dir_name(template, project)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _template_dir_name(template: Path, project: Path) -> str:
    # cookiecutter renders the one top-level directory whose name is a placeholder; prefer
    # the one naming `cookiecutter`, as its `find_template` does.
    candidates = sorted(
        p.name for p in template.iterdir() if p.is_dir() and is_templated_dir(p.name)
    )
    preferred = [name for name in candidates if "cookiecutter" in name]
    return (preferred or candidates or [project.name])[0]


def _sandbox_cookiecutter() -> None:
    # Only in the child: cookiecutter's own environment is a plain Jinja one, in which a
    # template can reach Python internals (`''.__class__.__mro__`); swap in the sandbox, with
    # cookiecutter's default extensions only (`_extensions` would import arbitrary modules).
    import cookiecutter.generate  # type: ignore[import-untyped]
    import cookiecutter.prompt  # type: ignore[import-untyped]
    from cookiecutter.environment import ExtensionLoaderMixin  # type: ignore[import-untyped]
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    class SandboxedStrictEnvironment(ExtensionLoaderMixin, SandboxedEnvironment):  # type: ignore[misc]
        def _read_extensions(self, context: dict[str, Any]) -> list[str]:
            return []

    def create_env(context: dict[str, Any]) -> SandboxedEnvironment:
        env_vars = context.get("cookiecutter", {}).get("_jinja2_env_vars", {})
        return SandboxedStrictEnvironment(
            context=context, keep_trailing_newline=True, undefined=StrictUndefined, **env_vars
        )

    cookiecutter.generate.create_env_with_context = create_env
    cookiecutter.prompt.create_env_with_context = create_env


def _render(template: Path, output: Path) -> str:
    _sandbox_cookiecutter()
    from cookiecutter.generate import generate_context, generate_files
    from cookiecutter.prompt import prompt_for_config

    context: dict[str, Any] = generate_context(context_file=str(template / COOKIECUTTER_JSON))
    values = context["cookiecutter"]
    if {"template", "templates"} & set(values):
        raise ValueError("nested templates (a `templates` key) are not supported")
    context["_cookiecutter"] = {k: v for k, v in values.items() if not k.startswith("_")}
    values.update(prompt_for_config(context, no_input=True))
    values.update(
        _template=str(template), _output_dir=str(output), _repo_dir=str(template), _checkout=None
    )
    project: str = generate_files(
        repo_dir=str(template), context=context, output_dir=str(output), accept_hooks=False
    )
    return project


def main(argv: list[str]) -> int:
    """Entry point of the child process: render, print ``{"project": path}``."""
    template, output = Path(argv[1]), Path(argv[2])
    try:
        project = _render(template, output)
    except Exception as exc:  # any template error: reported to the parent on stderr
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"project": project}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
