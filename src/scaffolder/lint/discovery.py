"""Which files each check looks at: one walk of the directory, sorted into targets."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath

#: Directories never walked into: VCS data, dependencies, caches.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".tox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".terraform",
        "cdk.out",
    }
)

#: The file that makes a directory a cookiecutter template.
COOKIECUTTER_JSON = "cookiecutter.json"

#: Text files larger than this are not sniffed for CloudFormation or catalog content.
MAX_SNIFF_BYTES = 4 * 1024 * 1024

_YAML_SUFFIXES = frozenset({".yaml", ".yml"})
_CFN_SUFFIXES = frozenset({".yaml", ".yml", ".json", ".template"})
_CFN_VERSION = re.compile(r"AWSTemplateFormatVersion")
_CFN_RESOURCES = re.compile(r"""^\s*["']?Resources["']?\s*:""", re.MULTILINE)
_CFN_AWS_TYPE = re.compile(r"""["']?Type["']?\s*:\s*["']?AWS::""")
_BACKSTAGE_API_VERSION = re.compile(
    r"""^apiVersion:\s*["']?(?:scaffolder\.)?backstage\.io/""", re.MULTILINE
)


@dataclass(frozen=True, kw_only=True, order=True)
class Target:
    """A file to check.

    Attributes:
        display: the path findings name, relative to the linted directory (POSIX).
        path: where the file is on disk (absolute; a rendered copy for cookiecutter files).
    """

    display: str
    path: Path


@dataclass(frozen=True, kw_only=True)
class Targets:
    """The files of one directory, sorted by the check that looks at them."""

    cloudformation: tuple[Target, ...] = ()
    dockerfiles: tuple[Target, ...] = ()
    yaml: tuple[Target, ...] = ()
    workflows: tuple[Target, ...] = ()
    catalog: tuple[Target, ...] = ()

    def __add__(self, other: Targets) -> Targets:
        return Targets(
            **{
                f.name: tuple(sorted({*getattr(self, f.name), *getattr(other, f.name)}))
                for f in fields(self)
            }
        )


def is_templated_dir(name: str) -> bool:
    """Whether a directory name is a cookiecutter placeholder (``{{cookiecutter.slug}}``)."""
    return "{{" in name and "}}" in name


@dataclass(frozen=True, kw_only=True)
class Discovery:
    """What one walk found.

    Attributes:
        targets: the files of each check.
        cookiecutters: directories holding a ``cookiecutter.json`` (when asked for), whose
            placeholder directories were left out of ``targets``.
    """

    targets: Targets
    cookiecutters: tuple[Path, ...] = ()


def discover(root: Path, *, prefix: str = "", find_cookiecutters: bool = False) -> Discovery:
    """Walk ``root`` and sort its files into the targets of each check.

    Symlinks are neither followed nor checked: a workspace could otherwise point a check at
    files outside it.

    Args:
        root: the directory to walk.
        prefix: put in front of every display path (where a rendered tree stands in the
            template, ``{{cookiecutter.slug}}``).
        find_cookiecutters: report directories with a ``cookiecutter.json`` and leave out
            their placeholder directories, whose files are checked once rendered instead.
    """
    found: dict[str, list[Target]] = {f.name: [] for f in fields(Targets)}
    cookiecutters: list[Path] = []
    for path, rel in _walk(root, cookiecutters if find_cookiecutters else None):
        target = Target(display=str(PurePosixPath(prefix, rel)) if prefix else rel, path=path)
        for kind in classify(path, rel):
            found[kind].append(target)
    targets = Targets(**{kind: tuple(sorted(items)) for kind, items in found.items()})
    return Discovery(targets=targets, cookiecutters=tuple(cookiecutters))


def classify(path: Path, rel: str) -> list[str]:
    """The `Targets` fields a file belongs to (empty for files no check reads)."""
    name = path.name
    suffix = path.suffix.lower()
    parts = PurePosixPath(rel).parts
    kinds: list[str] = []
    if name.startswith("Dockerfile") or name.lower().endswith(".dockerfile"):
        kinds.append("dockerfiles")
    if suffix in _YAML_SUFFIXES:
        kinds.append("yaml")
        if parts[-3:-1] == (".github", "workflows"):
            kinds.append("workflows")
    if suffix not in _CFN_SUFFIXES:
        return kinds
    text = _sniff(path)
    # Under infra/ any YAML is taken for a template; JSON there is often a parameters file.
    if ("infra" in parts[:-1] and suffix != ".json") or _is_cloudformation(text):
        kinds.append("cloudformation")
    is_entity_file = "catalog-info" in name or _BACKSTAGE_API_VERSION.search(text)
    if suffix in _YAML_SUFFIXES and "workflows" not in kinds and is_entity_file:
        kinds.append("catalog")
    return kinds


def _is_cloudformation(text: str) -> bool:
    if _CFN_VERSION.search(text):
        return True
    return bool(_CFN_RESOURCES.search(text) and _CFN_AWS_TYPE.search(text))


def _sniff(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_SNIFF_BYTES:
            return ""
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _walk(root: Path, cookiecutters: list[Path] | None) -> Iterator[tuple[Path, str]]:
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        is_cookiecutter = False
        if cookiecutters is not None and COOKIECUTTER_JSON in filenames:
            cookiecutters.append(here)
            is_cookiecutter = True
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIP_DIRS
            and not (here / d).is_symlink()
            and not (is_cookiecutter and is_templated_dir(d))
        )
        for name in sorted(filenames):
            path = here / name
            if path.is_symlink() or not path.is_file():
                continue
            yield path, path.relative_to(root).as_posix()
