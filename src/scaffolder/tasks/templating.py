"""Backstage's templating language (CONTRACT §6), on Jinja's sandbox.

Backstage renders ``${{ … }}`` templates with nunjitsu, a Nunjucks interpreter whose values
are JavaScript values. `Templater` runs the same templates on
`jinja2.sandbox.SandboxedEnvironment`, adjusted where Jinja and Nunjucks differ:

* delimiters ``${{ }}`` / ``{% %}`` / ``{# #}`` (``{{ }}`` in cookiecutter mode), no
  autoescape, newlines and the final newline kept as written;
* undefined values never raise and chain (``parameters.missing.deep`` is undefined);
* JavaScript semantics for output, ``+ - * / // % **``, ``~``, ``==``/``<``/``in``, ``and``/
  ``or``/``not``/``if`` truthiness, ``{% for k, v in object %}``, ``{key: v}`` literals and
  ``r/regex/g`` literals (see `templating_js`);
* member access resolves object keys, array indexes, ``length`` and an allow-list of
  JavaScript methods (`templating_intrinsics`); nothing else of a Python object is reachable;
* Nunjucks' filters and tests (`templating_filters`) and Backstage's four
  (`templating_backstage`) replace Jinja's.

Values in the context are data: they are never parsed as templates, and output is never
rendered again.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from jinja2 import nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.environment import Template
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import SandboxedEnvironment, safe_range
from jinja2.visitor import NodeTransformer

from scaffolder.errors import InputError, ScaffolderError
from scaffolder.tasks.templating_backstage import BACKSTAGE_FILTER_METADATA, backstage_filters
from scaffolder.tasks.templating_filters import NUNJUCKS_TESTS, nunjucks_filters
from scaffolder.tasks.templating_intrinsics import MUTATING_METHODS, resolve_method
from scaffolder.tasks.templating_js import (
    UNDEFINED,
    JsRegex,
    JsUndefined,
    compare_order,
    iter_js,
    js_binop,
    js_in,
    js_json,
    js_string,
    js_truthy,
    js_unop,
    loose_equal,
    parse_json,
    to_js_string,
)

__all__ = ["UNDEFINED", "TemplateRenderError", "Templater", "is_truthy", "to_js_string"]

logger = logging.getLogger(__name__)

#: Integration type per SCM host when the caller configures none (Backstage's default).
DEFAULT_SCM_HOSTS: Final[Mapping[str, str]] = {"github.com": "github"}
#: Compiled templates kept per `Templater`; step inputs and skeleton files repeat across tasks.
TEMPLATE_CACHE_SIZE: Final = 2048
#: Jinja names traceback frames of string templates like this.
_TEMPLATE_FILENAME: Final = "<template>"
_GLOBALS_KEPT: Final = ("cycler", "joiner", "namespace")
_LOGICAL_OPERAND: Final = "_js_logical_operand"
#: Stands in for "\r" while Jinja lexes (a Unicode noncharacter, not found in real text).
_CARRIAGE_RETURN: Final = "\ufdd0"
_TAG_END_CRLF = re.compile(r"([-+]?%\})\r\n")
_COMMENT_END = re.compile(r"#\}")
_RAW_START = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}")
_RAW_END = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")


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


# --- Jinja, made to behave like nunjitsu ---------------------------------------------------


def _call_filter(node: nodes.Node, name: str, *args: nodes.Node) -> nodes.Filter:
    return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)


class _JavaScriptSemantics(NodeTransformer):
    """Rewrites a parsed template so its operators follow JavaScript, not Python."""

    def visit_And(self, node: nodes.And) -> nodes.Node:
        return self._logical(node)

    def visit_Or(self, node: nodes.Or) -> nodes.Node:
        return self._logical(node)

    def _logical(self, node: nodes.BinExpr) -> nodes.Node:
        # Jinja would fold constant operands with Python truthiness, and it allows no custom
        # node types; a left operand behind a context filter is never folded, and
        # `_JsCodeGenerator` compiles the operator itself.
        self.generic_visit(node)
        node.left = _call_filter(node.left, _LOGICAL_OPERAND)
        return node

    def visit_Not(self, node: nodes.Not) -> nodes.Node:
        self.generic_visit(node)
        node.node = _call_filter(node.node, "_js_truthy")
        return node

    def visit_If(self, node: nodes.If) -> nodes.Node:
        self.generic_visit(node)
        node.test = _call_filter(node.test, "_js_truthy")
        return node

    def visit_CondExpr(self, node: nodes.CondExpr) -> nodes.Node:
        self.generic_visit(node)
        node.test = _call_filter(node.test, "_js_truthy")
        return node

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _call_filter(node.iter, "_js_iter")
        if node.test is not None:
            node.test = _call_filter(node.test, "_js_truthy")
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call_filter(nodes.List(node.nodes, lineno=node.lineno), "_js_concat")

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        # Chains fold left as in JavaScript: `a < b < c` is `(a < b) < c`.
        result: nodes.Expr = node.expr
        for operand in node.ops:
            result = _call_filter(result, "_js_compare", nodes.Const(operand.op), operand.expr)
        return result

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        for pair in node.items:  # `{ defaultKind: "group" }`: a bare key is a name, not a variable
            if isinstance(pair.key, nodes.Name):
                pair.key = nodes.Const(pair.key.name, lineno=pair.key.lineno)
        return node


class _JsCodeGenerator(CodeGenerator):
    """Compiles ``and``/``or`` so the left operand is evaluated once and tested the JS way."""

    def visit_And(self, node: nodes.BinExpr, frame: Frame) -> None:
        left = self.temporary_identifier()
        self.write("((")
        self.visit(node.right, frame)
        self.write(f") if environment.js_truthy({left} := (")
        self.visit(_logical_operand(node), frame)
        self.write(f")) else {left})")

    def visit_Or(self, node: nodes.BinExpr, frame: Frame) -> None:
        left = self.temporary_identifier()
        self.write(f"({left} if environment.js_truthy({left} := (")
        self.visit(_logical_operand(node), frame)
        self.write(")) else (")
        self.visit(node.right, frame)
        self.write("))")


def _logical_operand(node: nodes.BinExpr) -> nodes.Node:
    marker = node.left
    assert isinstance(marker, nodes.Filter)
    assert marker.node is not None
    return marker.node


def _keeps_carriage_returns(source: str) -> bool:
    return "\r" in source and _CARRIAGE_RETURN not in source


def _compare(left: Any, operator: str, right: Any) -> bool:
    if operator == "eq":
        return loose_equal(left, right)
    if operator == "ne":
        return not loose_equal(left, right)
    if operator == "in":
        return js_in(left, right)
    if operator == "notin":
        return not js_in(left, right)
    order = compare_order(left, right)
    return {"gt": order > 0, "gteq": order >= 0, "lt": order < 0, "lteq": order <= 0}[operator]


@pass_context
def _logical_operand_marker(_context: Context, value: Any) -> Any:
    return value


_INTERNAL_FILTERS: Final[Mapping[str, Callable[..., Any]]] = {
    _LOGICAL_OPERAND: _logical_operand_marker,
    "_js_compare": _compare,
    "_js_concat": lambda values: "".join(js_string(value) for value in values),
    "_js_iter": iter_js,
    "_js_regex": JsRegex,
    "_js_truthy": js_truthy,
}


def _finalize_json(value: Any) -> str:
    text = js_json(value)
    return "" if text is None else text


def _js_range(*args: Any) -> list[int]:
    # Nunjucks' range is an array; the sandbox's range refuses more than MAX_RANGE items.
    return list(safe_range(*args))


@dataclass(frozen=True, slots=True)
class _Options:
    cookiecutter_compat: bool
    trim_blocks: bool
    lstrip_blocks: bool
    json_output: bool


class _JsEnvironment(SandboxedEnvironment):
    """The sandbox with nunjitsu's syntax, values, filters and member access."""

    code_generator_class = _JsCodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})
    js_truthy = staticmethod(js_truthy)

    def __init__(
        self,
        options: _Options,
        *,
        filters: Mapping[str, Callable[..., Any]],
        globals_: Mapping[str, Any],
    ) -> None:
        super().__init__(
            variable_start_string="{{" if options.cookiecutter_compat else "${{",
            variable_end_string="}}",
            trim_blocks=options.trim_blocks,
            lstrip_blocks=options.lstrip_blocks,
            keep_trailing_newline=True,
            autoescape=False,
            undefined=JsUndefined,
            finalize=_finalize_json if options.json_output else to_js_string,
            cache_size=0,
        )
        self.cookiecutter_compat = options.cookiecutter_compat
        self.filters = {
            **nunjucks_filters(cookiecutter_compat=options.cookiecutter_compat),
            **filters,
            **_INTERNAL_FILTERS,
        }
        self.tests = dict(NUNJUCKS_TESTS)
        self.globals = {name: self.globals[name] for name in _GLOBALS_KEPT}
        self.globals["range"] = _js_range
        self.globals.update(globals_)

    def preprocess(self, source: str, name: str | None = None, filename: str | None = None) -> str:
        """Rewrite ``r/…/flags`` regex literals, and hide carriage returns from the lexer.

        Jinja's lexer turns every line ending into ``\\n``; Nunjucks keeps template text as
        written, so a ``\\r`` travels through the lexer as `_CARRIAGE_RETURN` and `_parse`
        puts it back.
        """
        source = rewrite_regex_literals(source, self.variable_start_string)
        if _keeps_carriage_returns(source):
            if self.trim_blocks:  # nunjitsu's trim_blocks removes a CRLF as well as an LF
                source = _TAG_END_CRLF.sub(r"\1\n", source)
            source = source.replace("\r", _CARRIAGE_RETURN)
        return super().preprocess(source, name, filename)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = _JavaScriptSemantics().visit(super()._parse(source, name, filename))
        assert isinstance(tree, nodes.Template)
        if _keeps_carriage_returns(source):
            for data in tree.find_all(nodes.TemplateData):
                data.data = data.data.replace(_CARRIAGE_RETURN, "\r")
            for constant in tree.find_all(nodes.Const):
                if isinstance(constant.value, str):
                    constant.value = constant.value.replace(_CARRIAGE_RETURN, "\r")
        tree.set_environment(self)
        return tree

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``obj.name``: an object key, ``length``, an index, or an allowed method."""
        return self._member(obj, attribute, method=True)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """``obj[key]``: like ``obj.key``, but never a method (so every method call is
        visible in the syntax tree, see `MUTATING_METHODS`)."""
        return self._member(obj, argument, method=False)

    def _member(self, obj: Any, key: Any, *, method: bool) -> Any:
        if (
            isinstance(key, str)
            and key.startswith("_")
            and not (isinstance(obj, Mapping) and key in obj)
        ):
            raise SecurityError(f"access to {key!r} is not allowed in templates")
        if isinstance(obj, Undefined):
            return obj
        if isinstance(obj, Mapping):
            found = _record_member(obj, key, method, self.cookiecutter_compat)
            return self.undefined(obj=obj, name=key) if found is _MISSING else found
        if isinstance(obj, str | list | tuple):
            index = _index(key, len(obj))
            if index is not None:
                return obj[index]
            if key == "length":
                return len(obj)
        if method and isinstance(key, str):
            found = resolve_method(obj, key, cookiecutter_compat=self.cookiecutter_compat)
            if found is not None:
                return found
        if obj is None or isinstance(obj, str | list | tuple | bool | int | float | JsRegex):
            return self.undefined(obj=obj, name=key)
        # Jinja's own objects (loop, cycler, joiner, namespace, macros) and host objects given
        # as globals keep the sandbox's rules.
        return super().getattr(obj, key) if method else super().getitem(obj, key)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Arithmetic with JavaScript semantics (which also bounds ``**`` and ``*``)."""
        return js_binop(operator, left, right)

    def call_unop(self, context: Context, operator: str, arg: Any) -> Any:
        """Unary ``-``/``+`` with JavaScript number conversion."""
        return js_unop(operator, arg)


_MISSING: Final = object()


def _record_member(record: Mapping[Any, Any], key: Any, method: bool, compat: bool) -> Any:
    try:
        if key in record:
            return record[key]
    except TypeError:  # an unhashable key such as a list: JavaScript would use String(key)
        pass
    name = key if isinstance(key, str) else js_string(key)
    if name in record:
        return record[name]
    found = resolve_method(record, name, cookiecutter_compat=compat) if method else None
    return _MISSING if found is None else found


def _index(key: Any, length: int) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, float) and key.is_integer():
        key = int(key)
    if isinstance(key, str) and key.isdigit() and str(int(key)) == key:
        key = int(key)
    return key if isinstance(key, int) and 0 <= key < length else None


def rewrite_regex_literals(source: str, variable_start: str) -> str:
    """Replace each ``r/pattern/flags`` inside tags by ``("pattern"|_js_regex("flags"))``.

    Only code is rewritten: template text, comments, string literals and ``{% raw %}``
    sections stay as they are, and line numbers do not change.
    """
    if "r/" not in source:
        return source
    out: list[str] = []
    index = 0
    while index < len(source):
        starts = [(source.find(tag, index), tag) for tag in (variable_start, "{%", "{#")]
        found = [(position, tag) for position, tag in starts if position >= 0]
        if not found:
            out.append(source[index:])
            break
        position, tag = min(found)
        out.append(source[index:position])
        skipped = None
        if tag == "{#":
            skipped = _COMMENT_END.search(source, position)
        elif _RAW_START.match(source, position):
            skipped = _RAW_END.search(source, position)
        if skipped is not None or tag == "{#":
            index = len(source) if skipped is None else skipped.end()
            out.append(source[position:index])
            continue
        out.append(tag)
        index = _rewrite_code(source, position + len(tag), "}}" if tag != "{%" else "%}", out)
    return "".join(out)


def _rewrite_code(source: str, index: int, closing: str, out: list[str]) -> int:
    depth = 0
    while index < len(source):
        char = source[index]
        if depth == 0 and source.startswith(closing, index):
            out.append(closing)
            return index + len(closing)
        if char in "'\"":
            end = index + 1
            while end < len(source) and source[end] != char:
                end += 2 if source[end] == "\\" else 1
            out.append(source[index : end + 1])
            index = end + 1
            continue
        if char == "r" and source.startswith("r/", index) and not _continues_name(source, index):
            literal = _regex_literal(source, index + 2)
            if literal is not None:
                pattern, flags, index = literal
                escaped = pattern.replace("\\", "\\\\").replace('"', '\\"')
                out.append(f'("{escaped}"|_js_regex("{flags}"))')
                continue
        depth += (char in "([{") - (char in ")]}")
        out.append(char)
        index += 1
    return index


def _continues_name(source: str, index: int) -> bool:
    return index > 0 and (source[index - 1].isalnum() or source[index - 1] in "_.")


def _regex_literal(source: str, start: int) -> tuple[str, str, int] | None:
    index, in_class = start, False
    while index < len(source) and source[index] != "\n":
        char = source[index]
        if char == "\\":
            index += 2
            continue
        if char == "/" and not in_class:
            end = index + 1
            while end < len(source) and source[end] in "dgimsuyv":
                end += 1
            return source[start:index], source[index + 1 : end], end
        in_class = (in_class or char == "[") and char != "]"
        index += 1
    return None


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
        self._environments: dict[_Options, _JsEnvironment] = {}
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
        return template.render(copy.deepcopy(dict(context)) if copies else context)

    def _compile_uncached(
        self, source: str, value_mode: bool, compat: bool, trim: bool, lstrip: bool
    ) -> _Compiled | _Broken:
        environment = self._environment(_Options(compat, trim, lstrip, json_output=False))
        try:
            tree = environment.parse(source)
            copies = any(node.attr in MUTATING_METHODS for node in tree.find_all(nodes.Getattr))
            json_template = None
            if value_mode and _is_single_root(tree):
                json_environment = self._environment(_Options(compat, trim, lstrip, True))
                json_template = json_environment.from_string(source)
            return _Compiled(environment.from_string(tree), json_template, copies)
        except TemplateSyntaxError as error:
            return _Broken(_describe(error), error.lineno)

    def _environment(self, options: _Options) -> _JsEnvironment:
        with self._lock:
            environment = self._environments.get(options)
            if environment is None:
                environment = _JsEnvironment(
                    options, filters=self._filters, globals_=self._extra_globals
                )
                self._environments[options] = environment
            return environment


def _has_tags(source: str, variable_start: str) -> bool:
    return variable_start in source or "{%" in source or "{#" in source
