"""One cookiecutter render, as it runs inside a pool child (stdlib, Jinja and cookiecutter
only, so the fork server stays lean).

This is cookiecutter 2.7's ``cookiecutter()`` with ``no_input``, rebuilt from its own parts
(`StrictEnvironment`, `render_variable`, `find_template`, `is_copy_only_path`, its hooks and
replay; the context is built in `cookiecutter_context`) so that three things hold that the
library alone does not promise:

* **Values are data.** A value the task passes is never parsed as Jinja. cookiecutter renders
  every string of the context while "prompting" (``extra_context`` included), and renders
  paths that already hold rendered values; here only text written by the template author
  (``cookiecutter.json`` defaults, file and directory names relative to the template, file
  contents, hook scripts) is ever handed to Jinja, and user values only enter as variables.
* **Output stays put.** Every rendered path is checked to stay inside the project directory.
* **Errors say where.** Template errors name the template file and line.

Untrusted templates render in Jinja's sandbox, with cookiecutter's own extensions only and no
hooks; `run` enforces that whatever the caller checked before.
"""

from __future__ import annotations

import os
import shutil
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from binaryornot.check import is_binary
from cookiecutter.exceptions import (  # type: ignore[import-untyped]
    FailedHookException,
    NonTemplatedInputDirException,
)
from cookiecutter.find import find_template  # type: ignore[import-untyped]
from cookiecutter.generate import is_copy_only_path  # type: ignore[import-untyped]
from cookiecutter.hooks import (  # type: ignore[import-untyped]
    run_hook_from_repo_dir,
    run_pre_prompt_hook,
    valid_hook,
)
from cookiecutter.replay import dump as dump_replay  # type: ignore[import-untyped]

from scaffolder.integrations.cookiecutter_context import (
    CONTEXT_FILE,
    RenderError,
    as_data,
    build_context,
    controls,
    environment,
    load_context_file,
    reason,
)

__all__ = ["RenderError", "run"]

HOOKS = ("pre_prompt", "pre_gen_project", "post_gen_project")


#: Name of the project directory for a skeleton with no cookiecutter.json, as upstream
#: Backstage names it (``{{cookiecutter and 'contents'}}``).
SKELETON_PROJECT_DIR = "contents"

Log = Callable[[str], None]


def run(job: Mapping[str, Any], log: Log) -> dict[str, Any]:
    """Render one job; return ``{"project_dir": ..., "files": n}``.

    ``job`` keys: ``template_dir`` (the fetched directory), ``layout`` (``cookiecutter`` when it
    holds a cookiecutter.json, else ``skeleton``), ``output_dir``, ``values``,
    ``copy_without_render``, ``extensions``, ``trusted``, ``source``, ``trust_hint``,
    ``template``, ``checkout``, ``replay_dir``.

    Raises:
        RenderError: anything the task log should show.
    """
    template_dir = os.path.abspath(job["template_dir"])
    trusted = bool(job["trusted"])
    values: dict[str, Any] = dict(job["values"])
    standard = job["layout"] == "cookiecutter"

    repo_dir = template_dir
    raw: dict[str, Any] = {}
    if standard:
        hooks = _hook_files(repo_dir)
        if hooks and not trusted:
            raise RenderError(
                f"Template {job['source']} has hooks ({', '.join(hooks)}), which run only for "
                f"trusted templates. {job['trust_hint']}"
            )
        if trusted:
            sys.path.append(repo_dir)  # cookiecutter lets a template import its own modules
            if any(h.startswith("hooks/pre_prompt.") for h in hooks):
                log("Running hook pre_prompt")
                try:
                    repo_dir = str(run_pre_prompt_hook(repo_dir))
                except FailedHookException as exc:
                    raise RenderError(f"Hook pre_prompt failed: {_hook_reason(exc)}") from exc
        raw = load_context_file(repo_dir, job["source"])
        if "template" in raw or "templates" in raw:
            raise RenderError(
                f"{CONTEXT_FILE} of {job['source']} selects nested templates, which "
                "fetch:cookiecutter does not support: point url at the nested template"
            )

    private = controls(raw, values, job)
    env = environment(private, trusted=trusted, hint=job["trust_hint"], source=job["source"])
    cookiecutter = build_context(env, raw, values, repo_dir if standard else None)
    cookiecutter.update(private)
    cookiecutter["_template"] = job["template"]
    cookiecutter["_output_dir"] = os.path.abspath(job["output_dir"])
    cookiecutter["_repo_dir"] = repo_dir
    cookiecutter["_checkout"] = job.get("checkout")
    merged = {**raw, **{k: v for k, v in values.items() if k not in raw}}
    context: dict[str, Any] = {
        "cookiecutter": cookiecutter,
        "_cookiecutter": {
            k: as_data(values[k]) if k in values else v
            for k, v in merged.items()
            if not k.startswith("_")
        },
    }
    dump_replay(job["replay_dir"], os.path.basename(repo_dir), context)

    if standard:
        try:
            project_template = str(find_template(repo_dir, env))
        except NonTemplatedInputDirException:
            raise RenderError(
                f"No project template in {job['source']}: it needs a directory named like "
                "{{cookiecutter.slug}} beside its cookiecutter.json"
            ) from None
        generator = _Generator(
            env, context, display_root=repo_dir, hooks_dir=repo_dir if trusted else None, log=log
        )
        project_dir = generator.generate(project_template, job["output_dir"])
    else:
        generator = _Generator(env, context, display_root=template_dir, hooks_dir=None, log=log)
        project_dir = generator.generate(
            template_dir, job["output_dir"], project_name=SKELETON_PROJECT_DIR
        )
    return {"project_dir": project_dir, "files": generator.files}


# --- generation -----------------------------------------------------------------------------


class _Generator:
    """cookiecutter's ``generate_files``, rendering only template text and confining output."""

    def __init__(
        self,
        env: jinja2.Environment,
        context: dict[str, Any],
        *,
        display_root: str,
        hooks_dir: str | None,
        log: Log,
    ) -> None:
        self.env = env
        self.context = context
        self.display_root = display_root
        self.hooks_dir = hooks_dir
        self.log = log
        self.files = 0
        self.new_lines = context["cookiecutter"].get("_new_lines") or None

    def generate(
        self, template_dir: str, output_dir: str, *, project_name: str | None = None
    ) -> str:
        unrendered = os.path.basename(template_dir)
        name = project_name or self._render_path(unrendered, template_dir)
        if not name or name in (".", "..") or "/" in name or os.sep in name or "\x00" in name:
            raise RenderError(
                f"The project directory {unrendered} renders to {name!r}, which is not a "
                "directory name"
            )
        project_dir = os.path.join(os.path.abspath(output_dir), name)
        os.makedirs(project_dir)
        self._hook("pre_gen_project", project_dir)
        search = [template_dir]
        if project_name is None:  # cookiecutter also looks in <repo>/templates
            search.append(os.path.join(os.path.dirname(template_dir), "templates"))
        self.env.loader = jinja2.FileSystemLoader(search)
        for root, dirs, files in os.walk(template_dir):
            rel_root = os.path.relpath(root, template_dir)
            render_dirs: list[str] = []
            for name_ in sorted(dirs):
                rel = os.path.normpath(os.path.join(rel_root, name_))
                if is_copy_only_path(rel, self.context):
                    dest = self._destination(project_dir, rel, template_dir)
                    if dest is not None:
                        if os.path.isdir(dest):
                            shutil.rmtree(dest)
                        shutil.copytree(os.path.join(template_dir, rel), dest)
                        self.files += sum(len(f) for _, _, f in os.walk(dest))
                else:
                    render_dirs.append(name_)
                    dest = self._destination(project_dir, rel, template_dir)
                    if dest is not None:
                        os.makedirs(dest, exist_ok=True)
            dirs[:] = render_dirs
            for name_ in sorted(files):
                rel = os.path.normpath(os.path.join(rel_root, name_))
                dest = self._destination(project_dir, rel, template_dir)
                if dest is None or os.path.isdir(dest):
                    continue
                source = os.path.join(template_dir, rel)
                if is_copy_only_path(rel, self.context) or is_binary(source):
                    shutil.copyfile(source, dest)
                else:
                    self._render_file(rel, source, dest)
                shutil.copymode(source, dest)
                self.files += 1
        self._hook("post_gen_project", project_dir)
        return project_dir

    def _destination(self, project_dir: str, rel: str, template_dir: str) -> str | None:
        """Where ``rel`` renders to, or None when its name renders empty (a conditional
        file or directory)."""
        rendered = self._render_path(rel, os.path.join(template_dir, rel))
        if rendered == "" or rendered.startswith("/") or "//" in rendered or rendered.endswith("/"):
            return None
        normal = os.path.normpath(rendered)
        if (
            os.path.isabs(normal)
            or normal == ".."
            or normal.startswith(".." + os.sep)
            or "\x00" in normal
        ):
            raise RenderError(
                f"The path {self._display(os.path.join(template_dir, rel))} renders to "
                f"{rendered!r}, which leads outside the project directory"
            )
        return os.path.join(project_dir, normal)

    def _render_path(self, text: str, path: str) -> str:
        try:
            return str(self.env.from_string(text).render(**self.context))
        except jinja2.TemplateError as exc:
            raise RenderError(
                f"Template error in the name {self._display(path)}: {reason(exc)}"
            ) from None

    def _render_file(self, rel: str, source: str, dest: str) -> None:
        try:
            template = self.env.get_template(rel.replace(os.sep, "/"))
            text = template.render(**self.context)
        except jinja2.TemplateError as exc:
            raise RenderError(self._located(exc, source)) from None
        except UnicodeDecodeError:
            raise RenderError(
                f"Cannot render {self._display(source)}: it is not UTF-8 text (list it in "
                "_copy_without_render to copy it as is)"
            ) from None
        newline = self.new_lines
        if newline is None:
            with open(source, encoding="utf-8") as handle:
                handle.readline()
                found = handle.newlines
            newline = found[0] if isinstance(found, tuple) else found
        with open(dest, "w", encoding="utf-8", newline=newline) as handle:
            handle.write(text)

    def _hook(self, hook: str, project_dir: str) -> None:
        if self.hooks_dir is None or not any(
            h.startswith(f"hooks/{hook}.") for h in _hook_files(self.hooks_dir)
        ):
            return
        self.log(f"Running hook {hook}")
        try:
            run_hook_from_repo_dir(self.hooks_dir, hook, project_dir, self.context, True)
        except FailedHookException as exc:
            raise RenderError(f"Hook {hook} failed: {_hook_reason(exc)}") from None
        except jinja2.TemplateError as exc:
            script = next(h for h in _hook_files(self.hooks_dir) if h.startswith(f"hooks/{hook}."))
            raise RenderError(
                self._located(exc, os.path.join(self.hooks_dir, script), string_template=True)
            ) from None

    def _located(
        self, exc: jinja2.TemplateError, path: str, *, string_template: bool = False
    ) -> str:
        where, line = path, None
        if isinstance(exc, jinja2.TemplateSyntaxError):
            line = exc.lineno
            if exc.filename:
                where = exc.filename
        else:
            for frame in traceback.extract_tb(exc.__traceback__):
                if frame.filename == "<template>" and string_template:
                    line = frame.lineno
                elif os.path.isabs(frame.filename) and _inside(self.display_root, frame.filename):
                    where, line = frame.filename, frame.lineno
        kind = "syntax error" if isinstance(exc, jinja2.TemplateSyntaxError) else "error"
        at = f" at line {line}" if line else ""
        return f"Template {kind} in {self._display(where)}{at}: {reason(exc)}"

    def _display(self, path: str) -> str:
        if os.path.isabs(path) and _inside(self.display_root, path):
            return os.path.relpath(path, self.display_root).replace(os.sep, "/")
        return path


# --- helpers --------------------------------------------------------------------------------


def _hook_files(repo_dir: str) -> list[str]:
    hooks_dir = os.path.join(repo_dir, "hooks")
    if not os.path.isdir(hooks_dir):
        return []
    return sorted(
        f"hooks/{name}"
        for name in os.listdir(hooks_dir)
        if any(valid_hook(name, hook) for hook in HOOKS)
    )


def _hook_reason(exc: BaseException) -> str:
    reason = str(exc)
    if isinstance(exc.__cause__, FailedHookException):
        reason = f"{reason}: {exc.__cause__}"
    return reason


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
