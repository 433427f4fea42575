"""Workspace archives (CONTRACT §11.6): what is packed, and what unpacking refuses.

Every hostile archive is refused before or while unpacking into an empty workspace, and
nothing lands outside it: each case names the paths outside that must stay absent.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from scaffolder.tasks.workspace_archive import (
    MAX_EXPANSION,
    STEPS_HEADER,
    UnsafeArchiveError,
    WorkspaceTooLargeError,
    archived_steps,
    pack_workspace,
    unpack_workspace,
)

MIB = 1024 * 1024


def _tree(root: Path) -> dict[str, str]:
    """Every entry under ``root``: file contents, ``dir``, or ``-> target`` for links."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = f"-> {os.readlink(path)}"
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = path.read_text()
    return found


def test_a_workspace_round_trips_with_its_links_as_links(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "f.txt").write_text("hello")
    (src / "a" / "b" / "f.txt").chmod(0o755)
    (src / "empty").mkdir()
    (src / "a" / "rel").symlink_to("b/f.txt")
    (src / "abs").symlink_to(src / "a" / "b")  # absolute, inside: stored relative
    (src / "dangling").symlink_to("not-yet")
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    (src / "out").symlink_to(outside)  # leads outside: left out
    (src / "up").symlink_to("../secret.txt")  # so does this
    os.mkfifo(src / "fifo")  # not a file: left out

    data = pack_workspace(src, steps=["make", "fetch", "make"], max_bytes=MIB)
    assert archived_steps(data) == ["fetch", "make"]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
        assert json.loads(tar.pax_headers[STEPS_HEADER]) == ["fetch", "make"]
    assert not {"out", "up", "fifo"} & set(names)
    assert b"not yours" not in gzip.decompress(data)

    dest = tmp_path / "dest"
    dest.mkdir()
    unpack_workspace(data, dest, max_bytes=MIB)
    assert _tree(dest) == {
        "a": "dir",
        "a/b": "dir",
        "a/b/f.txt": "hello",
        "a/rel": "-> b/f.txt",
        "abs": "-> a/b",
        "dangling": "-> not-yet",
        "empty": "dir",
    }
    assert os.stat(dest / "a" / "b" / "f.txt").st_mode & 0o777 == 0o755


def test_an_empty_workspace_packs_and_unpacks(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    data = pack_workspace(tmp_path / "src", steps=["a"], max_bytes=MIB)
    assert archived_steps(data) == ["a"]
    (tmp_path / "dest").mkdir()
    unpack_workspace(data, tmp_path / "dest", max_bytes=MIB)
    assert _tree(tmp_path / "dest") == {}


def test_over_the_cap_is_refused_compressed_or_not(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "noise.bin").write_bytes(os.urandom(64 * 1024))
    with pytest.raises(WorkspaceTooLargeError, match="over 16384 bytes"):
        pack_workspace(src, steps=["a"], max_bytes=16 * 1024)
    assert pack_workspace(src, steps=["a"], max_bytes=128 * 1024)

    # Zeros compress to nothing: the bound on contents holds anyway.
    (src / "noise.bin").unlink()
    (src / "zeros.bin").write_bytes(bytes(MAX_EXPANSION * 1024 + 1))
    with pytest.raises(WorkspaceTooLargeError, match="bytes of files"):
        pack_workspace(src, steps=["a"], max_bytes=1024)


# --- hostile archives ------------------------------------------------------------------------


def _archive(build: Callable[[tarfile.TarFile], None], *, steps: list[str] | None = None) -> bytes:
    buffer = io.BytesIO()
    headers = {STEPS_HEADER: json.dumps(steps if steps is not None else ["make"])}
    with tarfile.open(
        fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers=headers
    ) as tar:
        root = tarfile.TarInfo(".")
        root.type = tarfile.DIRTYPE
        tar.addfile(root)
        build(tar)
    return buffer.getvalue()


def _file(tar: tarfile.TarFile, name: str, text: str = "pwned") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(text)
    tar.addfile(info, io.BytesIO(text.encode()))


def _link(tar: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def _special(tar: tarfile.TarFile, name: str, kind: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    tar.addfile(info)


#: name -> (what the archive holds, the refusal, the paths (from the test's tmp_path) that
#: must not exist afterwards). The workspace is tmp_path/work/ws.
HOSTILE: dict[str, tuple[Callable[[tarfile.TarFile, Path], None], str, list[str]]] = {
    "dot-dot": (lambda t, _: _file(t, "../x"), "climbs out", ["work/x"]),
    "deep-dot-dot": (lambda t, _: _file(t, "a/../../../x"), "climbs out", ["x"]),
    "absolute": (
        lambda t, tmp: _file(t, str(tmp / "outside" / "abs")),
        "absolute name",
        ["outside/abs"],
    ),
    "symlink-out-then-file-through-it": (
        lambda t, _: (_link(t, "out", "../../outside"), _file(t, "out/evil")),
        "leads outside",
        ["outside/evil"],
    ),
    "absolute-symlink-then-file-through-it": (
        lambda t, tmp: (_link(t, "out", str(tmp / "outside")), _file(t, "out/evil")),
        "absolute",
        ["outside/evil"],
    ),
    "file-through-an-inside-symlink": (
        lambda t, _: (_link(t, "in", "sub"), _file(t, "in/evil")),
        "lies under the symlink 'in'",
        [],
    ),
    "file-before-the-symlink-it-goes-through": (
        lambda t, _: (_file(t, "in/evil"), _link(t, "in", "../../outside")),
        "leads outside",
        ["outside/evil"],
    ),
    "symlink-chain-out": (
        # Each link reads as inside; on disk sub/b is sub, so a is sub/b/../.. = outside.
        lambda t, _: (
            _special(t, "sub", tarfile.DIRTYPE),
            _link(t, "sub/b", "."),
            _link(t, "a", "sub/b/../.."),
        ),
        "'a' -> 'sub/b/../..' leads outside",
        [],
    ),
    "hardlink": (
        lambda t, _: _link(t, "h", "/etc/passwd", tarfile.LNKTYPE),
        "not a regular file",
        [],
    ),
    "hardlink-inside": (
        lambda t, _: (_file(t, "f"), _link(t, "h", "f", tarfile.LNKTYPE)),
        "not a regular file",
        [],
    ),
    "fifo": (lambda t, _: _special(t, "p", tarfile.FIFOTYPE), "not a regular file", []),
    "device": (lambda t, _: _special(t, "d", tarfile.CHRTYPE), "not a regular file", []),
    "twice": (lambda t, _: (_file(t, "f"), _file(t, "f")), "appears twice", []),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_archive_is_refused_and_writes_nothing_outside(tmp_path: Path, case: str) -> None:
    build, refusal, absent = HOSTILE[case]
    (tmp_path / "outside").mkdir()
    workspace = tmp_path / "work" / "ws"
    workspace.mkdir(parents=True)
    data = _archive(lambda tar: build(tar, tmp_path))

    with pytest.raises(UnsafeArchiveError) as caught:
        unpack_workspace(data, workspace, max_bytes=MIB)
    assert refusal in caught.value.message
    for rel in absent:
        assert not (tmp_path / rel).exists(), rel
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "work"]
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["ws"]


def test_what_is_not_an_archive_of_ours_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchiveError, match="not a readable workspace archive"):
        archived_steps(b"not gzip at all")
    with pytest.raises(UnsafeArchiveError, match="does not say which steps"):
        archived_steps(_no_steps_archive())
    whole = _archive(lambda tar: _file(tar, "f", os.urandom(4096).hex()))
    truncated = whole[: len(whole) // 2]
    (tmp_path / "ws").mkdir()
    with pytest.raises(UnsafeArchiveError, match="could not be unpacked"):
        unpack_workspace(truncated, tmp_path / "ws", max_bytes=MIB)


def _no_steps_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        _file(tar, "f")
    return buffer.getvalue()


def test_a_bomb_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()

    def bomb(tar: tarfile.TarFile) -> None:
        _file(tar, "first", "small")
        info = tarfile.TarInfo("zeros")
        info.size = MAX_EXPANSION * 1024 + 1
        tar.addfile(info, io.BytesIO(bytes(info.size)))

    with pytest.raises(UnsafeArchiveError, match="bytes of files"):
        unpack_workspace(_archive(bomb), tmp_path / "ws", max_bytes=1024)
    assert list((tmp_path / "ws").iterdir()) == []
