"""``fetch:cookiecutter``: fetch a cookiecutter template and render it into the workspace.

Upstream Backstage shells out to a ``cookiecutter`` binary or a Docker image. Here the
cookiecutter library renders natively, in a child process of `CookiecutterPool`, so a task pays
no interpreter start and no template can touch the scaffolder process. What differs from
upstream, on purpose:

* ``url`` may also be a git URL (see `scaffolder.integrations.git`), fetched with a shallow,
  checked ``git fetch``; ``imageName`` is accepted and ignored (there is no Docker).
* A fetched directory with a ``cookiecutter.json`` is a normal cookiecutter template (its
  ``{{cookiecutter.*}}`` directory is the project, ``hooks/`` are its hooks). Without one it is
  upstream's layout: the directory itself is the project and ``values`` the whole context.
* ``values`` are data: nothing the user typed is rendered as Jinja (upstream writes values
  into cookiecutter.json, where cookiecutter renders them).
* Hooks, extensions beyond cookiecutter's own and non-sandboxed Jinja are for trusted template
  sources only (``scaffolder.trustedTemplates``; the bundled ``cookiecutters/`` always).
* It supports dry-run: it renders into the workspace as usual and touches nothing outside
  (hooks of trusted templates see ``SCAFFOLDER_DRY_RUN=1``).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import unquote, urlsplit

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import (
    build_action,
    has_glob_magic,
    is_absolute_url,
    is_inside,
    resolve_fetch_source,
)
from scaffolder.actions.builtin.fetch_plain import copy_tree
from scaffolder.errors import InputError, ScaffolderError
from scaffolder.integrations.cookiecutter import CookiecutterPool, RenderJob
from scaffolder.integrations.git import fetch_git, parse_git_url
from scaffolder.tasks.workspace import resolve_within

ACTION_ID = "fetch:cookiecutter"

#: The bundled ECS templates, trusted whatever the configuration says.
BUNDLED_TEMPLATES = Path(__file__).resolve().parents[4] / "cookiecutters"

#: The configuration key that lists trusted template sources.
TRUST_KEY = "scaffolder.trustedTemplates"

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


@dataclass(frozen=True)
class TrustedTemplates:
    """Template sources whose hooks and extensions may run (copier's trust list).

    Each entry is a path or URL prefix (``/srv/templates``, ``https://github.com/acme/``) or a
    glob (``https://github.com/acme/*-template``); a prefix matches at a ``/`` boundary. A
    source is the real path of a local template directory, or a git remote (``.git``
    dropped) followed by the subdirectory, if any.
    """

    entries: tuple[str, ...]

    @classmethod
    def from_config(
        cls, configured: Sequence[str], *, bundled: Path | None = BUNDLED_TEMPLATES
    ) -> TrustedTemplates:
        """The configured entries, normalised, plus the bundled templates directory."""
        entries = [] if bundled is None else [os.path.realpath(bundled)]
        for entry in configured:
            entries.append(_normalise(entry))
        return cls(tuple(dict.fromkeys(e for e in entries if e)))

    def allows(self, source: str) -> bool:
        """Whether ``source`` is trusted."""
        candidates = [_normalise(source)]
        if source.startswith("file://"):
            candidates.append(os.path.realpath(unquote(urlsplit(source).path)))
        for entry in self.entries:
            for candidate in candidates:
                if has_glob_magic(entry):
                    if fnmatch.fnmatchcase(candidate, entry):
                        return True
                elif candidate == entry or candidate.startswith(entry.rstrip("/") + "/"):
                    return True
        return False


def trust_hint(source: str) -> str:
    """How to trust ``source``: the configuration key and the entry to add."""
    return (
        f"To trust it, add {source!r} (or a prefix or glob that matches it) to {TRUST_KEY} in "
        "app-config.yaml."
    )


def create_fetch_cookiecutter_action(
    *,
    pool: CookiecutterPool,
    trusted: TrustedTemplates,
    git_hosts: Collection[str] = ("github.com",),
    git_file_roots: Sequence[Path] = (),
) -> TemplateAction:
    """Build ``fetch:cookiecutter``.

    Args:
        pool: renders in child processes.
        trusted: sources whose hooks and extensions may run.
        git_hosts: hosts an ``https://`` template URL may name (the configured integrations).
        git_file_roots: directories of local git hosts (``file://`` template URLs).
    """

    def handler(ctx: ActionContext) -> None:
        ctx.logger.info("Fetching and then templating using cookiecutter")
        url = str(ctx.input["url"])
        target_input = ctx.input.get("targetPath")
        target = ctx.resolve_path(
            "./" if target_input is None else str(target_input), input_name="targetPath"
        )
        work = ctx.create_temporary_directory()
        checkout: str | None = None
        if is_absolute_url(url):
            location = parse_git_url(url, hosts=git_hosts, file_roots=git_file_roots)
            clone = work / "cookiecutters" / location.name
            commit = fetch_git(location, clone, home=work / "home", signal=ctx.signal)
            ctx.logger.info(f"Fetched {location} at commit {commit[:12]}")
            template_dir = clone
            if location.subdir is not None:
                template_dir = resolve_within(clone, location.subdir, input_name="url")
            source, checkout = location.source, location.ref
        else:
            template_dir = resolve_fetch_source(url, ctx.template_info, input_name="url")
            source = str(template_dir)
        if not template_dir.is_dir():
            raise InputError(f"Invalid input 'url': {url} is not a directory")
        _refuse_outside_links(template_dir, source)

        is_trusted = trusted.allows(source)
        if ctx.input.get("imageName"):
            ctx.logger.info("imageName is ignored: cookiecutter runs natively, not in Docker")
        job = RenderJob(
            template_dir=template_dir,
            output_dir=work / "intermediate",
            work_dir=work,
            values=dict(ctx.input.get("values") or {}),
            trusted=is_trusted,
            source=source,
            trust_hint=trust_hint(source),
            template=url,
            checkout=checkout,
            copy_without_render=tuple(ctx.input.get("copyWithoutRender") or ()),
            extensions=tuple(ctx.input.get("extensions") or ()),
            dry_run=ctx.is_dry_run,
        )
        job.output_dir.mkdir()
        mode = "trusted" if is_trusted else "untrusted: sandboxed, no hooks"
        ctx.logger.info(f"Rendering {source} with cookiecutter {_cookiecutter_version()} ({mode})")
        result = pool.render(
            job, signal=ctx.signal, on_output=ctx.logger.info, on_log=ctx.logger.info
        )
        _place(ctx, _generated_dir(job.output_dir, result.project_dir), target)
        shown = "./" if target_input is None else str(target_input)
        ctx.logger.info(f"Generated {result.files} files into {shown}")

    return build_action(ACTION_ID, handler, supports_dry_run=True)


def _place(ctx: ActionContext, generated: Path, target: Path) -> None:
    """Put the generated tree over ``target``, as upstream's ``fs.copy`` does.

    When nothing at the top of ``target`` has a generated name and the tree holds no symbolic
    links, its entries are moved rather than copied (same filesystem: the step directory sits
    beside the workspace).
    """
    entries = os.listdir(generated)
    if not any(os.path.lexists(target / name) for name in entries) and not _has_links(generated):
        target.mkdir(parents=True, exist_ok=True)
        try:
            for name in entries:
                os.rename(generated / name, target / name)
            return
        except OSError:
            pass  # another filesystem: copy what is left
    copy_tree(ctx, generated, target)


def _has_links(root: Path) -> bool:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            if os.path.islink(os.path.join(dirpath, name)):
                return True
    return False


def _generated_dir(output_dir: Path, reported: Path) -> Path:
    """The one directory cookiecutter generated (upstream takes the first entry)."""
    root = os.path.realpath(output_dir)
    if reported.is_dir() and is_inside(root, os.path.realpath(reported)):
        return reported
    entries = sorted(output_dir.iterdir()) if output_dir.is_dir() else []
    if not entries:
        raise ScaffolderError("No data generated by cookiecutter")
    return entries[0]


def _refuse_outside_links(template_dir: Path, source: str) -> None:
    """A template may not read files outside itself through a symbolic link."""
    root = os.path.realpath(template_dir)
    for dirpath, dirnames, filenames in os.walk(template_dir):
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path) and not is_inside(root, os.path.realpath(path)):
                rel = os.path.relpath(path, template_dir)
                raise InputError(
                    f"Template {source} has a symbolic link {rel} that points outside it"
                )


def _normalise(entry: str) -> str:
    entry = entry.strip()
    if entry.startswith("file://"):
        entry = unquote(urlsplit(entry).path)
    if _URL.match(entry):
        return re.sub(r"\.git(?=/|$)", "", entry.rstrip("/"))
    if has_glob_magic(entry):
        return os.path.abspath(os.path.expanduser(entry))
    return os.path.realpath(os.path.expanduser(entry)) if entry else ""


@functools.cache
def _cookiecutter_version() -> str:
    try:
        return version("cookiecutter")
    except PackageNotFoundError:  # pragma: no cover - it is a dependency
        return "(unknown version)"
