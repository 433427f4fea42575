"""JavaScript intrinsic methods that templates may call.

Backstage templates call a fixed list of JavaScript methods on values, such as
``${{ parameters.name.startsWith("My") }}`` or ``${{ parameters.repo.split("/")[1] }}``.
`resolve_method` hands out exactly those (the lists in CONTRACT §6.4, plus nunjitsu's
Jinja-isms in cookiecutter mode) and nothing else; the Python methods of the same values stay
unreachable.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any, Final

from scaffolder.tasks.templating_js import (
    JS_UNDEFINED,
    JS_WHITESPACE,
    JsRegex,
    exponential_notation,
    is_number,
    is_undefined,
    js_string,
    number_to_string,
    same_value_zero,
    shortest_digits,
    strict_equal,
    to_integer,
    to_number,
)
from scaffolder.tasks.templating_regex import js_replace, js_split, regex_test

#: Array methods that change the array they are called on. A template that calls one gets a
#: private copy of its context, so it can never change the caller's data.
MUTATING_METHODS: Final = frozenset(
    {"append", "copyWithin", "fill", "insert", "pop", "push", "remove", "reverse", "shift"}
    | {"sort", "splice", "unshift"}
)

_HIGH_PRECISION = Context(prec=1000)


# --- number formatting ---------------------------------------------------------------------


def _digits_rounded(value: float, significant: int) -> tuple[str, int]:
    """``significant`` digits of ``|value|`` rounded half-up, and the exponent of the first."""
    if value == 0:
        return "0" * significant, 0
    rounded = Context(prec=significant, rounding=ROUND_HALF_UP).plus(Decimal(abs(value)))
    digits = "".join(str(digit) for digit in rounded.as_tuple().digits)
    return digits.ljust(significant, "0")[:significant], rounded.adjusted()


def _check_range(name: str, value: float, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ValueError(f"{name}() argument must be between {low} and {high}")
    return int(value)


def to_fixed(value: float, digits: Any = JS_UNDEFINED) -> str:
    """``Number.prototype.toFixed`` (rounds half away from zero on the exact binary value)."""
    places = _check_range("toFixed", 0 if is_undefined(digits) else to_integer(digits), 0, 100)
    if not math.isfinite(value) or abs(value) >= 1e21:
        return number_to_string(value)
    quantum = Decimal(1).scaleb(-places)
    exact = Decimal(value if value != 0 else 0)
    return f"{exact.quantize(quantum, rounding=ROUND_HALF_UP, context=_HIGH_PRECISION):f}"


def to_exponential(value: float, digits: Any = JS_UNDEFINED) -> str:
    """``Number.prototype.toExponential``."""
    if not math.isfinite(value):
        return number_to_string(value)
    sign = "-" if value < 0 else ""
    if is_undefined(digits):
        if value == 0:
            return "0e+0"
        shortest, point = shortest_digits(abs(value))
        return sign + exponential_notation(shortest, point - 1)
    places = _check_range("toExponential", to_integer(digits), 0, 100)
    return sign + exponential_notation(*_digits_rounded(value, places + 1))


def to_precision(value: float, precision: Any = JS_UNDEFINED) -> str:
    """``Number.prototype.toPrecision``."""
    if is_undefined(precision) or not math.isfinite(value):
        return number_to_string(value)
    places = _check_range("toPrecision", to_integer(precision), 1, 100)
    sign = "-" if value < 0 else ""
    digits, exponent = _digits_rounded(value, places)
    if exponent < -6 or exponent >= places:
        return sign + exponential_notation(digits, exponent)
    if exponent >= 0:
        whole, fraction = digits[: exponent + 1], digits[exponent + 1 :]
        return sign + whole + ("." + fraction if fraction else "")
    return f"{sign}0.{'0' * (-exponent - 1)}{digits}"


def number_to_radix(value: float, radix: Any = JS_UNDEFINED) -> str:
    """``Number.prototype.toString(radix)``."""
    base = 10 if is_undefined(radix) else _check_range("toString", to_integer(radix), 2, 36)
    if base == 10 or not math.isfinite(value):
        return number_to_string(value)
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    sign = "-" if value < 0 else ""
    whole = int(abs(value))
    fraction = abs(value) - whole
    text = ""
    while True:
        whole, digit = divmod(whole, base)
        text = alphabet[digit] + text
        if not whole:
            break
    if fraction:
        text += "."
        for _ in range(52):
            fraction *= base
            digit = int(fraction)
            text += alphabet[digit]
            fraction -= digit
            if not fraction:
                break
    return sign + text


# --- string methods ------------------------------------------------------------------------


def _clamp(value: Any, length: int, default: int) -> int:
    """A position argument clamped into ``0..length`` (``String.prototype`` style)."""
    if is_undefined(value):
        return default
    return int(min(max(to_integer(value), 0), length))


def _relative(value: Any, length: int, default: int) -> int:
    """A ``slice`` index: negative counts from the end, then clamped into ``0..length``."""
    if is_undefined(value):
        return default
    index = to_integer(value)
    return int(max(length + index, 0) if index < 0 else min(index, length))


def _char_at(text: str, position: Any = JS_UNDEFINED) -> str:
    index = 0 if is_undefined(position) else to_integer(position)
    return text[int(index)] if 0 <= index < len(text) else ""


def _char_code_at(text: str, position: Any = JS_UNDEFINED) -> float:
    index = 0 if is_undefined(position) else to_integer(position)
    return ord(text[int(index)]) if 0 <= index < len(text) else math.nan


def _concat(text: str, *values: Any) -> str:
    return text + "".join(js_string(value) for value in values)


def _ends_with(text: str, search: Any, end: Any = JS_UNDEFINED) -> bool:
    return text[: _clamp(end, len(text), len(text))].endswith(js_string(search))


def _includes(text: str, search: Any, position: Any = JS_UNDEFINED) -> bool:
    return js_string(search) in text[_clamp(position, len(text), 0) :]


def _index_of(text: str, search: Any, position: Any = JS_UNDEFINED) -> int:
    start = _clamp(position, len(text), 0)
    needle = js_string(search)
    return start if not needle else text.find(needle, start)


def _last_index_of(text: str, search: Any, position: Any = JS_UNDEFINED) -> int:
    number = math.nan if is_undefined(position) else to_number(position)
    start = len(text) if math.isnan(number) else _clamp(number, len(text), 0)
    needle = js_string(search)
    return text.rfind(needle, 0, start + len(needle))


def _slice(text: str, start: Any = JS_UNDEFINED, end: Any = JS_UNDEFINED) -> str:
    length = len(text)
    return text[_relative(start, length, 0) : _relative(end, length, length)]


def _starts_with(text: str, search: Any, position: Any = JS_UNDEFINED) -> bool:
    return text.startswith(js_string(search), _clamp(position, len(text), 0))


def _substring(text: str, start: Any = JS_UNDEFINED, end: Any = JS_UNDEFINED) -> str:
    low, high = _clamp(start, len(text), 0), _clamp(end, len(text), len(text))
    return text[min(low, high) : max(low, high)]


_STRING_METHODS: Final[Mapping[str, Callable[..., Any]]] = {
    "charAt": _char_at,
    "charCodeAt": _char_code_at,
    "concat": _concat,
    "endsWith": _ends_with,
    "includes": _includes,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "replace": js_replace,
    "slice": _slice,
    "split": js_split,
    "startsWith": _starts_with,
    "substring": _substring,
    "toLowerCase": str.lower,
    "toUpperCase": str.upper,
    "trim": lambda text: text.strip(JS_WHITESPACE),
    "trimEnd": lambda text: text.rstrip(JS_WHITESPACE),
    "trimStart": lambda text: text.lstrip(JS_WHITESPACE),
}

_NUMBER_METHODS: Final[Mapping[str, Callable[..., Any]]] = {
    "toExponential": to_exponential,
    "toFixed": to_fixed,
    "toPrecision": to_precision,
    "toString": number_to_radix,
}


# --- array methods -------------------------------------------------------------------------


def _at(items: list[Any], index: Any) -> Any:
    position = to_integer(index)
    if position < 0:
        position += len(items)
    return items[int(position)] if 0 <= position < len(items) else JS_UNDEFINED


def _array_concat(items: list[Any], *values: Any) -> list[Any]:
    result = list(items)
    for value in values:
        if isinstance(value, list | tuple):
            result.extend(value)
        else:
            result.append(value)
    return result


def _copy_within(
    items: list[Any], target: Any, start: Any = JS_UNDEFINED, end: Any = JS_UNDEFINED
) -> list[Any]:
    length = len(items)
    to, origin = _relative(target, length, 0), _relative(start, length, 0)
    count = min(_relative(end, length, length) - origin, length - to)
    if count > 0:
        items[to : to + count] = items[origin : origin + count]
    return items


def _fill(
    items: list[Any], value: Any = JS_UNDEFINED, start: Any = JS_UNDEFINED, end: Any = JS_UNDEFINED
) -> list[Any]:
    length = len(items)
    for index in range(_relative(start, length, 0), _relative(end, length, length)):
        items[index] = value
    return items


def _flat(items: list[Any], depth: Any = JS_UNDEFINED) -> list[Any]:
    levels = 1 if is_undefined(depth) else max(0, to_integer(depth))
    result: list[Any] = []
    for item in items:
        if levels > 0 and isinstance(item, list | tuple):
            result.extend(_flat(list(item), levels - 1))
        else:
            result.append(item)
    return result


def _array_includes(items: list[Any], value: Any, start: Any = JS_UNDEFINED) -> bool:
    return any(same_value_zero(value, item) for item in items[_relative(start, len(items), 0) :])


def _array_index_of(items: list[Any], value: Any, start: Any = JS_UNDEFINED) -> int:
    for index in range(_relative(start, len(items), 0), len(items)):
        if strict_equal(items[index], value):
            return index
    return -1


def _array_last_index_of(items: list[Any], value: Any, start: Any = JS_UNDEFINED) -> int:
    position = len(items) - 1 if is_undefined(start) else to_integer(start)
    if position < 0:
        position += len(items)
    for index in range(int(min(position, len(items) - 1)), -1, -1):
        if strict_equal(items[index], value):
            return index
    return -1


def join_items(items: list[Any] | tuple[Any, ...], separator: Any = JS_UNDEFINED) -> str:
    """``Array.prototype.join``: `null` and `undefined` items are written as ``""``."""
    glue = "," if is_undefined(separator) else js_string(separator)
    return glue.join(
        "" if item is None or is_undefined(item) else js_string(item) for item in items
    )


def _pop(items: list[Any]) -> Any:
    return items.pop() if items else JS_UNDEFINED


def _push(items: list[Any], *values: Any) -> int:
    items.extend(values)
    return len(items)


def _reverse(items: list[Any]) -> list[Any]:
    items.reverse()
    return items


def _shift(items: list[Any]) -> Any:
    return items.pop(0) if items else JS_UNDEFINED


def _array_slice(items: list[Any], start: Any = JS_UNDEFINED, end: Any = JS_UNDEFINED) -> list[Any]:
    length = len(items)
    return list(items[_relative(start, length, 0) : _relative(end, length, length)])


def _sort(items: list[Any]) -> list[Any]:
    # The default comparator orders by String() in UTF-16 code units; undefined goes last.
    items.sort(key=lambda item: (is_undefined(item), js_string(item).encode("utf-16-be")))
    return items


def _splice(
    items: list[Any], start: Any = JS_UNDEFINED, delete_count: Any = JS_UNDEFINED, *new: Any
) -> list[Any]:
    if is_undefined(start):
        return []
    begin = _relative(start, len(items), 0)
    if is_undefined(delete_count):
        end = len(items)
    else:
        end = begin + int(min(max(to_integer(delete_count), 0), len(items) - begin))
    removed = items[begin:end]
    items[begin:end] = new
    return removed


def _unshift(items: list[Any], *values: Any) -> int:
    items[0:0] = values
    return len(items)


_ARRAY_METHODS: Final[Mapping[str, Callable[..., Any]]] = {
    "at": _at,
    "concat": _array_concat,
    "copyWithin": _copy_within,
    "fill": _fill,
    "flat": _flat,
    "includes": _array_includes,
    "indexOf": _array_index_of,
    "join": join_items,
    "lastIndexOf": _array_last_index_of,
    "pop": _pop,
    "push": _push,
    "reverse": _reverse,
    "shift": _shift,
    "slice": _array_slice,
    "sort": _sort,
    "splice": _splice,
    "unshift": _unshift,
}


def _compat_pop(items: list[Any], index: Any = JS_UNDEFINED) -> Any:
    if is_undefined(index):
        return _pop(items)
    position = to_integer(index)
    if position < 0:
        position += len(items)
    return items.pop(int(position)) if 0 <= position < len(items) else JS_UNDEFINED


def _remove(items: list[Any], value: Any) -> list[Any]:
    index = _array_index_of(items, value)
    return [items.pop(index)] if index >= 0 else []


#: Python list methods nunjitsu accepts in cookiecutter mode, with its semantics.
_COMPAT_ARRAY_METHODS: Final[Mapping[str, Callable[..., Any]]] = {
    **_ARRAY_METHODS,
    "append": lambda items, value: _push(items, value),
    "count": lambda items, value: sum(1 for item in items if strict_equal(item, value)),
    "find": lambda items, value: _array_index_of(items, value),
    "index": lambda items, value: _array_index_of(items, value),
    "insert": lambda items, index, value: _splice(items, index, 0, value),
    "pop": _compat_pop,
    "remove": _remove,
}


def _record_get(record: Mapping[str, Any], key: Any, default: Any = JS_UNDEFINED) -> Any:
    name = js_string(key)
    return record.get(name, default)


#: Python dict methods nunjitsu accepts in cookiecutter mode (when no key shadows them).
_COMPAT_RECORD_METHODS: Final[Mapping[str, Callable[..., Any]]] = {
    "get": _record_get,
    "has_key": lambda record, key: js_string(key) in record,
    "items": lambda record: [[key, value] for key, value in record.items()],
    "keys": lambda record: list(record.keys()),
    "values": lambda record: list(record.values()),
}


def resolve_method(receiver: Any, name: str, *, cookiecutter_compat: bool) -> Any:
    """The allowed method ``name`` of ``receiver`` bound to it, or None if there is none.

    Only the JavaScript methods listed in CONTRACT §6.4 exist (and, in cookiecutter mode,
    nunjitsu's Python-style list and dict methods); every other name, including all of the
    Python methods of the same objects, resolves to nothing.
    """
    table: Mapping[str, Callable[..., Any]]
    if isinstance(receiver, str):
        receiver, table = str(receiver), _STRING_METHODS
    elif is_number(receiver):
        table = _NUMBER_METHODS
    elif isinstance(receiver, list | tuple):
        table = _COMPAT_ARRAY_METHODS if cookiecutter_compat else _ARRAY_METHODS
    elif isinstance(receiver, Mapping):
        table = _COMPAT_RECORD_METHODS if cookiecutter_compat else {}
    elif isinstance(receiver, JsRegex):
        table = {"test": regex_test}
    else:
        return None
    method = table.get(name)
    return functools.partial(method, receiver) if method is not None else None
