"""Jinja's sandbox, made to behave like nunjitsu (Backstage's template engine).

`JsEnvironment` is a `SandboxedEnvironment` with Nunjucks' delimiters and filters, and with
JavaScript semantics where the two languages differ:

* the parsed template is rewritten (`_JavaScriptSemantics`) so that ``~``, comparisons,
  ``in``, ``not``, ``if`` tests and ``for`` loops go through `templating_js`, ``{key: v}``
  has literal keys, and ``and``/``or`` are compiled by `_JsCodeGenerator` to test their left
  operand with JavaScript truthiness;
* arithmetic operators are intercepted (`call_binop`), which also bounds ``**`` and ``*``;
* ``obj.name`` and ``obj[key]`` resolve object keys, array indexes, ``length`` and the
  allow-listed JavaScript methods only; names starting with ``_`` are refused outright;
* ``r/regex/flags`` literals are rewritten into calls Jinja can parse, and ``\\r`` in template
  text survives Jinja's lexer, which would turn every line ending into ``\\n``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from jinja2 import nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import SandboxedEnvironment, safe_range
from jinja2.visitor import NodeTransformer

from scaffolder.tasks.templating_filters import NUNJUCKS_TESTS, nunjucks_filters
from scaffolder.tasks.templating_intrinsics import resolve_method
from scaffolder.tasks.templating_js import (
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
    to_js_string,
)
from scaffolder.tasks.templating_regex import rewrite_regex_literals

_GLOBALS_KEPT: Final = ("cycler", "joiner", "namespace")
_LOGICAL_OPERAND: Final = "_js_logical_operand"
#: Stands in for "\r" while Jinja lexes (a Unicode noncharacter, not found in real text).
_CARRIAGE_RETURN: Final = "\ufdd0"
_TAG_END_CRLF = re.compile(r"([-+]?%\})\r\n")


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
class EnvironmentOptions:
    """What distinguishes the environments a `Templater` keeps."""

    cookiecutter_compat: bool
    trim_blocks: bool
    lstrip_blocks: bool
    json_output: bool


class JsEnvironment(SandboxedEnvironment):
    """The sandbox with nunjitsu's syntax, values, filters and member access."""

    code_generator_class = _JsCodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})
    js_truthy = staticmethod(js_truthy)

    def __init__(
        self,
        options: EnvironmentOptions,
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
