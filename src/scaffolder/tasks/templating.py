"""Backstage's templating language (CONTRACT §6): the one entry point, `Templater`.

Backstage renders ``${{ … }}`` templates with nunjitsu, a Nunjucks interpreter whose values
are JavaScript values. `Templater` runs the same templates on Jinja's sandbox, adjusted to
match (`templating_environment`): ``${{ }}``/``{% %}`` delimiters (``{{ }}`` in cookiecutter
mode), no autoescape, text kept byte for byte, undefined values that never raise, JavaScript
values and operators (`templating_js`), an allow-list of JavaScript methods
(`templating_intrinsics`), and Nunjucks' and Backstage's filters instead of Jinja's
(`templating_filters`, `templating_backstage`).

Values in the context are data: they are never parsed as templates, and output is never
rendered again.
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from jinja2 import nodes
from jinja2.environment import Template
from jinja2.exceptions import TemplateSyntaxError

from scaffolder.errors import InputError, ScaffolderError
from scaffolder.tasks.templating_backstage import BACKSTAGE_FILTER_METADATA, backstage_filters
from scaffolder.tasks.templating_environment import EnvironmentOptions, JsEnvironment
from scaffolder.tasks.templating_intrinsics import MUTATING_METHODS
from scaffolder.tasks.templating_js import UNDEFINED, js_truthy, parse_json, to_js_string

__all__ = ["UNDEFINED", "TemplateRenderError", "Templater", "is_truthy", "to_js_string"]

logger = logging.getLogger(__name__)

#: Integration type per SCM host when the caller configures none (Backstage's default).
DEFAULT_SCM_HOSTS: Final[Mapping[str, str]] = {"github.com": "github"}
#: Compiled templates kept per `Templater`; step inputs and skeleton files repeat across tasks.
TEMPLATE_CACHE_SIZE: Final = 2048
#: Jinja names traceback frames of string templates like this.
_TEMPLATE_FILENAME: Final = "<template>"


class TemplateRenderError(InputError):
    """A template could not be rendered; the message names the file and line when known."""

    def __init__(self, detail: str, *, name: str | None = None, lineno: int | None = None) -> None:
        where = (f" in {name}" if name else "") + (f" at line {lineno}" if lineno else "")
        super().__init__(f"Template error{where}: {detail}")
        self.detail = detail
        self.template_name = name
        self.lineno = lineno


def is_truthy(value: Any) -> bool:
    """Backstage's ``isTruthy`` for ``if`` and ``when``: JavaScript truthiness, but an empty
    array is falsy. `UNDEFINED` is falsy."""
    if isinstance(value, list | tuple):
        return len(value) > 0
    return js_truthy(value)


# --- compiled templates --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compiled:
    text: Template
    #: Set when the whole string is one expression or block: rendered with JSON output.
    json: Template | None
    #: The template calls a mutating array method, so it renders on a copy of its context.
    copies_context: bool


@dataclass(frozen=True, slots=True)
class _Broken:
    detail: str
    lineno: int | None


def _is_single_root(tree: nodes.Template) -> bool:
    """One root node that is not plain text: ``${{ x }}`` alone, or one ``{% if %}`` block."""
    if len(tree.body) != 1:
        return False
    root = tree.body[0]
    if isinstance(root, nodes.Output):
        return len(root.nodes) == 1 and not isinstance(root.nodes[0], nodes.TemplateData)
    return True


def _describe(error: BaseException) -> str:
    if isinstance(error, ScaffolderError):
        return error.message
    if isinstance(error, TemplateSyntaxError):
        return error.message or str(error)
    return str(error) or type(error).__name__


def _template_line(error: BaseException) -> int | None:
    if isinstance(error, TemplateSyntaxError):
        return error.lineno
    frames = traceback.extract_tb(error.__traceback__)
    lines = [frame.lineno for frame in frames if frame.filename == _TEMPLATE_FILENAME]
    return lines[-1] if lines else None


class Templater:
    """Renders Backstage templates: step inputs, conditions, outputs and skeleton files.

    One instance is shared by every task and thread; compiled templates are cached.

    Args:
        scm_hosts: SCM host to integration type (``{"github.com": "github"}``), for
            ``parseRepoUrl`` and ``projectSlug``.
        extra_filters: more filters, as modules register them in Backstage.
        extra_globals: more globals: functions, or values shown in ``extensions()``.
    """

    def __init__(
        self,
        *,
        scm_hosts: Mapping[str, str] | None = None,
        extra_filters: Mapping[str, Callable[..., Any]] | None = None,
        extra_globals: Mapping[str, Any] | None = None,
    ) -> None:
        hosts = dict(DEFAULT_SCM_HOSTS if scm_hosts is None else scm_hosts)
        self._extra_filters = dict(extra_filters or {})
        self._extra_globals = dict(extra_globals or {})
        self._filters = {**backstage_filters(hosts), **self._extra_filters}
        self._environments: dict[EnvironmentOptions, JsEnvironment] = {}
        self._lock = threading.Lock()
        self._compile = functools.lru_cache(maxsize=TEMPLATE_CACHE_SIZE)(self._compile_uncached)

    def render_value(self, value: Any, context: Mapping[str, Any]) -> Any:
        """Render step ``input``, ``if``, ``each`` or ``output`` with type preservation.

        Dicts and lists are walked and every string in them is rendered (CONTRACT §6.2): a
        string that is exactly one ``${{ expr }}`` (or one ``{% %}`` block) becomes the
        value's JSON type, anything else a string. A dict entry that renders to `undefined`
        is dropped and a list item becomes None; a string that renders to `undefined`
        returns `UNDEFINED`. A string whose rendering fails is kept as written, as in
        Backstage. Other values are returned as they are.
        """
        if isinstance(value, str):
            try:
                return self._render_leaf(value, context)
            except Exception as error:  # Backstage keeps the raw string
                logger.debug("Template kept unrendered (%s): %r", type(error).__name__, value)
                return value
        if isinstance(value, Mapping):
            rendered = {key: self.render_value(item, context) for key, item in value.items()}
            return {key: item for key, item in rendered.items() if item is not UNDEFINED}
        if isinstance(value, list | tuple):
            items = [self.render_value(item, context) for item in value]
            return [None if item is UNDEFINED else item for item in items]
        return value

    def render_string(
        self,
        source: str,
        context: Mapping[str, Any],
        *,
        cookiecutter_compat: bool = False,
        trim_blocks: bool = False,
        lstrip_blocks: bool = False,
        name: str | None = None,
    ) -> str:
        """Render text (``fetch:template`` file contents and paths); always a string.

        Args:
            source: the template text.
            context: the variables (``values`` for ``fetch:template``).
            cookiecutter_compat: ``{{ }}`` variables and nunjitsu's Jinja-isms.
            trim_blocks: drop the first newline after a block tag.
            lstrip_blocks: strip whitespace before a block tag at the start of a line.
            name: the file the text comes from, for error messages.

        Raises:
            TemplateRenderError: a syntax or evaluation error, naming ``name`` and the line.
        """
        start = "{{" if cookiecutter_compat else "${{"
        if not _has_tags(source, start):
            return source
        compiled = self._compile(source, False, cookiecutter_compat, trim_blocks, lstrip_blocks)
        if isinstance(compiled, _Broken):
            raise TemplateRenderError(compiled.detail, name=name, lineno=compiled.lineno)
        try:
            return self._run(compiled.text, context, copies=compiled.copies_context)
        except Exception as error:
            raise TemplateRenderError(
                _describe(error), name=name, lineno=_template_line(error)
            ) from error

    def evaluate_condition(self, expression: str | bool, values: Mapping[str, Any]) -> bool:
        """Evaluate a parameter step's ``when`` (CONTRACT §5.3) against the form values.

        A string is trimmed and wrapped in ``${{ }}`` unless it starts with ``${{``; it sees
        only ``parameters``. A render error counts as true.
        """
        if isinstance(expression, bool):
            return expression
        source = expression.strip()
        if not source.startswith("${{"):
            source = f"${{{{ {source} }}}}"
        try:
            return is_truthy(self._render_leaf(source, {"parameters": values}))
        except Exception:  # Backstage shows the step when `when` fails
            return True

    def extensions(self) -> dict[str, Any]:
        """The body of ``GET /v2/templating-extensions``."""
        filters = copy.deepcopy(dict(BACKSTAGE_FILTER_METADATA))
        filters.update({name: {} for name in self._extra_filters})
        functions: dict[str, Any] = {
            name: {} for name, item in self._extra_globals.items() if callable(item)
        }
        values = {
            name: {"value": item}
            for name, item in self._extra_globals.items()
            if not callable(item)
        }
        return {"filters": filters, "globals": {"functions": functions, "values": values}}

    def _render_leaf(self, source: str, context: Mapping[str, Any]) -> Any:
        if not _has_tags(source, "${{"):
            return source if source else UNDEFINED
        compiled = self._compile(source, True, False, False, False)
        if isinstance(compiled, _Broken):
            raise TemplateRenderError(compiled.detail, lineno=compiled.lineno)
        if compiled.json is not None:
            output = self._run(compiled.json, context, copies=compiled.copies_context)
            if not output:
                return UNDEFINED
            try:
                return parse_json(output)
            except ValueError:
                pass  # not JSON (text inside a block): the plain rendering is the value
        output = self._run(compiled.text, context, copies=compiled.copies_context)
        return output if output else UNDEFINED

    @staticmethod
    def _run(template: Template, context: Mapping[str, Any], *, copies: bool) -> str:
        return template.render(_data_copy(context) if copies else context)

    def _compile_uncached(
        self, source: str, value_mode: bool, compat: bool, trim: bool, lstrip: bool
    ) -> _Compiled | _Broken:
        environment = self._environment(EnvironmentOptions(compat, trim, lstrip, json_output=False))
        try:
            tree = environment.parse(source)
            copies = any(node.attr in MUTATING_METHODS for node in tree.find_all(nodes.Getattr))
            json_template = None
            if value_mode and _is_single_root(tree):
                json_environment = self._environment(EnvironmentOptions(compat, trim, lstrip, True))
                json_template = _flattened(json_environment.from_string(source))
            return _Compiled(_flattened(environment.from_string(tree)), json_template, copies)
        except TemplateSyntaxError as error:
            return _Broken(_describe(error), error.lineno)

    def _environment(self, options: EnvironmentOptions) -> JsEnvironment:
        with self._lock:
            environment = self._environments.get(options)
            if environment is None:
                environment = JsEnvironment(
                    options, filters=self._filters, globals_=self._extra_globals
                )
                self._environments[options] = environment
            return environment


def _data_copy(value: Any) -> Any:
    """A copy of the objects and arrays in ``value``; everything else (functions too) is shared."""
    if isinstance(value, Mapping):
        return {key: _data_copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_data_copy(item) for item in value]
    return value


def _flattened(template: Template) -> Template:
    # Every render copies the template's globals into a new context; Jinja keeps them in a
    # ChainMap, which copies an order of magnitude slower than a dict. They never change.
    template.globals = dict(template.globals)
    return template


def _has_tags(source: str, variable_start: str) -> bool:
    return variable_start in source or "{%" in source or "{#" in source
