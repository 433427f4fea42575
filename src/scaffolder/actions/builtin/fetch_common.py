"""What the builtin actions share: their specs, fetch URL resolution, globs and JS-style JSON.

`resolve_fetch_source` is the one place a fetch action turns its ``url`` input into something
to read. Today only paths relative to a ``file://`` template location are readable; remote
readers (GitHub, plain HTTP) will slot in there.
"""

from __future__ import annotations

import errno
import functools
import itertools
import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from scaffolder.actions.base import ActionContext, ActionExample, TemplateAction
from scaffolder.errors import InputError, ScaffolderError
from scaffolder.tasks.workspace import resolve_within

_SCHEMAS_FILE = "schemas.json"

# WHATWG `new URL(x)` succeeds for anything starting with a scheme; that is how Backstage tells
# an absolute fetch URL from a path relative to the template.
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")

_GLOB_MAGIC = re.compile(r"[*?\[\]{}()!+@]")


# --- action specs ---------------------------------------------------------------------------


@functools.cache
def _load_specs() -> dict[str, Any]:
    text = resources.files(__package__).joinpath(_SCHEMAS_FILE).read_text(encoding="utf-8")
    specs: dict[str, Any] = json.loads(text)
    return specs


def build_action(
    action_id: str,
    handler: Callable[[ActionContext], None],
    *,
    supports_dry_run: bool,
) -> TemplateAction:
    """A `TemplateAction` whose description, schemas and examples come from ``schemas.json``.

    The file holds what Backstage 4.3.0 publishes in ``GET /v2/actions`` for each builtin, so
    the wire shape stays byte-for-byte the same as upstream.
    """
    spec = _load_specs()[action_id]
    schema: Mapping[str, Any] = spec["schema"]
    return TemplateAction(
        id=action_id,
        handler=handler,
        description=spec.get("description"),
        input_schema=schema.get("input"),
        output_schema=schema.get("output"),
        examples=tuple(
            ActionExample(description=e["description"], example=e["example"])
            for e in spec.get("examples", ())
        ),
        supports_dry_run=supports_dry_run,
    )


# --- fetch URL resolution -------------------------------------------------------------------


def is_absolute_url(url: str) -> bool:
    """Whether ``url`` carries a scheme (``https:``, ``file:``, ...), as ``new URL()`` decides."""
    return _URL_SCHEME.match(url) is not None


def resolve_fetch_source(
    url: str, template_info: Mapping[str, Any] | None, *, input_name: str = "url"
) -> Path:
    """Resolve a fetch action's ``url`` to a local path to read from.

    A relative ``url`` is resolved against the template's ``baseUrl``: with a ``file://`` base
    it is ``dirname(basePath)/url``, and it may not leave that directory (symlinks included).

    Args:
        url: the ``url`` input as the template wrote it (``./skeleton``).
        template_info: ``ctx.template_info`` (its ``baseUrl`` is where the template lives).
        input_name: the input named in errors.

    Raises:
        InputError: the URL is absolute (no remote reader is configured yet), the template
            location is unknown, no integration handles the base URL, or the path escapes the
            template directory.
    """
    if is_absolute_url(url):
        raise InputError(f"No integration found for location {url}")
    base_url = (template_info or {}).get("baseUrl")
    if not isinstance(base_url, str) or not base_url:
        raise InputError(
            "Failed to fetch, template location could not be determined and the fetch URL "
            f"is relative, {url}"
        )
    if not base_url.startswith("file://"):
        raise InputError(f"No integration found for location {base_url}")
    # Backstage slices the scheme off without URL-decoding, and so do we.
    base_path = base_url[len("file://") :]
    return resolve_within(Path(os.path.dirname(base_path)), url, input_name=input_name)


# --- confinement of output paths ------------------------------------------------------------


def is_inside(root: str, path: str) -> bool:
    """Whether the real path ``path`` is ``root`` or below it (both already resolved)."""
    return path == root or path.startswith(root + os.sep)


class ConfinedTree:
    """Maps paths relative to a root onto real paths that stay inside it.

    This is `resolve_within` for many paths at once: the real path of each parent directory is
    remembered, so confining a whole skeleton costs about one ``lstat`` per entry rather than
    one per path component.
    """

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self._dirs: dict[str, str] = {"": self.root}

    def resolve(self, rel: str) -> str | None:
        """The real path for ``rel``, or None if it (or a symlink on the way) leads outside.

        The last component is returned unresolved unless it is a symlink, so a path that does
        not exist yet can be created there.
        """
        found = self.lookup(rel)
        return None if found is None else found[0]

    def lookup(self, rel: str) -> tuple[str, os.stat_result | None] | None:
        """`resolve`, plus what is there now (``stat`` of the real path; None if nothing)."""
        norm = os.path.normpath(rel)
        if os.path.isabs(norm) or norm == ".." or norm.startswith(".." + os.sep):
            return None
        if norm == ".":
            return self.root, os.stat(self.root)
        parent, name = os.path.split(norm)
        real_parent = self._real_dir(parent)
        if real_parent is None:
            return None
        return self._follow(os.path.join(real_parent, name))

    def _real_dir(self, rel: str) -> str | None:
        cached = self._dirs.get(rel)
        if cached is not None:
            return cached
        parent, name = os.path.split(rel)
        real_parent = self._real_dir(parent)
        if real_parent is None:
            return None
        found = self._follow(os.path.join(real_parent, name))
        if found is None:
            return None
        real, st = found
        # Only existing directories are remembered: a missing one may yet be created as
        # something else.
        if st is not None and stat.S_ISDIR(st.st_mode):
            self._dirs[rel] = real
        return real

    def _follow(self, path: str) -> tuple[str, os.stat_result | None] | None:
        # `path` is a real directory inside the root joined with one plain name, so only a
        # symlink there can lead out.
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return path, None
        if not stat.S_ISLNK(st.st_mode):
            return path, st
        path = os.path.realpath(path)
        if not is_inside(self.root, path):
            return None
        try:
            return path, os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return path, None


# --- directory walks ------------------------------------------------------------------------


def read_file(path: str, flags: int = 0) -> bytes:
    """A file's bytes through ``os.open``/``os.read`` (``flags`` added, e.g. O_NOFOLLOW).

    ``open(path, "rb")`` adds an fstat, an isatty ioctl and an lseek to every file; a task
    reads dozens, and in a busy worker each system call hands the GIL to another thread.
    """
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def walk_breadth_first(root: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every entry below ``root`` as ``(relative path, entry)``, never following symlinks.

    The order is what Backstage's ``globby('**/*')`` produces: each directory's entries sorted
    by name (libuv's ``scandir`` sorts), directories read in the order they were found.
    """
    queue: list[str] = [""]
    index = 0
    while index < len(queue):
        rel_dir = queue[index]
        index += 1
        with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            yield rel, entry
            if entry.is_dir(follow_symlinks=False):
                queue.append(rel)


# --- globs ----------------------------------------------------------------------------------


def has_glob_magic(pattern: str) -> bool:
    """Whether ``pattern`` has wildcard characters (otherwise it is a plain path)."""
    return _GLOB_MAGIC.search(pattern) is not None


def _expand_braces(pattern: str) -> list[str]:
    depth = 0
    start = -1
    commas: list[int] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            if depth == 0:
                start, commas = i, []
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0 and commas:
                head, tail = pattern[:start], pattern[i + 1 :]
                cuts = [start, *commas, i]
                options = [pattern[a + 1 : b] for a, b in itertools.pairwise(cuts)]
                return [
                    expanded
                    for option in options
                    for expanded in _expand_braces(head + option + tail)
                ]
        elif ch == "," and depth == 1:
            commas.append(i)
        i += 1
    return [pattern]


def _translate_segment(segment: str) -> str:
    out: list[str] = []
    i = 0
    n = len(segment)
    while i < n:
        ch = segment[i]
        if ch == "\\" and i + 1 < n:
            out.append(re.escape(segment[i + 1]))
            i += 2
            continue
        if ch == "*":
            while i + 1 < n and segment[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = segment.find("]", i + 2 if i + 1 < n and segment[i + 1] in "!^" else i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = segment[i + 1 : end]
                negate = body[:1] in ("!", "^")
                if negate:
                    body = body[1:]
                body = body.replace("\\", "\\\\").replace("^", "\\^")
                out.append(f"[{'^/' if negate else ''}{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _translate(pattern: str) -> str:
    segments = pattern.split("/")
    regex = ""
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if segment == "**":
            if i == last:
                # fast-glob never reports the directory a trailing `/**` starts from.
                regex += ".+"
            else:
                regex += "(?:.*/)?"
        else:
            regex += _translate_segment(segment) + ("" if i == last else "/")
    return regex


def _normalise_pattern(pattern: str) -> str:
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern.rstrip("/") or "."


@functools.lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A regex matching the relative paths (``a/b.txt``, no trailing slash) ``pattern`` names.

    The dialect is fast-glob's with ``dot: true``: ``*``, ``?``, ``[...]``, ``{a,b}`` and
    ``**`` as a whole segment; wildcards match names that start with a dot.
    """
    alternatives = [_translate(_normalise_pattern(p)) for p in _expand_braces(pattern)]
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


class GlobSet:
    """globby's reading of a pattern list: ``!pattern`` excludes from the patterns before it.

    An excluded directory excludes everything below it, as fast-glob then never reads it.
    With ``cwd``, a pattern naming a directory there means everything below it, as globby's
    ``expandDirectories`` has it.
    """

    def __init__(self, patterns: Sequence[str], *, cwd: str | None = None) -> None:
        if cwd is not None:
            patterns = [_expand_directory(p, cwd) for p in patterns]
        self._rules: list[tuple[re.Pattern[str], list[re.Pattern[str]]]] = []
        for index, pattern in enumerate(patterns):
            if _is_negative(pattern):
                continue
            negatives = [compile_glob(p[1:]) for p in patterns[index + 1 :] if _is_negative(p)]
            self._rules.append((compile_glob(pattern), negatives))

    def __bool__(self) -> bool:
        return bool(self._rules)

    def matches(self, rel: str) -> bool:
        """Whether the relative path ``rel`` (no trailing slash) is selected."""
        for positive, negatives in self._rules:
            if positive.fullmatch(rel) and not any(_excluded(n, rel) for n in negatives):
                return True
        return False


def _expand_directory(pattern: str, cwd: str) -> str:
    negative = _is_negative(pattern)
    body = pattern[1:] if negative else pattern
    if not has_glob_magic(body) and os.path.isdir(os.path.join(cwd, body)):
        body = body.rstrip("/") + "/**"
    return f"!{body}" if negative else body


def _is_negative(pattern: str) -> bool:
    return pattern.startswith("!") and not pattern.startswith("!(")


def _excluded(negative: re.Pattern[str], rel: str) -> bool:
    if negative.fullmatch(rel):
        return True
    cut = rel.rfind("/")
    while cut > 0:
        if negative.fullmatch(rel[:cut]):
            return True
        cut = rel.rfind("/", 0, cut)
    return False


# --- JavaScript-compatible JSON and log lines -----------------------------------------------


def _js_value(value: Any) -> Any:
    if isinstance(value, float) and not isinstance(value, bool):
        if not math.isfinite(value):
            return None
        if value.is_integer() and abs(value) < 1e21:
            return int(value)
        return value
    if isinstance(value, Mapping):
        return {str(k): _js_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_js_value(v) for v in value]
    return value


def js_json(value: Any, *, indent: int | None = None, sort_keys: bool = False) -> str:
    """``JSON.stringify`` (or safe-stable-stringify with ``sort_keys``) of a JSON value.

    Integral floats print as integers and non-finite numbers as ``null``, as in JavaScript.
    """
    separators = (",", ": ") if indent is not None else (",", ":")
    return json.dumps(
        _js_value(value),
        indent=indent,
        sort_keys=sort_keys,
        ensure_ascii=False,
        separators=separators,
        default=str,
    )


def with_meta(message: str, meta: Any) -> str:
    """``message`` as winston's ``simple`` format prints ``logger.info(message, meta)``.

    The meta object is appended as compact JSON with sorted keys (safe-stable-stringify), but
    only when it is a non-empty object; its ``message`` is appended to the text instead.
    """
    if not isinstance(meta, Mapping):
        return message
    extra = meta.get("message")
    if isinstance(extra, str) and extra:
        message = f"{message} {extra}"
    elif extra not in (None, "", False, 0):
        message = f"{message} {js_json(extra)}"
    rest = {k: v for k, v in meta.items() if k not in ("level", "message", "splat")}
    if not rest:
        return message
    return f"{message} {js_json(rest, sort_keys=True)}"


def lexical_path(base: Path, user_path: str) -> str:
    """``path.resolve(base, user_path)``: absolute and normalised, symlinks left as they are.

    Backstage logs and outputs these paths, not the symlink-resolved ones.
    """
    return os.path.normpath(os.path.join(os.path.abspath(base), user_path))


def node_error(exc: OSError, syscall: str, path: str, dest: str | None = None) -> ScaffolderError:
    """A filesystem failure worded as Node reports it (``ENOENT: no such file ..., open 'p'``)."""
    code = errno.errorcode.get(exc.errno or 0, "Error")
    reason = (exc.strerror or str(exc)).lower()
    where = f"'{path}'" if dest is None else f"'{path}' -> '{dest}'"
    return ScaffolderError(f"{code}: {reason}, {syscall} {where}", cause=exc)


# --- symlinks in fetched trees --------------------------------------------------------------


def safe_link_text(source: str, source_root: str, dest: str, dest_root: str) -> str | None:
    """The target of symlink ``source`` if a copy of it at ``dest`` would stay inside.

    The link must resolve inside the tree it was fetched from (``source_root``) and, copied as
    is to ``dest``, inside ``dest_root``; an absolute target never qualifies, as it would point
    back into the template. Both roots and ``dest`` must be real paths.
    """
    text = os.readlink(source)
    if os.path.isabs(text) or not is_inside(source_root, os.path.realpath(source)):
        return None
    landing = os.path.realpath(os.path.join(os.path.dirname(dest), text))
    return text if is_inside(dest_root, landing) else None


def place_symlink(text: str, dest: str) -> None:
    """Create symlink ``dest`` -> ``text``, replacing a file or link already there."""
    if os.path.lexists(dest):
        if os.path.isdir(dest) and not os.path.islink(dest):
            raise ScaffolderError(f"Cannot overwrite directory '{dest}' with a symbolic link")
        os.unlink(dest)
    os.symlink(text, dest)
