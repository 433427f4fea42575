from __future__ import annotations

import os
from pathlib import Path

import pytest

from scaffolder.actions.builtin.fetch_common import (
    GlobSet,
    compile_glob,
    js_json,
    resolve_fetch_source,
    with_meta,
)
from scaffolder.errors import InputError


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    path = tmp_path / "templates" / "hello"
    (path / "skeleton").mkdir(parents=True)
    (path / "template.yaml").write_text("kind: Template\n")
    return path


def _info(template_dir: Path) -> dict[str, str]:
    return {"baseUrl": f"file://{template_dir}/template.yaml"}


def test_relative_url_resolves_beside_the_template(template_dir: Path) -> None:
    assert resolve_fetch_source("./skeleton", _info(template_dir)) == template_dir / "skeleton"
    assert resolve_fetch_source(".", _info(template_dir)) == template_dir


@pytest.mark.parametrize("url", ["../other", "./skeleton/../../x", "/etc"])
def test_relative_url_may_not_leave_the_template_dir(template_dir: Path, url: str) -> None:
    with pytest.raises(InputError, match="Invalid input 'url'"):
        resolve_fetch_source(url, _info(template_dir))


def test_symlink_out_of_the_template_dir_is_refused(template_dir: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path, template_dir / "escape")

    with pytest.raises(InputError, match="Invalid input 'url'"):
        resolve_fetch_source("./escape", _info(template_dir))


def test_relative_url_without_a_template_location() -> None:
    with pytest.raises(InputError) as info:
        resolve_fetch_source("./skeleton", None)

    assert info.value.message == (
        "Failed to fetch, template location could not be determined and the fetch URL is "
        "relative, ./skeleton"
    )


def test_relative_url_with_a_remote_base() -> None:
    base = "https://github.com/o/r/blob/main/template.yaml"

    with pytest.raises(InputError, match=f"^No integration found for location {base}$"):
        resolve_fetch_source("./skeleton", {"baseUrl": base})


@pytest.mark.parametrize(
    "url", ["https://github.com/o/r/tree/main/x", "http://h/x", "file:///etc", "c:/x"]
)
def test_absolute_urls_have_no_reader_yet(template_dir: Path, url: str) -> None:
    with pytest.raises(InputError, match=f"^No integration found for location {url}$"):
        resolve_fetch_source(url, _info(template_dir))


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("*.md", ["README.md", ".x.md"], ["docs/a.md", "README.txt"]),
        ("**/*.md", ["README.md", "docs/a.md", "a/b/c.md"], ["a.txt"]),
        ("docs/**", ["docs/a", "docs/a/b"], ["docs", "other/a"]),
        ("a/**/b", ["a/b", "a/x/y/b"], ["a/x/c"]),
        ("{src,lib}/*.py", ["src/a.py", "lib/b.py"], ["test/c.py"]),
        ("file?.[ch]", ["file1.c", "filex.h"], ["file1.o", "file12.c"]),
        ("[!a]*", ["b", ".a"], ["abc"]),
        ("./.github/*", [".github/ci.yml"], [".github/a/b"]),
        ("**", ["a", "a/b", ".x"], []),
    ],
)
def test_glob_dialect(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = compile_glob(pattern)
    for path in matches:
        assert regex.fullmatch(path), path
    for path in misses:
        assert not regex.fullmatch(path), path


def test_negation_applies_to_earlier_patterns_and_whole_directories() -> None:
    globs = GlobSet(["static/**", "!static/keep.txt", "!static/vendor", "*.png"])

    assert globs.matches("static/a.css")
    assert not globs.matches("static/keep.txt")
    assert not globs.matches("static/vendor/lib.js")
    assert globs.matches("logo.png")
    assert GlobSet(["!*.png", "*.png"]).matches("x.png")


def test_directory_patterns_expand(tmp_path: Path) -> None:
    (tmp_path / "static").mkdir()

    globs = GlobSet(["static"], cwd=str(tmp_path))

    assert globs.matches("static/a/b.css")


def test_js_json() -> None:
    assert js_json({"b": 1.0, "a": [2.5, float("nan")], "é": "ü"}, sort_keys=True) == (
        '{"a":[2.5,null],"b":1,"é":"ü"}'
    )
    assert js_json({"x": {}}, indent=2) == '{\n  "x": {}\n}'


def test_with_meta_is_winstons_simple_format() -> None:
    assert with_meta("values", {"name": "n", "count": 2}) == 'values {"count":2,"name":"n"}'
    assert with_meta("values", {}) == "values"
    assert with_meta("values", None) == "values"
    assert with_meta("values", {"message": "hi", "x": 1}) == 'values hi {"x":1}'
