"""Committing and pushing with real git: bare repositories, a loopback HTTP server, the CLI."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from scaffolder.actions.base import CancelSignal
from scaffolder.cli import main
from scaffolder.errors import InputError, ScaffolderError, TaskCancelledError
from scaffolder.integrations.git_push import (
    GitAuthor,
    create_bare_repository,
    init_commit_push,
    list_remote_refs,
)
from scaffolder.integrations.scm import basic_auth_header
from tests.conftest import REPO
from tests.integration.git_tools import GitHttpServer, GitSpy, real_git, serve_git_http

AUTHOR = GitAuthor(name="Ada Lovelace", email="ada@example.com")
TOKEN = "ghs_s3cr3tT0kenValue"
USERNAME = "x-access-token"


@pytest.fixture
def spy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitSpy:
    installed = GitSpy.install(tmp_path / "spy")
    monkeypatch.setenv("PATH", f"{installed.bin}{os.pathsep}{os.environ['PATH']}")
    return installed


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A tree with what git likes to change: ignored files, CRLF, modes, a symlink."""
    root = tmp_path / "source"
    (root / "app").mkdir(parents=True)
    (root / "app" / "main.py").write_text("print('hi')\n")
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    (root / "debug.log").write_text("kept even though ignored\n")
    (root / "build").mkdir()
    (root / "build" / "out.txt").write_text("also kept\n")
    (root / ".gitattributes").write_text("*.txt text eol=lf\n*.bin filter=lfs\n")
    (root / "windows.txt").write_bytes(b"line one\r\nline two\r\n")
    (root / "blob.bin").write_bytes(bytes(range(256)))
    (root / "deploy.sh").write_text("#!/bin/sh\necho deploy\n")
    (root / "deploy.sh").chmod(0o755)
    (root / "link").symlink_to("app/main.py")
    return root


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    path = tmp_path / "host" / "o" / "r.git"
    assert create_bare_repository(path, branch="main")
    return path


def files_of(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Relative path -> (bytes or link target, executable), without .git."""
    found: dict[str, tuple[bytes, bool]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == ".git" or rel.startswith(".git/"):
            continue
        if path.is_symlink():
            found[rel] = (f"-> {os.readlink(path)}".encode(), False)
        elif path.is_file():
            found[rel] = (path.read_bytes(), os.access(path, os.X_OK))
    return found


def clone(url: str, dest: Path) -> Path:
    real_git("clone", "-q", "-c", "core.autocrlf=false", "--", url, str(dest))
    return dest


# --- committing exactly the tree ----------------------------------------------------------


def test_pushes_exactly_the_tree_with_author_committer_and_message(
    source: Path, bare: Path, tmp_path: Path
) -> None:
    before = files_of(source)
    sha = init_commit_push(
        source,
        bare.as_uri(),
        branch="main",
        message="Initial commit of payments",
        author=AUTHOR,
        auth_header=None,
        cancel=CancelSignal(),
    )

    assert re.fullmatch(r"[0-9a-f]{40}", sha)
    assert list_remote_refs(bare.as_uri(), auth_header=None, cancel=None) == [
        "HEAD",
        "refs/heads/main",
    ]
    assert real_git("--git-dir", str(bare), "rev-parse", "refs/heads/main").strip() == sha
    work = clone(bare.as_uri(), tmp_path / "clone")
    # Ignored files, CRLF line endings, an attribute filter, modes and the symlink: as they were.
    assert files_of(work) == before
    log = real_git("log", "--format=%an|%ae|%cn|%ce|%s|%P", cwd=work).splitlines()
    assert log == ["Ada Lovelace|ada@example.com|Ada Lovelace|ada@example.com|"
                   "Initial commit of payments|"]  # fmt: skip
    assert real_git("rev-parse", "--abbrev-ref", "HEAD", cwd=work).strip() == "main"
    # The source is left as it was: no .git, nothing added.
    assert files_of(source) == before
    assert not (source / ".git").exists()


def test_pushes_another_branch_and_an_empty_tree(tmp_path: Path, bare: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    sha = init_commit_push(
        empty,
        bare.as_uri(),
        branch="release/v1",
        message="empty",
        author=AUTHOR,
        auth_header=None,
        cancel=None,
    )
    assert list_remote_refs(bare.as_uri(), auth_header=None, cancel=None) == [
        "refs/heads/release/v1"
    ]
    tree = real_git("--git-dir", str(bare), "ls-tree", "-r", sha)
    assert tree == ""


def test_git_runs_with_safe_arguments_and_no_repository_in_the_source(
    source: Path, bare: Path, spy: GitSpy
) -> None:
    init_commit_push(
        source,
        bare.as_uri(),
        branch="main",
        message="--amend",
        author=AUTHOR,
        auth_header=None,
        cancel=None,
    )
    calls = spy.calls()
    assert [c.command for c in calls] == ["init", "add", "commit", "rev-parse", "push"]
    for call in calls:
        assert "core.hooksPath=/dev/null" in call.argv
        assert call.env["GIT_CONFIG_GLOBAL"] == os.devnull
        assert call.env["GIT_CONFIG_NOSYSTEM"] == "1"
        assert call.env["GIT_ALLOW_PROTOCOL"] == "file"
        assert call.env["GIT_TERMINAL_PROMPT"] == "0"
        assert "GIT_CONFIG_COUNT" not in call.env  # no header for a file remote
        assert not call.env["HOME"].startswith(str(Path.home()))
    push = calls[-1].argv
    assert push[push.index("--") :] == ("--", bare.as_uri(), push[-1])
    assert push[-1].endswith(":refs/heads/main")
    assert not push[-1].startswith("+")
    add = calls[1].argv
    assert add[-4:] == ("--all", "--force", "--", ".")
    commit = calls[2].argv
    assert "--message=--amend" in commit  # a message is never an option


def test_a_non_empty_remote_is_not_overwritten_unless_forced(
    source: Path, bare: Path, tmp_path: Path
) -> None:
    first = init_commit_push(
        source, bare.as_uri(), branch="main", message="one", author=AUTHOR,
        auth_header=None, cancel=None,
    )  # fmt: skip
    other = tmp_path / "other"
    other.mkdir()
    (other / "README.md").write_text("other\n")
    with pytest.raises(ScaffolderError, match=r"Failed to push to file://.*rejected"):
        init_commit_push(
            other, bare.as_uri(), branch="main", message="two", author=AUTHOR,
            auth_header=None, cancel=None,
        )  # fmt: skip
    assert real_git("--git-dir", str(bare), "rev-parse", "main").strip() == first
    second = init_commit_push(
        other, bare.as_uri(), branch="main", message="two", author=AUTHOR,
        auth_header=None, cancel=None, force=True,
    )  # fmt: skip
    assert real_git("--git-dir", str(bare), "rev-parse", "main").strip() == second


def test_cancel_stops_git(source: Path, bare: Path) -> None:
    signal = CancelSignal()
    signal.cancel()
    with pytest.raises(TaskCancelledError):
        init_commit_push(
            source, bare.as_uri(), branch="main", message="m", author=AUTHOR,
            auth_header=None, cancel=signal,
        )  # fmt: skip
    assert list_remote_refs(bare.as_uri(), auth_header=None, cancel=None) == []


# --- refused before git runs --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ext::sh -c touch% /tmp/pwned", "whitespace"),
        ("ext::sh", "transport helpers"),
        ("fd::3", "transport helpers"),
        ("fd::3,4/repo", "transport helpers"),
        ("-oProxyCommand=touch /tmp/pwned", "starts with '-'"),
        ("--upload-pack=touch", "starts with '-'"),
        ("git@github.com:o/r.git", "not a URL"),
        ("/srv/git/o/r.git", "not a URL"),
        ("git://example.com/o/r.git", "git scheme is not allowed"),
        ("ftp://example.com/o/r.git", "ftp scheme is not allowed"),
        ("http://example.com/o/r.git", "http:// only on loopback"),
        ("https://x-access-token:secret@github.com/o/r.git", "credentials"),
        ("https://user@github.com/o/r.git", "credentials"),
        ("file://otherhost/srv/o/r.git", "may not name a host"),
        ("https://github.com/o/r.git\n-c", "whitespace"),
    ],
)
def test_refused_urls_fail_before_git_runs(
    url: str, reason: str, source: Path, spy: GitSpy
) -> None:
    with pytest.raises(InputError, match=re.escape(reason)) as caught:
        init_commit_push(
            source, url, branch="main", message="m", author=AUTHOR,
            auth_header=None, cancel=None,
        )  # fmt: skip
    assert "secret" not in str(caught.value)
    assert spy.calls() == []
    with pytest.raises(InputError):
        list_remote_refs(url, auth_header=None, cancel=None)
    assert spy.calls() == []


@pytest.mark.parametrize(
    "branch", ["-f", "main..x", "refs/heads/main", "HEAD", "a b", "x.lock", "main\n"]
)
def test_refused_branches_fail_before_git_runs(
    branch: str, source: Path, bare: Path, spy: GitSpy
) -> None:
    with pytest.raises(InputError, match="Invalid branch name"):
        init_commit_push(
            source, bare.as_uri(), branch=branch, message="m", author=AUTHOR,
            auth_header=None, cancel=None,
        )  # fmt: skip
    assert spy.calls() == []


def test_refused_sources_headers_and_authors(source: Path, bare: Path, spy: GitSpy) -> None:
    nested = source / "vendor" / "lib"
    nested.mkdir(parents=True)
    (nested / ".git").write_text("gitdir: /elsewhere\n")
    with pytest.raises(InputError, match=r"contains vendor/lib/\.git"):
        init_commit_push(
            source, bare.as_uri(), branch="main", message="m", author=AUTHOR,
            auth_header=None, cancel=None,
        )  # fmt: skip
    (nested / ".git").unlink()
    with pytest.raises(InputError, match="only sent to an https remote"):
        init_commit_push(
            source, bare.as_uri(), branch="main", message="m", author=AUTHOR,
            auth_header=basic_auth_header(USERNAME, TOKEN), cancel=None,
        )  # fmt: skip
    with pytest.raises(InputError, match="single line"):
        init_commit_push(
            source, "https://github.com/o/r.git", branch="main", message="m", author=AUTHOR,
            auth_header="Authorization: x\nX-Evil: 1", cancel=None,
        )  # fmt: skip
    with pytest.raises(InputError, match="Invalid git author name"):
        GitAuthor(name="Eve <eve@example.com>", email="e@example.com")
    with pytest.raises(InputError, match="Invalid git author email"):
        GitAuthor(name="Eve", email="")
    assert spy.calls() == []


# --- a token over HTTP --------------------------------------------------------------------


@pytest.fixture
def http_host(tmp_path: Path) -> Iterator[GitHttpServer]:
    root = tmp_path / "http-host"
    assert create_bare_repository(root / "o" / "r.git", branch="main")
    # Let http-backend accept the push (it runs as the authenticated REMOTE_USER).
    yield from serve_git_http(root, username=USERNAME, token=TOKEN)


def test_a_token_reaches_the_server_only_as_a_header_from_the_environment(
    source: Path, http_host: GitHttpServer, spy: GitSpy, tmp_path: Path
) -> None:
    url = f"{http_host.base_url}/o/r.git"
    header = basic_auth_header(USERNAME, TOKEN)
    encoded = base64.b64encode(f"{USERNAME}:{TOKEN}".encode()).decode()

    assert list_remote_refs(url, auth_header=header, cancel=None) == []
    sha = init_commit_push(
        source, url, branch="main", message="over http", author=AUTHOR,
        auth_header=header, cancel=None,
    )  # fmt: skip
    calls = spy.calls()

    bare = http_host.root / "o" / "r.git"
    assert real_git("--git-dir", str(bare), "rev-parse", "main").strip() == sha
    pushes = [r for r in http_host.requests if "receive-pack" in r["path"] + r["query"]]
    assert pushes
    assert all(r.get("Authorization") == f"Basic {encoded}" for r in http_host.requests)

    assert [c.command for c in calls] == ["ls-remote", "init", "add", "commit", "rev-parse", "push"]
    for call in calls:
        for arg in call.argv:
            assert TOKEN not in arg
            assert encoded not in arg
            assert "Authorization" not in arg
        assert call.env["GIT_ALLOW_PROTOCOL"] == "http"
    for call in (calls[0], calls[-1]):
        assert call.env["GIT_CONFIG_COUNT"] == "1"
        assert call.env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
        assert call.env["GIT_CONFIG_VALUE_0"] == header
    # Nothing stored it: not the source, not the pushed repository.
    assert not (source / ".git").exists()
    for path in bare.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert TOKEN.encode() not in data
            assert encoded.encode() not in data
    work = clone_with_header(url, header, tmp_path / "clone")
    assert files_of(work) == files_of(source)


def clone_with_header(url: str, header: str, dest: Path) -> Path:
    env_args = ("-c", f"http.extraHeader={header}")
    real_git(*env_args, "clone", "-q", "--", url, str(dest))
    return dest


def test_a_wrong_token_fails_without_showing_it(source: Path, http_host: GitHttpServer) -> None:
    url = f"{http_host.base_url}/o/r.git"
    wrong = basic_auth_header(USERNAME, "wrong-token-value")
    with pytest.raises(ScaffolderError) as caught:
        init_commit_push(
            source, url, branch="main", message="m", author=AUTHOR,
            auth_header=wrong, cancel=None,
        )  # fmt: skip
    message = str(caught.value)
    assert message.startswith(f"Failed to push to {url}: ")
    assert "wrong-token-value" not in message
    assert base64.b64encode(b"x-access-token:wrong-token-value").decode() not in message
    with pytest.raises(ScaffolderError, match="Failed to read"):
        list_remote_refs(url, auth_header=None, cancel=None)


# --- scaffolder run, then git clone -------------------------------------------------------


def test_scaffolder_run_then_git_clone_gives_the_rendered_service(tmp_path: Path) -> None:
    git_root = tmp_path / "git"
    config = tmp_path / "app-config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "backend": {
                    "database": {"connection": f"sqlite:///{tmp_path / 'db.sqlite'}"},
                    "workingDirectory": str(tmp_path / "work"),
                },
                "catalog": {
                    "locations": [
                        {"type": "file", "target": f"{REPO}/cookiecutters/*/template.yaml"}
                    ]
                },
                "integrations": {"git": [{"host": "localhost", "baseUrl": git_root.as_uri()}]},
                "scaffolder": {"defaultAuthor": {"name": "Platform Bot", "email": "bot@acme.io"}},
            }
        )
    )
    result = CliRunner().invoke(
        main,
        [
            "run", "--config", str(config), "template:default/ecs-web-service",
            "-v", "name=payments", "-v", "owner=group:default/payments-team",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    links = re.findall(r"^link: Repository (\S+)$", result.output, re.MULTILINE)
    assert links == [(git_root / "platform" / "payments.git").as_uri()]

    work = clone(links[0], tmp_path / "payments")
    catalog = yaml.safe_load((work / "catalog-info.yaml").read_text())
    assert catalog["kind"] == "Component"
    assert catalog["metadata"]["name"] == "payments"
    assert catalog["spec"]["owner"] == "group:default/payments-team"
    for path in ("Dockerfile", "infra/service.yaml", ".github/workflows/deploy.yml", "app"):
        assert (work / path).exists(), path
    assert os.access(work / "infra" / "deploy.sh", os.X_OK)
    log = real_git("log", "--format=%an <%ae>|%s", cwd=work).splitlines()
    assert log == ["Platform Bot <bot@acme.io>|initial commit"]
    assert real_git("rev-parse", "--abbrev-ref", "HEAD", cwd=work).strip() == "main"
