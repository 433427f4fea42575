"""The context of one cookiecutter render, with user values kept as data (child side).

cookiecutter's ``prompt_for_config(no_input=True)`` renders every string of the context,
``extra_context`` included, so a value like ``{{ 7*7 }}`` would come out as ``49``.
`build_context` does what it does (in cookiecutter.json order: private ``_`` variables kept as
written, ``__`` variables and defaults rendered with `render_variable`, choices, yes/no,
dictionaries in a second pass) but never hands a user value to Jinja: user values only enter
as variables of the author's templates. Also here: reading cookiecutter.json, the private
settings (``_copy_without_render``, ``_extensions``, ``_jinja2_env_vars``, ``_new_lines``) and the
Jinja environment, sandboxed for untrusted templates.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from cookiecutter.environment import (  # type: ignore[import-untyped]
    ExtensionLoaderMixin,
    StrictEnvironment,
)
from cookiecutter.exceptions import UnknownExtension  # type: ignore[import-untyped]
from cookiecutter.prompt import YesNoPrompt, render_variable  # type: ignore[import-untyped]
from jinja2.sandbox import SandboxedEnvironment

CONTEXT_FILE = "cookiecutter.json"

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


def load_context_file(repo_dir: str, source: str) -> dict[str, Any]:
    """The template's cookiecutter.json; an unreadable or invalid one names ``source``."""
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


def controls(
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


def environment(
    controls: Mapping[str, Any], *, trusted: bool, hint: str, source: str
) -> jinja2.Environment:
    """cookiecutter's `StrictEnvironment` with ``_extensions`` and ``_jinja2_env_vars``.

    For an untrusted template it is sandboxed, and only `SAFE_EXTENSIONS` and
    `SAFE_ENV_VARS` are allowed (``hint`` says how to trust ``source``).
    """
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


def as_data(value: Any) -> Any:
    """A user value as cookiecutter would hold it after reading it from JSON (numbers become
    strings, integral floats without ``.0``), but never rendered."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return [as_data(v) for v in value]
    if isinstance(value, dict):
        return {str(k): as_data(v) for k, v in value.items()}
    return str(value)


def _private(key: str) -> bool:
    return key.startswith("_") and not key.startswith("__")


def build_context(
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
    seen: dict[str, Any] = {k: v if _private(k) else as_data(v) for k, v in values.items()}
    result: dict[str, Any] = {}

    def default(key: str, template: Any) -> Any:
        try:
            return render_variable(env, template, {**seen, **result})
        except jinja2.TemplateError as exc:
            where = _json_line(repo_dir, key)
            raise RenderError(
                f"Template error in {CONTEXT_FILE}{where} (variable '{key}'): {reason(exc)}"
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
                result[key] = as_data(user)
            elif isinstance(template, list) and not key.startswith("__"):
                result[key] = _choose(key, template, user, default(key, template))
            elif isinstance(template, dict) and isinstance(user, dict):
                result[key] = _merge_dict(key, template, user, default)
            elif isinstance(template, bool) and isinstance(user, str):
                result[key] = _yes_no(key, user)
            else:
                result[key] = as_data(user)
    return {k: result[k] for k in merged if k in result}


def _choose(key: str, choices: list[Any], user: Any, rendered: list[Any]) -> Any:
    """A user's pick among a choice variable's options (a list picks several)."""

    def pick(item: Any) -> Any:
        for i, option in enumerate(choices):
            if item == option or as_data(item) == as_data(option):
                return rendered[i]
        if as_data(item) in rendered:
            return as_data(item)
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
                out[rendered_name] = as_data(given)
        else:
            out[rendered_name] = default(key, value)
    for name, given in user.items():
        if name not in template:
            out[str(name)] = as_data(given)
    return out


def _yes_no(key: str, user: str) -> bool:
    answer = user.strip().lower()
    if answer in YesNoPrompt.yes_choices:
        return True
    if answer in YesNoPrompt.no_choices:
        return False
    raise RenderError(f"{user} provided for variable {key} could not be converted to a boolean.")


def reason(exc: jinja2.TemplateError) -> str:
    """What went wrong in a template, without Jinja's location prefix."""
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
