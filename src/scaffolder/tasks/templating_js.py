"""JavaScript value semantics for the template engine.

Backstage renders templates with nunjitsu, an interpreter whose values are JavaScript values:
one number type, `undefined` next to `null`, `String()` and `JSON.stringify` conversions, and
`+` that concatenates as soon as one side is a string. Templates written for Backstage rely on
these rules, so the Jinja environment in `templating.py` routes its operators, conversions and
output through the functions here. Nothing in this module evaluates template text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, Final
from urllib.parse import quote

from jinja2 import ChainableUndefined, Undefined

#: JavaScript's `WhiteSpace` and `LineTerminator` code points, which `trim()` removes.
JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
#: Integers beyond this lose precision in JavaScript; past it arithmetic switches to floats,
#: which also stops templates from growing huge Python integers.
MAX_SAFE_INTEGER: Final = 2**53 - 1

_NUMBER_LITERAL = re.compile(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
_INTEGER_LITERAL = re.compile(r"[+-]?\d+")
_RADIX_LITERAL = re.compile(r"0([xob])([0-9a-f]+)", re.IGNORECASE)


class JsUndefined(ChainableUndefined):
    """JavaScript `undefined`: lookups on it stay undefined and it renders as ``""``."""

    __slots__ = ()


class _UndefinedSentinel(JsUndefined):
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"


#: Returned by `Templater.render_value` when a template renders to JavaScript `undefined`.
#: It is also a `JsUndefined`, so a caller that puts it into a context gets `undefined` there.
UNDEFINED: Final = _UndefinedSentinel()

#: The `undefined` that filters and lookups return.
JS_UNDEFINED: Final = JsUndefined()


@dataclass(frozen=True, slots=True)
class JsRegex:
    """A regular-expression literal (``r/\\s+/g``) as written in a template."""

    source: str
    flags: str

    @property
    def is_global(self) -> bool:
        """Whether the ``g`` flag asks for every match instead of the first."""
        return "g" in self.flags


def is_undefined(value: Any) -> bool:
    """Whether ``value`` is JavaScript `undefined` (a Jinja undefined or `UNDEFINED`)."""
    return isinstance(value, Undefined)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a JavaScript number (Python bools are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def normalize_number(value: float) -> float:
    """Turn integral floats into ints so that ``4 / 2`` indexes and prints like ``2``."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
        return int(value)
    if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


def number_to_string(value: float) -> str:
    """ECMAScript ``Number::toString``: shortest round-trip digits, JS exponent rules."""
    if isinstance(value, int):
        if abs(value) < 10**21:
            return str(value)
        value = normalize_number(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    digits, point = shortest_digits(abs(value))
    sign = "-" if value < 0 else ""
    count = len(digits)
    if count <= point <= 21:
        return sign + digits + "0" * (point - count)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    return sign + exponential_notation(digits, point - 1)


def shortest_digits(value: float) -> tuple[str, int]:
    """Digits of ``repr(value)`` without zeros at either end, and the decimal point position."""
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = int(exponent or 0) - len(fraction) + len(digits)
    return digits.rstrip("0"), point


def exponential_notation(digits: str, exponent: int) -> str:
    mantissa = digits if len(digits) == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{mantissa}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"


def to_js_string(value: Any) -> str:
    """How a value is written into rendered text (nunjitsu's output conversion).

    `null` and `undefined` become ``""``, booleans ``true``/``false``, numbers use JavaScript
    formatting, arrays are comma-joined (recursively) and objects are ``[object Object]``.
    """
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, Undefined):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_to_string(value)
    if isinstance(value, list | tuple):
        return ",".join(to_js_string(item) for item in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    if isinstance(value, JsRegex):
        return f"/{value.source}/{value.flags}"
    return str(value)


def to_primitive(value: Any) -> Any:
    """JavaScript ``ToPrimitive``: arrays and objects become strings, primitives stay."""
    if value is None or isinstance(value, bool | int | float | Undefined):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple | Mapping | JsRegex):
        return to_js_string(value)
    raise TypeError(f"{type(value).__name__} values cannot be converted to a primitive")


def js_string(value: Any) -> str:
    """JavaScript ``String(value)``: like `to_js_string` but `undefined` and `null` are named."""
    if isinstance(value, str):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, Undefined):
        return "undefined"
    return to_js_string(to_primitive(value))


def to_number(value: Any) -> float:
    """JavaScript ``Number(value)``."""
    primitive = to_primitive(value)
    if isinstance(primitive, Undefined):
        return math.nan
    if primitive is None:
        return 0
    if isinstance(primitive, bool):
        return int(primitive)
    if isinstance(primitive, int | float):
        return primitive
    text = primitive.strip(JS_WHITESPACE)
    if not text:
        return 0
    if _INTEGER_LITERAL.fullmatch(text):
        return normalize_number(int(text))
    if _NUMBER_LITERAL.fullmatch(text):
        return normalize_number(float(text.replace("Infinity", "inf")))
    radix = _RADIX_LITERAL.fullmatch(text)
    if radix:
        try:
            return normalize_number(int(text, 0))
        except ValueError:
            return math.nan
    return math.nan


def parse_int(value: Any, radix: Any = JS_UNDEFINED) -> float:
    """JavaScript ``parseInt``: the longest prefix of digits, NaN when there is none."""
    text = js_string(value).lstrip(JS_WHITESPACE)
    sign = -1 if text.startswith("-") else 1
    text = text[1:] if text[:1] in ("+", "-") else text
    base = 0 if is_undefined(radix) else int(to_number(radix) or 0)
    if base in (0, 16) and text[:2].lower() == "0x":
        text, base = text[2:], 16
    base = base or 10
    if not 2 <= base <= 36:
        return math.nan
    digits = ""
    for char in text.lower():
        if not char.isascii() or not char.isalnum() or int(char, 36) >= base:
            break
        digits += char
    return normalize_number(sign * int(digits, base)) if digits else math.nan


def parse_float(value: Any) -> float:
    """JavaScript ``parseFloat``."""
    found = _NUMBER_LITERAL.match(js_string(value).lstrip(JS_WHITESPACE))
    if not found:
        return math.nan
    return normalize_number(float(found.group(0).replace("Infinity", "inf")))


def encode_uri_component(value: str) -> str:
    """JavaScript ``encodeURIComponent``."""
    return quote(value, safe="-_.!~*'()")


def to_integer(value: Any) -> float:
    """JavaScript ``ToIntegerOrInfinity``: NaN is 0, infinities stay, the rest truncates."""
    number = to_number(value)
    if math.isnan(number):
        return 0
    if math.isinf(number):
        return number
    return int(number)


def js_truthy(value: Any) -> bool:
    """JavaScript truthiness: arrays and objects are truthy even when empty."""
    if value is None or value is False or isinstance(value, Undefined):
        return False
    if isinstance(value, int | float):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return len(value) > 0
    return True


def strict_equal(left: Any, right: Any) -> bool:
    """JavaScript ``===``: primitives by type and value, everything else by identity."""
    if left is right:
        return not (isinstance(left, float) and math.isnan(left))
    if isinstance(left, Undefined) or isinstance(right, Undefined):
        return isinstance(left, Undefined) and isinstance(right, Undefined)
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if is_number(left) and is_number(right):
        return bool(left == right)
    if isinstance(left, str) and isinstance(right, str):
        return str(left) == str(right)
    return False


def same_value_zero(left: Any, right: Any) -> bool:
    """``SameValueZero`` (``Array.prototype.includes``): `===` where NaN equals NaN."""
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    return strict_equal(left, right)


def loose_equal(left: Any, right: Any) -> bool:
    """JavaScript ``==`` (what ``==`` means in a template)."""
    if strict_equal(left, right):
        return True
    left_nullish = left is None or isinstance(left, Undefined)
    right_nullish = right is None or isinstance(right, Undefined)
    if left_nullish or right_nullish:
        return left_nullish and right_nullish
    left_primitive = _is_primitive(left)
    right_primitive = _is_primitive(right)
    if not left_primitive and not right_primitive:
        return False
    left = left if left_primitive else to_primitive(left)
    right = right if right_primitive else to_primitive(right)
    if isinstance(left, str) and isinstance(right, str):
        return str(left) == str(right)
    return bool(to_number(left) == to_number(right))


def _is_primitive(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str | Undefined)


def compare_order(left: Any, right: Any) -> float:
    """The sign of JavaScript's relational comparison; NaN when the values are unordered."""
    left = to_primitive(left)
    right = to_primitive(right)
    if isinstance(left, str) and isinstance(right, str):
        return (left > right) - (left < right)
    difference = to_number(left) - to_number(right)
    return difference if not math.isnan(difference) else math.nan


def js_in(key: Any, container: Any) -> bool:
    """Nunjucks' ``in``: array membership, substring, or own key of an object."""
    if isinstance(container, list | tuple):
        return any(strict_equal(key, item) for item in container)
    if isinstance(container, str):
        return js_string(key) in container
    if isinstance(container, Mapping):
        return js_string(key) in container
    raise TypeError(f'Cannot use "in" operator to search for "{js_string(key)}" in this value')


def js_binop(operator: str, left: Any, right: Any) -> Any:
    """The arithmetic operators with JavaScript semantics (see `JsEnvironment.call_binop`)."""
    if operator == "+":
        if is_number(left) and is_number(right):
            return normalize_number(left + right)
        left, right = to_primitive(left), to_primitive(right)
        if isinstance(left, str) or isinstance(right, str):
            return js_string(left) + js_string(right)
    x, y = to_number(left), to_number(right)
    if operator == "+":
        return normalize_number(x + y)
    if operator == "-":
        return normalize_number(x - y)
    if operator == "*":
        return normalize_number(x * y)
    if operator in ("/", "//"):
        quotient = _divide(x, y)
        if operator == "//" and math.isfinite(quotient):
            return math.floor(quotient)
        return normalize_number(quotient)
    if operator == "%":
        if y == 0 or math.isnan(x) or math.isnan(y) or math.isinf(x):
            return math.nan
        if math.isinf(y):
            return x
        if isinstance(x, int) and isinstance(y, int):
            remainder = abs(x) % abs(y)
            return -remainder if x < 0 else remainder
        return normalize_number(math.fmod(x, y))
    if operator == "**":
        return _power(x, y)
    raise ValueError(f"unknown operator {operator!r}")


def _divide(x: float, y: float) -> float:
    if y == 0:
        if x == 0 or math.isnan(x):
            return math.nan
        negative = (x < 0) != (math.copysign(1.0, y) < 0)
        return -math.inf if negative else math.inf
    return x / y


def _power(base: float, exponent: float) -> float:
    # Exact integer powers only while they stay small; JavaScript computes in doubles anyway,
    # and this keeps `10 ** 10 ** 10` from tying up the worker.
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent >= 0
        and exponent * max(abs(base).bit_length(), 1) <= 64
    ):
        return normalize_number(base**exponent)
    try:
        return normalize_number(math.pow(base, exponent))
    except OverflowError:
        odd = isinstance(exponent, int) and exponent % 2 == 1
        return -math.inf if base < 0 and odd else math.inf
    except ValueError:
        return math.nan


def js_unop(operator: str, value: Any) -> Any:
    """Unary ``-`` and ``+`` with JavaScript number conversion."""
    number = to_number(value)
    return normalize_number(-number) if operator == "-" else number


def js_json(value: Any, indent: str | None = None) -> str | None:
    """JavaScript ``JSON.stringify``; None where JavaScript returns `undefined`.

    Object members that are `undefined` or functions are left out, and in arrays they become
    ``null``; NaN and infinities become ``null``; numbers are written as JavaScript writes them.
    """
    if _json_omitted(value):
        return None
    parts: list[str] = []
    _write_json(value, indent, "", parts)
    return "".join(parts)


def _json_omitted(value: Any) -> bool:
    return isinstance(value, Undefined) or (
        callable(value) and not isinstance(value, Mapping | list | tuple | str)
    )


def _write_json(value: Any, indent: str | None, prefix: str, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif isinstance(value, str):
        out.append(encode_basestring(value))
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int | float):
        finite = not isinstance(value, float) or math.isfinite(value)
        out.append(number_to_string(value) if finite else "null")
    elif isinstance(value, list | tuple):
        _write_json_items("[]", [(None, item) for item in value], indent, prefix, out)
    elif isinstance(value, Mapping):
        members = [(str(key), item) for key, item in value.items() if not _json_omitted(item)]
        _write_json_items("{}", members, indent, prefix, out)
    elif isinstance(value, JsRegex):
        out.append("{}")
    else:
        raise TypeError(f"{type(value).__name__} values cannot be serialized to JSON")


def _write_json_items(
    brackets: str,
    items: Sequence[tuple[str | None, Any]],
    indent: str | None,
    prefix: str,
    out: list[str],
) -> None:
    if not items:
        out.append(brackets)
        return
    inner = prefix + indent if indent else prefix
    out.append(brackets[0])
    for index, (key, item) in enumerate(items):
        if index:
            out.append(",")
        if indent:
            out.append("\n" + inner)
        if key is not None:
            out.append(encode_basestring(key) + (": " if indent else ":"))
        if key is None and _json_omitted(item):
            out.append("null")
        else:
            _write_json(item, indent, inner, out)
    if indent:
        out.append("\n" + prefix)
    out.append(brackets[1])


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Unexpected token {name} in JSON")


def _parse_float(text: str) -> float:
    return normalize_number(float(text))


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float)


def parse_json(text: str) -> Any:
    """JavaScript ``JSON.parse``: rejects NaN and Infinity, integral numbers become ints."""
    return _DECODER.decode(text)


def iter_js(value: Any) -> Iterable[Any]:
    """What ``{% for %}`` walks: arrays, ``[key, value]`` pairs of objects, characters."""
    if value is None or isinstance(value, Undefined | bool | int | float):
        return ()
    if isinstance(value, Mapping):
        return [[key, item] for key, item in value.items()]
    if isinstance(value, str):
        return list(value)
    return value  # type: ignore[no-any-return]
