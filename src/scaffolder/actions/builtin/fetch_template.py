"""``fetch:template``: render a skeleton directory into the workspace.

Every entry's path is rendered; contents are rendered unless ``copyWithoutTemplating``
matches or ``templateFileExtension`` excludes the file. This runs once per task on the hot
path, so it reads the skeleton in place (no temporary copy), walks it once with
``os.scandir``, and writes text without a template tag as the bytes it read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import (
    ConfinedTree,
    GlobSet,
    build_action,
    is_inside,
    lexical_path,
    node_error,
    place_symlink,
    read_file,
    resolve_fetch_source,
    safe_link_text,
    walk_breadth_first,
    with_meta,
)
from scaffolder.errors import InputError, ScaffolderError
from scaffolder.tasks.templating import Templater

ACTION_ID = "fetch:template"

EXTENSION_INCOMPATIBLE = (
    "Fetch action input extension incompatible with copyWithoutTemplating and cookiecutterCompat"
)
DEFAULT_TEMPLATE_EXTENSION = ".njk"

# isbinaryfile looks at this many leading bytes.
_BINARY_SNIFF_BYTES = 512
# Bytes isbinaryfile never counts as suspicious; a head made only of them is text.
_PLAIN_TEXT_BYTES = bytes([*range(7, 15), *range(32, 128)])


@dataclass(frozen=True, kw_only=True)
class _Options:
    target_path: str
    output: Path
    copy_only: list[str] | None
    extension: str | None
    cookiecutter_compat: bool
    trim_blocks: bool
    lstrip_blocks: bool
    replace: bool


def create_fetch_template_action(*, templater: Templater) -> TemplateAction:
    """Build ``fetch:template``.

    Inputs beyond Backstage's: ``copyWithoutRender`` is accepted and ignored by Backstage
    4.3.0; here it is honoured as an alias of ``copyWithoutTemplating`` (contents copied as
    is, paths still rendered), so older templates keep working.

    Entries whose rendered path is empty, starts with ``/`` or contains ``//`` are skipped
    (conditional files). Existing files are kept unless ``replace``. File modes are preserved,
    binary files copied as they are, and symlinks copied as links only when they stay inside
    both the skeleton and the workspace. A rendered path that leads outside ``targetPath`` is
    an `InputError`.

    Args:
        templater: renders paths and contents.
    """

    def handler(ctx: ActionContext) -> None:
        options = _read_options(ctx)
        ctx.logger.info("Fetching template content from remote URL")
        source = resolve_fetch_source(ctx.input["url"], ctx.template_info, input_name="url")
        if not source.is_dir():
            raise ScaffolderError(f"ENOENT: no such file or directory, scandir '{source}'")
        source_root = str(source)  # resolve_fetch_source returns the real path
        if is_inside(source_root, str(options.output)):
            raise InputError("targetPath must not be within template path")

        ctx.logger.info("Listing files and directories in template")
        entries = list(walk_breadth_first(source_root))
        copy_verbatim: set[str] = set()
        if options.copy_only:
            globs = GlobSet(options.copy_only, cwd=source_root)
            copy_verbatim = {rel for rel, _ in entries if globs.matches(rel)}

        values = ctx.input.get("values")
        ctx.logger.info(
            with_meta(
                f"Processing {len(entries)} template files/directories with input values", values
            )
        )
        render = _renderer(templater, options, values)
        writer = _Writer(ctx, options, source_root, render)
        for rel, entry in entries:
            ctx.signal.raise_if_cancelled()
            try:
                writer.process(rel, entry, verbatim=rel in copy_verbatim)
            except OSError as exc:
                raise node_error(exc, "open", str(exc.filename or rel)) from exc
        ctx.logger.info(
            f"Template result written to {lexical_path(ctx.workspace_path, options.target_path)}"
        )

    return build_action(ACTION_ID, handler, supports_dry_run=True)


def _read_options(ctx: ActionContext) -> _Options:
    target_path = ctx.input.get("targetPath")
    target_path = "./" if target_path is None else str(target_path)
    output = ctx.resolve_path(target_path, input_name="targetPath")
    copy_only: list[str] | None = None
    for key in ("copyWithoutTemplating", "copyWithoutRender"):
        patterns = ctx.input.get(key)
        if patterns is not None:
            copy_only = [*(copy_only or []), *patterns]
    cookiecutter_compat = bool(ctx.input.get("cookiecutterCompat"))
    requested = ctx.input.get("templateFileExtension")
    extension: str | None = None
    if requested:
        if copy_only is not None or cookiecutter_compat:
            raise InputError(EXTENSION_INCOMPATIBLE)
        extension = DEFAULT_TEMPLATE_EXTENSION if requested is True else str(requested)
        if not extension.startswith("."):
            extension = f".{extension}"
    return _Options(
        target_path=target_path,
        output=output,
        copy_only=copy_only,
        extension=extension,
        cookiecutter_compat=cookiecutter_compat,
        trim_blocks=bool(ctx.input.get("trimBlocks")),
        lstrip_blocks=bool(ctx.input.get("lstripBlocks")),
        replace=bool(ctx.input.get("replace")),
    )


def _renderer(templater: Templater, options: _Options, values: Any) -> Callable[[str, str], str]:
    context: Mapping[str, Any] = {
        "cookiecutter" if options.cookiecutter_compat else "values": values
    }

    def render(text: str, name: str) -> str:
        return templater.render_string(
            text,
            context,
            cookiecutter_compat=options.cookiecutter_compat,
            trim_blocks=options.trim_blocks,
            lstrip_blocks=options.lstrip_blocks,
            name=name,
        )

    return render


class _Writer:
    """Writes one skeleton entry at a time into the output directory."""

    def __init__(
        self,
        ctx: ActionContext,
        options: _Options,
        source_root: str,
        render: Callable[[str, str], str],
    ) -> None:
        self._ctx = ctx
        self._options = options
        self._source_root = source_root
        self._render = render
        self._tree = ConfinedTree(ctx.workspace_path)
        out_rel = os.path.relpath(options.output, self._tree.root)
        self._out_rel = "" if out_rel == "." else out_rel
        self._known_dirs: set[str] = set()

    def process(self, rel: str, entry: os.DirEntry[str], *, verbatim: bool) -> None:
        """Render the path of ``entry`` and write it, unless skipped."""
        is_dir = entry.is_dir(follow_symlinks=False)
        location = f"{rel}/" if is_dir else rel
        extension = self._options.extension
        if extension:
            render_contents = _extname(location) == extension
            local = location[: -len(extension)] if render_contents else location
        else:
            render_contents = not verbatim
            local = location
        local = self._render(local, location)
        if local == "" or local.startswith("/") or "//" in local:
            return
        dest, existing = self._destination(location, local)
        if existing is not None and not self._options.replace:
            return

        log = self._ctx.logger
        if not render_contents and not extension:
            log.info(f"Copying file/directory {location} without processing.")
        if is_dir:
            log.info(f"Writing directory {location} to template output path.")
            os.makedirs(dest, exist_ok=True)
            self._known_dirs.add(dest)
        elif entry.is_symlink():
            log.info(
                f"Copying file binary or symbolic link at {location}, to template output path."
            )
            self._copy_symlink(entry, location, dest)
        elif entry.is_file(follow_symlinks=False):
            self._write_file(entry, location, dest, render_contents=render_contents)

    def _destination(self, location: str, local: str) -> tuple[str, os.stat_result | None]:
        norm = os.path.normpath(local)
        found = None
        if norm != ".." and not norm.startswith("../"):
            found = self._tree.lookup(os.path.join(self._out_rel, norm))
        if found is None:
            raise InputError(
                f"Invalid input 'values': template entry {location!r} renders to {local!r}, "
                "which leads outside targetPath"
            )
        return found

    def _ensure_parent(self, dest: str) -> None:
        parent = os.path.dirname(dest)
        if parent not in self._known_dirs:
            os.makedirs(parent, exist_ok=True)
            self._known_dirs.add(parent)

    def _copy_symlink(self, entry: os.DirEntry[str], location: str, dest: str) -> None:
        text = safe_link_text(entry.path, self._source_root, dest, self._tree.root)
        if text is None:
            self._ctx.logger.warn(
                f"Skipping symbolic link {location}: it points outside the template."
            )
            return
        self._ensure_parent(dest)
        place_symlink(text, dest)

    def _write_file(
        self, entry: os.DirEntry[str], location: str, dest: str, *, render_contents: bool
    ) -> None:
        mode = entry.stat(follow_symlinks=False).st_mode
        data = read_file(entry.path)
        self._ensure_parent(dest)
        log = self._ctx.logger
        if is_binary(data):
            log.info(
                f"Copying file binary or symbolic link at {location}, to template output path."
            )
            _write(dest, data, mode)
            os.chmod(dest, stat.S_IMODE(mode))
            return
        log.info(f"Writing file {location} to template output path with mode {mode}.")
        if render_contents:
            text = data.decode("utf-8", errors="replace")
            rendered = self._render(text, location)
            if rendered is not text:
                data = rendered.encode("utf-8")
        _write(dest, data, mode)


def _write(dest: str, data: bytes, mode: int) -> None:
    # Like Node's `writeFile(path, data, {mode})`: the mode (less the umask) applies only
    # when the file is created.
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IMODE(mode))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _extname(location: str) -> str:
    # Node's `path.extname`: trailing slashes ignored, a leading dot is not an extension.
    path = location.rstrip("/")
    base = path[path.rfind("/") + 1 :]
    dot = base.rfind(".")
    return base[dot:] if dot > 0 else ""


def is_binary(data: bytes) -> bool:
    """isbinaryfile's verdict on the first 512 bytes: NUL bytes or >10% non-text bytes."""
    total = min(len(data), _BINARY_SNIFF_BYTES)
    if total == 0:
        return False
    head = data[:total]
    if head.startswith((b"\xef\xbb\xbf", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")):
        return False
    if head.startswith(b"\x84\x31\x95\x33"):
        return False
    if head.startswith(b"%PDF-"):
        return True
    if head.startswith((b"\xfe\xff", b"\xff\xfe")):
        return False
    if b"\x00" in head:
        return True
    if not head.translate(None, _PLAIN_TEXT_BYTES):
        return False
    suspicious = 0
    i = 0
    while i < total:
        byte = head[i]
        if (byte < 7 or byte > 14) and (byte < 32 or byte > 127):
            width = _utf8_width(head, i, total)
            if width:
                i += width
                continue
            suspicious += 1
            if i >= 32 and suspicious * 100 / total > 10:
                return True
        i += 1
    return suspicious * 100 / total > 10


def _utf8_width(data: bytes, i: int, total: int) -> int:
    lead = data[i]
    if 0xC0 <= lead <= 0xDF:
        width = 2
    elif 0xE0 <= lead <= 0xEF:
        width = 3
    elif 0xF0 <= lead <= 0xF7:
        width = 4
    else:
        return 0
    if i + width - 1 >= total:
        return 0
    if all(0x80 <= data[i + k] <= 0xBF for k in range(1, width)):
        return width
    return 0
