"""Regex literals (``r/\\s+/g``): found in template source, executed with JavaScript rules.

nunjitsu runs with ``allowRegexExecution``, so Backstage templates may write
``${{ name | replace(r/[^a-z0-9]+/g, "-") }}``. Jinja cannot lex such a literal, so
`rewrite_regex_literals` turns it into ``("[^a-z0-9]+"|_js_regex("g"))`` before lexing; the
resulting `JsRegex` is executed here by ``replace``, ``split`` and ``test`` with the JavaScript
dialect and replacement syntax translated to Python's ``re``.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from scaffolder.tasks.templating_js import (
    JS_UNDEFINED,
    JsRegex,
    is_undefined,
    js_string,
    to_integer,
)

_COMMENT_END = re.compile(r"#\}")
_RAW_START = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}")
_RAW_END = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")


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


def compile_regex(regex: JsRegex) -> re.Pattern[str]:
    """The Python pattern equivalent to a template's regex literal (cached)."""
    return _compile(regex.source, regex.flags)


@functools.lru_cache(maxsize=256)
def _compile(source: str, flags: str) -> re.Pattern[str]:
    """Translate the JavaScript regex dialect where Python's differs, then compile."""
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(source):
        char = source[index]
        if char == "\\" and index + 1 < len(source):
            following = source[index + 1]
            named = re.match(r"k<(\w+)>", source[index + 1 :])
            if named:
                out.append(f"(?P={named.group(1)})")
                index += 1 + named.end()
                continue
            out.append("/" if following == "/" else char + following)
            index += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
            # Python reads these as set operations (and warns); JavaScript as literals.
            out.append("\\" + char if char in "[&~|" else char)
        elif char == "[":
            # `[]` matches nothing and `[^]` anything in JavaScript; Python rejects both.
            if source.startswith("[]", index):
                out.append("(?!)")
                index += 2
                continue
            if source.startswith("[^]", index):
                out.append(r"[\s\S]")
                index += 3
                continue
            in_class = True
            out.append(char)
            if source.startswith("[^", index):
                out.append("^")
                index += 1
        elif source.startswith("(?<", index) and source[index + 3 : index + 4] not in ("=", "!"):
            out.append("(?P<")
            index += 3
            continue
        elif char == "$" and "m" not in flags:
            # JavaScript's `$` never matches before a final newline; Python's does.
            out.append(r"\Z")
        else:
            out.append(char)
        index += 1
    options = re.ASCII
    if "i" in flags:
        options |= re.IGNORECASE
    if "m" in flags:
        options |= re.MULTILINE
    if "s" in flags:
        options |= re.DOTALL
    return re.compile("".join(out), options)


def _expand_replacement(template: str, match: re.Match[str]) -> str:
    """Expand ``$&``, ``$1``, ``$<name>``, ``$$``, ``$```, ``$'`` as ``String.replace`` does."""
    if "$" not in template:
        return template
    out: list[str] = []
    index = 0
    groups = match.re.groups
    while index < len(template):
        char = template[index]
        following = template[index + 1 : index + 2]
        if char != "$" or not following:
            out.append(char)
            index += 1
            continue
        if following == "$":
            out.append("$")
        elif following == "&":
            out.append(match.group(0))
        elif following == "`":
            out.append(match.string[: match.start()])
        elif following == "'":
            out.append(match.string[match.end() :])
        elif following == "<" and match.re.groupindex and ">" in template[index:]:
            end = template.index(">", index)
            out.append(match.groupdict().get(template[index + 2 : end]) or "")
            index = end + 1
            continue
        elif following.isdigit():
            two = template[index + 1 : index + 3]
            if len(two) == 2 and two.isdigit() and 1 <= int(two) <= groups:
                out.append(match.group(int(two)) or "")
                index += 3
                continue
            if 1 <= int(following) <= groups:
                out.append(match.group(int(following)) or "")
            else:
                out.append("$" + following)
        else:
            out.append("$" + following)
        index += 2
    return "".join(out)


def js_replace(text: str, pattern: Any, replacement: Any) -> str:
    """``String.prototype.replace``: a string pattern replaces the first match only."""
    template = js_string(replacement)
    if isinstance(pattern, JsRegex):
        count = 0 if pattern.is_global else 1
        return compile_regex(pattern).sub(
            lambda match: _expand_replacement(template, match), text, count=count
        )
    needle = js_string(pattern)
    found = re.compile(re.escape(needle)).search(text)
    if found is None:
        return text
    return text[: found.start()] + _expand_replacement(template, found) + text[found.end() :]


def js_split(text: str, separator: Any = JS_UNDEFINED, limit: Any = JS_UNDEFINED) -> list[Any]:
    """``String.prototype.split``, including capture groups of a regex separator."""
    maximum = math.inf if is_undefined(limit) else int(to_integer(limit)) % 2**32
    if maximum == 0:
        return []
    if is_undefined(separator):
        return [text]
    if isinstance(separator, JsRegex):
        parts = _regex_split(text, compile_regex(separator))
    else:
        needle = js_string(separator)
        parts = list(text) if needle == "" else text.split(needle)
    return parts if math.isinf(maximum) else parts[: int(maximum)]


def _regex_split(text: str, pattern: re.Pattern[str]) -> list[Any]:
    # ECMAScript's algorithm: an empty match right after the previous split point is skipped,
    # which Python's re.split does differently.
    if not text:
        return [] if pattern.match(text) else [text]
    parts: list[Any] = []
    start = position = 0
    while position < len(text):
        match = pattern.match(text, position)
        if match is None or match.end() == start:
            position += 1
            continue
        parts.append(text[start:position])
        parts.extend(match.groups())
        start = position = match.end()
        if match.end() == match.start():
            position += 1
    parts.append(text[start:])
    return parts


def regex_test(regex: JsRegex, value: Any) -> bool:
    """``RegExp.prototype.test``."""
    return compile_regex(regex).search(js_string(value)) is not None
