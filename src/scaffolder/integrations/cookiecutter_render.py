"""One cookiecutter render, as it runs inside a pool child (no imports from scaffolder).

This is cookiecutter 2.7's ``cookiecutter()`` with ``no_input``, rebuilt from its own parts
(`StrictEnvironment`, `render_variable`, `find_template`, `is_copy_only_path`, its hooks and
replay) so that three things hold that the library alone does not promise:

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

import json
import os
import re
import shutil
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from binaryornot.check import is_binary
from cookiecutter import __version__ as COOKIECUTTER_VERSION  # type: ignore[import-untyped]
from cookiecutter.environment import (  # type: ignore[import-untyped]
    ExtensionLoaderMixin,
    StrictEnvironment,
)
from cookiecutter.exceptions import (  # type: ignore[import-untyped]
    FailedHookException,
    NonTemplatedInputDirException,
    UnknownExtension,
)
from cookiecutter.find import find_template  # type: ignore[import-untyped]
from cookiecutter.generate import is_copy_only_path  # type: ignore[import-untyped]
from cookiecutter.hooks import (  # type: ignore[import-untyped]
    run_hook_from_repo_dir,
    run_pre_prompt_hook,
    valid_hook,
)
from cookiecutter.prompt import YesNoPrompt, render_variable  # type: ignore[import-untyped]
from cookiecutter.replay import dump as dump_replay  # type: ignore[import-untyped]
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["COOKIECUTTER_VERSION", "RenderError", "run"]

CONTEXT_FILE = "cookiecutter.json"
HOOKS = ("pre_prompt", "pre_gen_project", "post_gen_project")

#: Extensions an untrusted template may use: cookiecutter's defaults, Jinja's harmless ones
#: and jinja2_time (cookiecutter's old default), when installed.
SAFE_EXTENSIONS = frozenset(
    {
        "cookiecutter.extensions.JsonifyExtension",
        "cookiecutter.extensions.RandomStringExtension",
        "cookiecutter.extensions.SlugifyExtension",
        "cookiecutter.extensions.TimeExtension",
        "cookiecutter.extensions.UUIDExtension",
        "jinja2.ext.do",
        "jinja2.ext.ExprStmtExtension",
        "jinja2.ext.loopcontrols",
        "jinja2.ext.LoopControlExtension",
        "jinja2.ext.i18n",
        "jinja2.ext.InternationalizationExtension",
        "jinja2_time.TimeExtension",
    }
)

#: ``_jinja2_env_vars`` an untrusted template may set: syntax and whitespace only.
SAFE_ENV_VARS = frozenset(
    {
        "block_start_string",
        "block_end_string",
        "variable_start_string",
        "variable_end_string",
        "comment_start_string",
        "comment_end_string",
        "line_statement_prefix",
        "line_comment_prefix",
        "trim_blocks",
        "lstrip_blocks",
        "newline_sequence",
        "keep_trailing_newline",
        "autoescape",
    }
)

#: Name of the project directory for a skeleton with no cookiecutter.json, as upstream
#: Backstage names it (``{{cookiecutter and 'contents'}}``).
SKELETON_PROJECT_DIR = "contents"

Log = Callable[[str], None]


class RenderError(Exception):
    """A render failure to report to the task: ``input`` (the template or values are wrong,
    the task's fault) or ``error`` (anything else)."""

    def __init__(self, message: str, *, kind: str = "input") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


class _SandboxedStrictEnvironment(ExtensionLoaderMixin, SandboxedEnvironment):  # type: ignore[misc]
    """cookiecutter's `StrictEnvironment`, in Jinja's sandbox (for untrusted templates)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, **kwargs)


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
        raw = _load_context_file(repo_dir, job["source"])
        if "template" in raw or "templates" in raw:
            raise RenderError(
                f"{CONTEXT_FILE} of {job['source']} selects nested templates, which "
                "fetch:cookiecutter does not support: point url at the nested template"
            )

    controls = _controls(raw, values, job)
    env = _environment(controls, trusted=trusted, hint=job["trust_hint"], source=job["source"])
    cookiecutter = _build_context(env, raw, values, repo_dir if standard else None)
    cookiecutter.update(controls)
    cookiecutter["_template"] = job["template"]
    cookiecutter["_output_dir"] = os.path.abspath(job["output_dir"])
    cookiecutter["_repo_dir"] = repo_dir
    cookiecutter["_checkout"] = job.get("checkout")
    merged = {**raw, **{k: v for k, v in values.items() if k not in raw}}
    context: dict[str, Any] = {
        "cookiecutter": cookiecutter,
        "_cookiecutter": {
            k: _as_data(values[k]) if k in values else v
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


# --- context --------------------------------------------------------------------------------


def _load_context_file(repo_dir: str, source: str) -> dict[str, Any]:
    path = os.path.join(repo_dir, CONTEXT_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise RenderError(f"Invalid {CONTEXT_FILE} in {source}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RenderError(f"Cannot read {CONTEXT_FILE} in {source}: {exc}") from None
    if not isinstance(data, dict):
        raise RenderError(f"Invalid {CONTEXT_FILE} in {source}: it must hold a JSON object")
    return data


def _controls(
    raw: Mapping[str, Any], values: Mapping[str, Any], job: Mapping[str, Any]
) -> dict[str, Any]:
    """The private settings that steer cookiecutter, from the template, values and inputs.

    ``_copy_without_render`` and ``_extensions`` are the union of all three (upstream lets the
    inputs replace the template's lists; a union cannot break a template that relies on its
    own). ``_jinja2_env_vars`` and ``_new_lines`` come from values, else the template.
    """
    controls: dict[str, Any] = {}
    for key, extra in (
        ("_copy_without_render", job.get("copy_without_render") or []),
        ("_extensions", job.get("extensions") or []),
    ):
        merged: list[str] = []
        for source in (raw.get(key), values.get(key), extra):
            if source is None:
                continue
            if not isinstance(source, list) or not all(isinstance(s, str) for s in source):
                raise RenderError(f"{key} must be a list of strings")
            merged.extend(s for s in source if s not in merged)
        if merged or key in raw or key in values:
            controls[key] = merged
    for key in ("_jinja2_env_vars", "_new_lines"):
        if key in values:
            controls[key] = values[key]
        elif key in raw:
            controls[key] = raw[key]
    return controls


def _environment(
    controls: Mapping[str, Any], *, trusted: bool, hint: str, source: str
) -> jinja2.Environment:
    env_vars = controls.get("_jinja2_env_vars") or {}
    if not isinstance(env_vars, dict):
        raise RenderError("_jinja2_env_vars must be an object")
    extensions = controls.get("_extensions") or []
    if not trusted:
        for extension in extensions:
            if extension not in SAFE_EXTENSIONS:
                raise RenderError(
                    f"Template {source} asks for the Jinja2 extension {extension!r}; only "
                    f"trusted templates may load extensions beyond cookiecutter's own. {hint}"
                )
        for key in env_vars:
            if key not in SAFE_ENV_VARS:
                raise RenderError(
                    f"Template {source} sets _jinja2_env_vars.{key}; an untrusted template "
                    f"may only change Jinja2's syntax and whitespace options. {hint}"
                )
    env_class = StrictEnvironment if trusted else _SandboxedStrictEnvironment
    options = dict(env_vars)
    keep_trailing_newline = options.pop("keep_trailing_newline", True)
    try:
        env: jinja2.Environment = env_class(
            context={"cookiecutter": {"_extensions": extensions}},
            keep_trailing_newline=keep_trailing_newline,
            **options,
        )
    except UnknownExtension as exc:
        raise RenderError(str(exc)) from None
    except (TypeError, ValueError, AttributeError, AssertionError) as exc:
        raise RenderError(f"Invalid _jinja2_env_vars: {exc}") from None
    return env


def _as_data(value: Any) -> Any:
    """A user value as cookiecutter would hold it after reading it from JSON (numbers become
    strings, integral floats without ``.0``), but never rendered."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return [_as_data(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _as_data(v) for k, v in value.items()}
    return str(value)


def _private(key: str) -> bool:
    return key.startswith("_") and not key.startswith("__")


def _build_context(
    env: jinja2.Environment,
    raw: Mapping[str, Any],
    values: Mapping[str, Any],
    repo_dir: str | None,
) -> dict[str, Any]:
    """cookiecutter's ``prompt_for_config(no_input=True)``, with user values kept as data.

    The template's own defaults render in order, as cookiecutter does, and see the user's
    values (inserted as data) and the defaults rendered before them.
    """
    merged = {k: v for k, v in raw.items() if k != "__prompts__"}
    for key, value in values.items():
        merged.setdefault(key, value)
    seen: dict[str, Any] = {k: v if _private(k) else _as_data(v) for k, v in values.items()}
    result: dict[str, Any] = {}

    def default(key: str, template: Any) -> Any:
        try:
            return render_variable(env, template, {**seen, **result})
        except jinja2.TemplateError as exc:
            where = _json_line(repo_dir, key)
            raise RenderError(
                f"Template error in {CONTEXT_FILE}{where} (variable '{key}'): {_reason(exc)}"
            ) from None

    for pass_dicts in (False, True):
        for key, template in merged.items():
            supplied = key in values
            user = values.get(key)
            if _private(key):
                if not pass_dicts:
                    result[key] = user if supplied else template
                continue
            is_dict = (
                isinstance(template, dict) and (not supplied or isinstance(user, dict))
                if key in raw
                else supplied and isinstance(user, dict)
            )
            if key.startswith("__"):
                is_dict = False  # cookiecutter renders dunder variables in the first pass
            if is_dict != pass_dicts:
                continue
            if not supplied:
                if key.startswith("__"):
                    result[key] = default(key, template)
                elif isinstance(template, list):
                    options = default(key, template)
                    if not options:
                        raise RenderError(f"The list of choices for '{key}' is empty")
                    result[key] = options[0]
                elif isinstance(template, bool):
                    result[key] = template
                else:
                    result[key] = default(key, template)
            elif key not in raw:
                result[key] = _as_data(user)
            elif isinstance(template, list) and not key.startswith("__"):
                result[key] = _choose(key, template, user, default(key, template))
            elif isinstance(template, dict) and isinstance(user, dict):
                result[key] = _merge_dict(key, template, user, default)
            elif isinstance(template, bool) and isinstance(user, str):
                result[key] = _yes_no(key, user)
            else:
                result[key] = _as_data(user)
    return {k: result[k] for k in merged if k in result}


def _choose(key: str, choices: list[Any], user: Any, rendered: list[Any]) -> Any:
    """A user's pick among a choice variable's options (a list picks several)."""

    def pick(item: Any) -> Any:
        for i, option in enumerate(choices):
            if item == option or _as_data(item) == _as_data(option):
                return rendered[i]
        if _as_data(item) in rendered:
            return _as_data(item)
        raise RenderError(
            f"{item} provided for choice variable {key}, but the choices are {choices}."
        )

    if isinstance(user, list):
        return [pick(item) for item in user]
    return pick(user)


def _merge_dict(
    key: str,
    template: Mapping[str, Any],
    user: Mapping[str, Any],
    default: Callable[[str, Any], Any],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in template.items():
        rendered_name = default(key, name)
        if name in user:
            given = user[name]
            if isinstance(value, dict) and isinstance(given, dict):
                out[rendered_name] = _merge_dict(key, value, given, default)
            else:
                out[rendered_name] = _as_data(given)
        else:
            out[rendered_name] = default(key, value)
    for name, given in user.items():
        if name not in template:
            out[str(name)] = _as_data(given)
    return out


def _yes_no(key: str, user: str) -> bool:
    answer = user.strip().lower()
    if answer in YesNoPrompt.yes_choices:
        return True
    if answer in YesNoPrompt.no_choices:
        return False
    raise RenderError(f"{user} provided for variable {key} could not be converted to a boolean.")


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
                f"Template error in the name {self._display(path)}: {_reason(exc)}"
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
        return f"Template {kind} in {self._display(where)}{at}: {_reason(exc)}"

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


def _reason(exc: jinja2.TemplateError) -> str:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return exc.message or str(exc)
    return str(exc)


def _json_line(repo_dir: str | None, key: str) -> str:
    if repo_dir is None:
        return ""
    try:
        with open(os.path.join(repo_dir, CONTEXT_FILE), encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return ""
    match = re.search(rf'"{re.escape(json.dumps(key)[1:-1])}"\s*:', text)
    if match is None:
        return ""
    return f" at line {text.count(chr(10), 0, match.start()) + 1}"


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
