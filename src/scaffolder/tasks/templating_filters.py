"""Nunjucks' built-in filters and tests, with nunjitsu's semantics.

The built-ins follow nunjitsu (Backstage's engine), not Jinja, where the two differ: ``join``
defaults to no separator, ``reverse``, ``batch`` and ``select`` return arrays, ``indent`` also
indents blank lines, ``title`` splits on spaces only, ``groupby`` returns an object, ``dump``
is ``JSON.stringify``, and conversions are JavaScript's. Jinja's other filters do not exist,
as they do not exist in Backstage.
"""

from __future__ import annotations

import functools
import math
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Final

from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from scaffolder.tasks.templating_intrinsics import join_items
from scaffolder.tasks.templating_js import (
    JS_UNDEFINED,
    JS_WHITESPACE,
    JsRegex,
    compare_order,
    encode_uri_component,
    is_number,
    is_undefined,
    js_binop,
    js_json,
    js_string,
    js_truthy,
    normalize_number,
    parse_float,
    parse_int,
    strict_equal,
    to_js_string,
    to_number,
)
from scaffolder.tasks.templating_regex import js_replace

_HTML_ESCAPES: Final = {"&": "&amp;", '"': "&quot;", "'": "&#39;", "<": "&lt;", ">": "&gt;"} | {
    "\\": "&#92;"
}
_HTML_ESCAPE_CHARS = re.compile(r"[&\"'<>\\]")
_HTML_TAGS = re.compile(r"</?([a-z][a-z0-9]*)\b[^>]*>|<!--[\s\S]*?-->", re.IGNORECASE | re.ASCII)
_JS_SPACE_RUN = re.compile(f"[{re.escape(JS_WHITESPACE)}]+")
_WORD = re.compile(r"\w+", re.ASCII)
_URLIZE_WORDS = re.compile(f"([{re.escape(JS_WHITESPACE)}]+)")
_URLIZE_PUNCTUATION = re.compile(r"(?:\(|<|&lt;)?(.*?)(?:\.|,|\)|\n|&gt;)?")
_EMAIL = re.compile(
    r"[\w.!#$%&'*+\-/=?^`{|}~]+@[a-z\d-]+(?:\.[a-z\d-]+)+", re.IGNORECASE | re.ASCII
)
_COMMON_DOMAIN = re.compile(r"\.(?:org|net|com)(?::|/|$)")
_MAX_SPACES: Final = 16 * 1024 * 1024


# --- helpers -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """The string a string filter works on; anything else is an error, as in nunjitsu."""
    if isinstance(value, str):
        return str(value)
    raise TypeError("Filter input must be a string")


def _normalized(value: Any) -> Any:
    return "" if value is None or value is False or is_undefined(value) else value


def _safe(text: str) -> Markup:
    # Markup only carries Nunjucks' "safe" flag here: autoescape is off, so nothing is ever
    # escaped on output and marking a string safe cannot let markup through.
    return Markup(text)  # noqa: S704


def _same_safeness(source: Any, result: str) -> str:
    return _safe(result) if isinstance(source, Markup) else result


def _spaces(count: float) -> str:
    if math.isnan(count) or count <= 0:
        return ""
    if count > _MAX_SPACES:
        raise ValueError("Filter spacing exceeds the supported bound")
    return " " * math.ceil(count)


def _sequence(value: Any) -> list[Any] | None:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        return list(value)
    return None


def own_value(target: Any, key: str) -> Any:
    """A JavaScript own-property read: object keys, array and string indexes, ``length``."""
    if isinstance(target, Mapping):
        return target.get(key, JS_UNDEFINED)
    if isinstance(target, list | tuple | str):
        if key == "length":
            return len(target)
        if key.isdigit() and str(int(key)) == key and int(key) < len(target):
            return target[int(key)]
    return JS_UNDEFINED


def _attribute(value: Any, key: Any) -> Any:
    if value is None or is_undefined(value):
        raise TypeError("Cannot read a template attribute from a nullish value")
    return own_value(value, js_string(key))


def _attribute_path(value: Any, path: Any) -> Any:
    segments = js_string(path).split(".") if js_truthy(path) else []
    for segment in segments:
        value = _attribute(value, segment)
    return value


def _projected(value: Any, attribute: Any, operation: str) -> list[Any]:
    if js_truthy(attribute):
        items = _sequence(value) if not isinstance(value, Mapping) else []
        return [_attribute(item, attribute) for item in items or []]
    if not isinstance(value, list | tuple):
        raise TypeError(f"{operation} requires an array")
    return list(value)


def escape_html(value: str) -> str:
    """HTML-escape the way Nunjucks does (``&#39;`` and ``&#92;`` included)."""
    return _HTML_ESCAPE_CHARS.sub(lambda match: _HTML_ESCAPES[match.group(0)], value)


# --- Nunjucks built-in filters -------------------------------------------------------------


def _abs(value: Any) -> float:
    return normalize_number(abs(to_number(value)))


def _batch(value: Any, width: Any, fill: Any = JS_UNDEFINED) -> list[list[Any]]:
    if value is None or is_undefined(value):
        raise TypeError("batch requires a sequence")
    size = to_number(width)
    if not math.isfinite(size) or int(size) <= 0:
        raise ValueError("Batch size must be a positive integer")
    items = _sequence(value) or []
    rows = [items[index : index + int(size)] for index in range(0, len(items), int(size))]
    if rows and js_truthy(fill):
        rows[-1].extend([fill] * (int(size) - len(rows[-1])))
    return rows


def _capitalize(value: Any) -> str:
    text = _text(_normalized(value)).lower()
    return _same_safeness(value, text[:1].upper() + text[1:])


def _center(value: Any, width: Any = JS_UNDEFINED) -> Any:
    value = _normalized(value)
    size = to_number(width if js_truthy(width) else 80)
    if not isinstance(value, str):
        return js_string(value)
    if len(value) >= size:
        return value
    spaces = size - len(value)
    return _same_safeness(value, _spaces(spaces / 2 - spaces % 2) + value + _spaces(spaces / 2))


def _default(value: Any, default: Any = JS_UNDEFINED, boolean: Any = False) -> Any:
    if js_truthy(boolean):
        return value if js_truthy(value) else default
    return default if is_undefined(value) else value


def _dictsort(value: Any, case_sensitive: Any = False, by: Any = JS_UNDEFINED) -> list[list[Any]]:
    if not isinstance(value, Mapping):
        raise TypeError("dictsort requires a record")
    if not is_undefined(by) and by not in ("key", "value"):
        raise ValueError("dictsort can only sort by key or value")
    position = 1 if by == "value" else 0

    def normalized(entry: list[Any]) -> Any:
        item = entry[position]
        return item.upper() if isinstance(item, str) and not js_truthy(case_sensitive) else item

    def compare(left: list[Any], right: list[Any]) -> int:
        a, b = normalized(left), normalized(right)
        return 1 if compare_order(a, b) > 0 else 0 if strict_equal(a, b) else -1

    return sorted(([key, item] for key, item in value.items()), key=functools.cmp_to_key(compare))


def _dump(value: Any, spaces: Any = JS_UNDEFINED) -> Any:
    indent: str | None = None
    if isinstance(spaces, str):
        indent = spaces[:10] or None
    elif is_number(spaces) and spaces > 0:
        indent = " " * min(10, int(spaces))
    text = js_json(value, indent)
    return JS_UNDEFINED if text is None else text


def _escape(value: Any) -> Markup:
    return value if isinstance(value, Markup) else _safe(escape_html(to_js_string(value)))


def _edge(value: Any, *, last: bool) -> Any:
    if value is None or is_undefined(value):
        raise TypeError(f"{'last' if last else 'first'} requires a sequence")
    if isinstance(value, list | tuple | str):
        return value[-1 if last else 0] if value else JS_UNDEFINED
    return JS_UNDEFINED


def _float(value: Any, default: Any = JS_UNDEFINED) -> Any:
    number = parse_float(value)
    return default if math.isnan(number) else number


def _int(value: Any, default: Any = JS_UNDEFINED, base: Any = JS_UNDEFINED) -> Any:
    number = parse_int(value, base)
    return default if math.isnan(number) else number


def _groupby(value: Any, attribute: Any = JS_UNDEFINED) -> dict[str, list[Any]]:
    if value is None or is_undefined(value):
        raise TypeError("groupby requires a sequence")
    groups: dict[str, list[Any]] = {}
    for item in _sequence(value) or []:
        groups.setdefault(js_string(_attribute_path(item, attribute)), []).append(item)
    return groups


def _indent(value: Any, width: Any = JS_UNDEFINED, first: Any = False) -> str:
    text = _text(_normalized(value))
    if not text:
        return ""
    indentation = _spaces(to_number(width if js_truthy(width) else 4))
    lines = text.split("\n")
    start = 0 if js_truthy(first) else 1
    lines[start:] = [indentation + line for line in lines[start:]]
    return _same_safeness(value, "\n".join(lines))


def _join(value: Any, separator: Any = JS_UNDEFINED, attribute: Any = JS_UNDEFINED) -> str:
    glue = js_string(separator) if js_truthy(separator) else ""
    return join_items(_projected(value, attribute, "join"), glue)


def _length(value: Any) -> Any:
    if isinstance(value, list | tuple | Mapping | str):
        return len(value)
    return 0 if value is None or value is False or is_undefined(value) else JS_UNDEFINED


def _list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple | str):
        return list(value)
    if isinstance(value, Mapping):
        return [{"key": key, "value": item} for key, item in value.items()]
    raise TypeError("list requires an iterable value")


def _nl2br(value: Any) -> str:
    text = "" if value is None or is_undefined(value) else _text(value)
    return _same_safeness(value, re.sub(r"\r\n|\n", "<br />\n", text))


@pass_context  # never folded at compile time: the result must differ between renders
def _random(_context: Context, value: Any) -> Any:
    if value is None or is_undefined(value):
        raise TypeError("random requires a sequence")
    items = _sequence(value)
    return secrets.choice(items) if items else JS_UNDEFINED


def _replace(
    value: Any, search: Any, replacement: Any = JS_UNDEFINED, maximum: Any = JS_UNDEFINED
) -> Any:
    if isinstance(search, JsRegex):
        return js_replace(_text(value), search, replacement)
    if not (isinstance(search, str) or is_number(search)):
        return value
    if is_number(value):
        value = js_string(value)
    if not isinstance(value, str):
        return value
    needle, text = js_string(search), str(value)
    if not needle:
        inserted = js_string(replacement)
        separator = "," if is_undefined(replacement) else inserted
        return _same_safeness(value, inserted + separator.join(text) + inserted)
    if needle not in text or (is_number(maximum) and maximum == 0):
        return value
    count = -1 if is_undefined(maximum) else int(to_number(maximum))
    return _same_safeness(value, text.replace(needle, js_string(replacement), count))


def _reverse(value: Any) -> Any:
    if isinstance(value, str):
        return _same_safeness(value, value[::-1])
    return list(reversed(value)) if isinstance(value, list | tuple) else []


def _round(value: Any, precision: Any = JS_UNDEFINED, method: Any = JS_UNDEFINED) -> float:
    factor = 10 ** to_number(precision if js_truthy(precision) else 0)
    scaled = to_number(value) * factor
    if math.isfinite(scaled):
        if method == "ceil":
            scaled = math.ceil(scaled)
        elif method == "floor":
            scaled = math.floor(scaled)
        else:  # Math.round: halves go up, also for negative numbers
            scaled = math.floor(scaled + 0.5)
    return normalize_number(scaled / factor)


def _select(value: Any, test: Any, arguments: tuple[Any, ...], *, keep: bool) -> list[Any]:
    name = "truthy" if is_undefined(test) else js_string(test)
    if name not in NUNJUCKS_TESTS:
        raise ValueError(f"Unknown template test {name}")
    if value is None or is_undefined(value):
        raise TypeError(f"{'select' if keep else 'reject'} requires a sequence")
    check = NUNJUCKS_TESTS[name]
    return [item for item in _sequence(value) or [] if bool(check(item, *arguments)) is keep]


def _select_attribute(value: Any, attribute: Any, *, keep: bool) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise TypeError(f"{'selectattr' if keep else 'rejectattr'} requires an array")
    return [item for item in value if js_truthy(_attribute(item, attribute)) is keep]


def _slice(value: Any, count: Any, fill: Any = JS_UNDEFINED) -> list[Any]:
    items = _sequence(value)
    if items is None:
        raise TypeError("slice requires a sequence")
    slices = to_number(count)
    if not math.isfinite(slices) or int(slices) <= 0:
        raise ValueError("Slice count must be a positive integer")
    base, extra = divmod(len(items), int(slices))
    result: list[Any] = []
    offset = 0
    for index in range(int(slices)):
        size = base + (1 if index < extra else 0)
        part: Any = items[offset : offset + size]
        if isinstance(value, str):
            if js_truthy(fill) and index >= extra:
                raise ValueError("slice cannot append a fill value to a string")
            part = value[offset : offset + size]
        elif js_truthy(fill) and index >= extra:
            part.append(fill)
        result.append(part)
        offset += size
    return result


def _sort(
    value: Any, reverse: Any = False, case_sensitive: Any = False, attribute: Any = None
) -> list[Any]:
    items = _sequence(value) or []

    def compare(left: Any, right: Any) -> int:
        a, b = _attribute_path(left, attribute), _attribute_path(right, attribute)
        if not js_truthy(case_sensitive) and isinstance(a, str) and isinstance(b, str):
            a, b = a.lower(), b.lower()
        order = compare_order(a, b)
        if order < 0:
            return 1 if js_truthy(reverse) else -1
        if order > 0:
            return -1 if js_truthy(reverse) else 1
        return 0

    return sorted(items, key=functools.cmp_to_key(compare))


def _string(value: Any) -> str:
    if value is None or is_undefined(value):
        raise TypeError("string requires a value")
    return value if isinstance(value, Markup) else to_js_string(value)


def _striptags(value: Any, preserve_linebreaks: Any = False) -> str:
    text = _HTML_TAGS.sub("", _text(_normalized(value))).strip(JS_WHITESPACE)
    if js_truthy(preserve_linebreaks):
        text = re.sub(r"^ +| +$", "", text, flags=re.MULTILINE)
        text = re.sub(r"\n\n\n+", "\n\n", re.sub(" +", " ", text).replace("\r\n", "\n"))
    else:
        text = _JS_SPACE_RUN.sub(" ", text)
    return _same_safeness(value, text)


def _sum(value: Any, attribute: Any = JS_UNDEFINED, start: Any = JS_UNDEFINED) -> Any:
    total: Any = 0
    for item in _projected(value, attribute, "sum"):
        total = js_binop("+", total, item)
    return js_binop("+", 0 if is_undefined(start) else start, total)


def _title(value: Any) -> str:
    words = _text(_normalized(value)).split(" ")
    return _same_safeness(value, " ".join(word[:1].upper() + word[1:].lower() for word in words))


def _truncate(
    value: Any, length: Any = JS_UNDEFINED, killwords: Any = False, end: Any = JS_UNDEFINED
) -> Any:
    value = _normalized(value)
    limit = to_number(length if js_truthy(length) else 255)
    if not isinstance(value, str) or len(value) <= limit:
        return value
    cut = int(limit)
    if not js_truthy(killwords):
        space = value.rfind(" ", 0, cut + 1)
        cut = cut if space < 0 else space
    suffix = "..." if end is None or is_undefined(end) else js_string(end)
    return _same_safeness(value, value[:cut] + suffix)


def _urlencode(value: Any) -> str:
    if isinstance(value, str):
        return encode_uri_component(value)
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list | tuple):
        pairs = [(own_value(entry, "0"), own_value(entry, "1")) for entry in value]
    else:
        pairs = []
    return "&".join(
        f"{encode_uri_component(js_string(key))}={encode_uri_component(js_string(item))}"
        for key, item in pairs
    )


def _urlize(value: Any, length: Any = JS_UNDEFINED, nofollow: Any = False) -> str:
    limit = math.inf if is_undefined(length) else to_number(length)
    limit = math.inf if math.isnan(limit) else max(limit, 0)
    rel = ' rel="nofollow"' if nofollow is True else ""
    out: list[str] = []
    for word in _URLIZE_WORDS.split(_text(value)):
        if not word:
            continue
        found = _URLIZE_PUNCTUATION.fullmatch(word)
        url = found.group(1) if found else word
        short = url if math.isinf(limit) else url[: int(limit)]
        if url.startswith(("http://", "https://")):
            out.append(f'<a href="{url}"{rel}>{short}</a>')
        elif url.startswith("www."):
            out.append(f'<a href="http://{url}"{rel}>{short}</a>')
        elif _EMAIL.fullmatch(url):
            out.append(f'<a href="mailto:{url}">{url}</a>')
        elif _COMMON_DOMAIN.search(url):
            out.append(f'<a href="http://{url}"{rel}>{short}</a>')
        else:
            out.append(word)
    return "".join(out)


def _wordcount(value: Any) -> int | None:
    value = _normalized(value)
    if not js_truthy(value):
        return None
    return len(_WORD.findall(_text(value))) or None


_NUNJUCKS_FILTERS: Final[Mapping[str, Callable[..., Any]]] = {
    "abs": _abs,
    "batch": _batch,
    "capitalize": _capitalize,
    "center": _center,
    "d": _default,
    "default": _default,
    "dictsort": _dictsort,
    "dump": _dump,
    "e": _escape,
    "escape": _escape,
    "first": functools.partial(_edge, last=False),
    "float": _float,
    "forceescape": lambda value: _safe(escape_html(to_js_string(value))),
    "groupby": _groupby,
    "indent": _indent,
    "int": _int,
    "join": _join,
    "last": functools.partial(_edge, last=True),
    "length": _length,
    "list": _list,
    "lower": lambda value: _text(_normalized(value)).lower(),
    "nl2br": _nl2br,
    "random": _random,
    "reject": lambda value, test=JS_UNDEFINED, *args: _select(value, test, args, keep=False),
    "rejectattr": functools.partial(_select_attribute, keep=False),
    "replace": _replace,
    "reverse": _reverse,
    "round": _round,
    "safe": lambda value: value if isinstance(value, Markup) else _safe(to_js_string(value)),
    "select": lambda value, test=JS_UNDEFINED, *args: _select(value, test, args, keep=True),
    "selectattr": functools.partial(_select_attribute, keep=True),
    "slice": _slice,
    "sort": _sort,
    "string": _string,
    "striptags": _striptags,
    "sum": _sum,
    "title": _title,
    "trim": lambda value: _same_safeness(value, _text(value).strip(JS_WHITESPACE)),
    "truncate": _truncate,
    "upper": lambda value: _text(_normalized(value)).upper(),
    "urlencode": _urlencode,
    "urlize": _urlize,
    "wordcount": _wordcount,
}


def nunjucks_filters(*, cookiecutter_compat: bool) -> dict[str, Callable[..., Any]]:
    """The built-in filters; cookiecutter mode adds Jinja's name ``jsonify`` for ``dump``."""
    filters = dict(_NUNJUCKS_FILTERS)
    if cookiecutter_compat:
        filters["jsonify"] = _dump
    return filters


# --- tests (`x is defined`) ----------------------------------------------------------------


def _case_test(value: Any, *, upper: bool) -> bool:
    if isinstance(value, Markup):
        return False
    text = _text(value)
    return text == (text.upper() if upper else text.lower())


def _iterable(value: Any) -> bool:
    if value is None or is_undefined(value):
        raise TypeError("iterable test requires a value")
    return isinstance(value, str | list | tuple)


NUNJUCKS_TESTS: Final[Mapping[str, Callable[..., bool]]] = {
    "callable": lambda value: callable(value) and not is_undefined(value),
    "defined": lambda value: not is_undefined(value),
    "divisibleby": lambda value, other: js_binop("%", value, other) == 0,
    "escaped": lambda value: isinstance(value, Markup),
    "eq": strict_equal,
    "equalto": strict_equal,
    "even": lambda value: js_binop("%", value, 2) == 0,
    "falsy": lambda value: not js_truthy(value),
    "ge": lambda value, other: compare_order(value, other) >= 0,
    "greaterthan": lambda value, other: compare_order(value, other) > 0,
    "gt": lambda value, other: compare_order(value, other) > 0,
    "iterable": _iterable,
    "le": lambda value, other: compare_order(value, other) <= 0,
    "lessthan": lambda value, other: compare_order(value, other) < 0,
    "lower": functools.partial(_case_test, upper=False),
    "lt": lambda value, other: compare_order(value, other) < 0,
    "mapping": lambda value: isinstance(value, Mapping | Markup | JsRegex),
    "ne": lambda value, other: not strict_equal(value, other),
    "null": lambda value: value is None,
    "number": is_number,
    "odd": lambda value: js_binop("%", value, 2) == 1,
    "sameas": strict_equal,
    "string": lambda value: isinstance(value, str) and not isinstance(value, Markup),
    "truthy": js_truthy,
    "undefined": is_undefined,
    "upper": functools.partial(_case_test, upper=True),
}
