"""integrations.github[] and integrations.git[] as configured, and RepoUrlPicker values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from scaffolder.errors import InputError
from scaffolder.integrations.git import local_git_roots
from scaffolder.integrations.scm import (
    GitHostIntegration,
    GithubApp,
    GithubIntegration,
    ScmIntegrations,
    basic_auth_header,
)
from scaffolder.settings import Settings, load_settings
from scaffolder.tasks.templating_backstage import parse_repo_url

REPO = Path(__file__).resolve().parents[2]


def scm(integrations: dict[str, Any], cwd: Path | None = None) -> ScmIntegrations:
    return ScmIntegrations.from_config({"integrations": integrations}, cwd=cwd)


def test_github_entries_as_backstage_reads_them() -> None:
    found = scm(
        {
            "github": [
                {"host": "github.com", "token": "ghp_abc"},
                {
                    "host": "GHE.example.com",
                    "apiBaseUrl": "https://ghe.example.com/api/v3/",
                    "apps": [
                        {
                            "appId": 12,
                            "privateKey": "-----BEGIN RSA PRIVATE KEY-----\nx\n",
                            "installationId": "34",
                            "allowedInstallationOwners": ["acme"],
                        }
                    ],
                },
            ]
        }
    )
    github, ghe = found.github
    assert github == GithubIntegration(
        host="github.com",
        api_base_url="https://api.github.com",
        raw_base_url="https://raw.githubusercontent.com",
        token="ghp_abc",
    )
    assert ghe.host == "ghe.example.com"
    assert ghe.api_base_url == "https://ghe.example.com/api/v3"
    assert ghe.raw_base_url is None  # Backstage defaults only github.com's
    assert ghe.token is None
    assert ghe.apps == (
        GithubApp(
            app_id="12",
            private_key="-----BEGIN RSA PRIVATE KEY-----\nx\n",
            installation_id=34,
            allowed_installation_owners=("acme",),
        ),
    )
    assert ghe.clone_url("o", "r") == "https://ghe.example.com/o/r.git"
    # Secrets stay out of reprs (and so out of logs that print them).
    assert "ghp_abc" not in repr(found)
    assert "PRIVATE KEY" not in repr(found)


def test_github_com_is_there_by_default() -> None:
    assert [g.host for g in scm({}).github] == ["github.com"]
    assert [g.host for g in scm({"github": [{"host": "ghe.acme.io"}]}).github] == [
        "ghe.acme.io",
        "github.com",
    ]


def test_git_hosts_file_ssh_https(tmp_path: Path) -> None:
    found = scm(
        {
            "git": [
                {"host": "localhost", "baseUrl": "file:./var/git"},
                {"host": "abs", "baseUrl": "file:///srv/git/"},
                {"host": "path", "baseUrl": "/srv/other/../git2"},
                {"host": "Git.Example.com", "baseUrl": "ssh://git@git.example.com:2222/srv"},
                {"host": "code.example.com", "baseUrl": "https://code.example.com/", "token": "t"},
                {"host": "loop", "baseUrl": "http://127.0.0.1:8080/git"},
            ]
        },
        cwd=tmp_path,
    )
    local, absolute, path, ssh, https, loop = found.git
    assert local == GitHostIntegration(
        host="localhost", base_url=(tmp_path / "var" / "git").as_uri()
    )
    assert local.local_root == tmp_path / "var" / "git"
    assert local.remote_url("o", "r") == f"{(tmp_path / 'var/git').as_uri()}/o/r.git"
    assert local.repository_path("o", "r") == tmp_path / "var/git/o/r.git"
    assert absolute.base_url == "file:///srv/git"
    assert path.base_url == "file:///srv/git2"
    assert ssh.host == "git.example.com"
    assert ssh.remote_url("o", "r") == "ssh://git@git.example.com:2222/srv/o/r.git"
    assert ssh.local_root is None
    assert ssh.auth_header() is None
    assert https.base_url == "https://code.example.com"
    assert https.auth_header() == basic_auth_header("x-access-token", "t")
    assert "token='t'" not in repr(https)
    assert loop.scheme == "http"
    assert found.local_roots() == (tmp_path / "var/git", Path("/srv/git"), Path("/srv/git2"))


def test_pwd_in_a_base_url_comes_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "app-config.yaml"
    config.write_text(
        "integrations:\n  git:\n    - { host: localhost, baseUrl: 'file://${PWD}/var/git' }\n"
    )
    settings = load_settings([config], environ={"PWD": "/home/dev/scaffolder"})
    [local] = ScmIntegrations.from_config(settings.raw).git
    assert local.base_url == "file:///home/dev/scaffolder/var/git"
    # PWD unset: the key is dropped (Backstage's rule), and the entry says what is missing.
    with pytest.raises(InputError, match=r"integrations\.git\[0\]\.baseUrl is required"):
        load_settings([config], environ={})


def test_the_older_form_names_the_directory_in_host() -> None:
    config = {"integrations": {"git": [{"host": "file:///srv/templates"}]}}
    assert local_git_roots(config) == (Path("/srv/templates"),)
    assert Settings.from_config(config).scm_hosts["file:///srv/templates"] == "git"


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ({"host": "x", "baseUrl": "ext::sh -c id"}, "not a supported git host URL"),
        ({"host": "x", "baseUrl": "fd::3"}, "not a supported git host URL"),
        ({"host": "x", "baseUrl": "git://example.com/"}, "not a supported git host URL"),
        ({"host": "x", "baseUrl": "git@example.com:srv"}, "not a supported git host URL"),
        ({"host": "x", "baseUrl": "http://example.com/git"}, "loopback only"),
        ({"host": "x", "baseUrl": "https://u:p@example.com/"}, "credentials go in the token"),
        ({"host": "x", "baseUrl": "https://u@example.com/"}, "credentials go in the token"),
        ({"host": "x", "baseUrl": "file://server/share"}, "names a local directory"),
        ({"host": "x", "baseUrl": "file:///srv", "token": "t"}, "only used with an https"),
        ({"host": "x", "baseUrl": "https://example.com", "token": "a\nb"}, "must not hold"),
        ({"host": "x"}, "baseUrl is required"),
        ({"baseUrl": "file:///srv"}, "must be a mapping with a host"),
    ],
)
def test_bad_git_entries_are_refused_at_startup(entry: dict[str, Any], error: str) -> None:
    with pytest.raises(InputError, match=error):
        Settings.from_config({"integrations": {"git": [entry]}})


@pytest.mark.parametrize(
    ("github", "error"),
    [
        ([{"token": "x"}], r"integrations\.github\[0\] must be a mapping with a host"),
        ([{"host": "a/b"}], "must be a host name"),
        ([{"host": "ghe", "apps": [{"appId": 1}]}], r"apps\[0\]\.privateKey is required"),
        ([{"host": "ghe", "apps": [{"privateKey": "k"}]}], "must have an appId"),
        (
            [{"host": "ghe", "apps": [{"appId": 1, "privateKey": "k", "installationId": "x"}]}],
            "installationId must be an integer",
        ),
        ({"host": "github.com"}, "must be a list"),
    ],
)
def test_bad_github_entries_are_refused_at_startup(github: Any, error: str) -> None:
    with pytest.raises(InputError, match=error):
        Settings.from_config({"integrations": {"github": github}})


def test_settings_scm_hosts_are_the_parsers() -> None:
    config = {
        "integrations": {
            "github": [{"host": "ghe.acme.io"}],
            "gitlab": [{"host": "gitlab.acme.io"}],
            "git": [{"host": "localhost", "baseUrl": "file:///srv/git"}],
        }
    }
    hosts = Settings.from_config(config).scm_hosts
    assert hosts == ScmIntegrations.from_config(config).scm_hosts()
    assert hosts == {
        "github.com": "github",
        "ghe.acme.io": "github",
        "gitlab.acme.io": "gitlab",
        "localhost": "git",
    }


REPO_URLS = [
    "localhost?owner=o&repo=r",
    "localhost?repo=r&owner=o&extra=1",
    "LOCALHOST?owner=/o/&repo=r/",
    "localhost:443?owner=o&repo=r",
    "github.com?owner=backstage&repo=backstage",
    "localhost?owner=o",
    "localhost?repo=r",
    "localhost?owner=&repo=r",
    "localhost/path?owner=o&x=a b",
    "nowhere.example.com?owner=o&repo=r",
    "localhost:7007?owner=o&repo=r",
    "?owner=o&repo=r",
    "local host?owner=o&repo=r",
]


@pytest.mark.parametrize("value", REPO_URLS)
def test_resolving_agrees_with_parse_repo_url(value: str) -> None:
    integrations = ScmIntegrations.from_config(
        {"integrations": {"git": [{"host": "localhost", "baseUrl": "file:///srv/git"}]}}
    )
    try:
        expected: dict[str, str] | str = parse_repo_url(value, integrations.scm_hosts())
    except InputError as exc:
        expected = str(exc)
    try:
        location = integrations.resolve_repo_url(value)
        got: dict[str, str] | str = {
            "host": location.host,
            "owner": location.owner,
            "repo": location.repo,
        }
    except InputError as exc:
        got = str(exc)
    assert got == expected


def test_resolving_names_the_integration_and_refuses_other_kinds() -> None:
    integrations = ScmIntegrations.from_config(
        {
            "integrations": {
                "git": [{"host": "localhost", "baseUrl": "file:///srv/git"}],
                "gitlab": [{"host": "gitlab.com"}],
            }
        }
    )
    location = integrations.resolve_repo_url("localhost?owner=platform&repo=payments")
    assert isinstance(location.integration, GitHostIntegration)
    assert location.integration.remote_url(location.owner, location.repo) == (
        "file:///srv/git/platform/payments.git"
    )
    github = integrations.resolve_repo_url("github.com?owner=o&repo=r").integration
    assert isinstance(github, GithubIntegration)
    with pytest.raises(InputError, match=r"^No integration for host gitlab\.com$"):
        integrations.resolve_repo_url("gitlab.com?owner=o&repo=r")


def test_make_serve_config_has_a_local_git_host_the_templates_allow(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings([REPO / "app-config.yaml"], environ={})
    [local] = ScmIntegrations.from_config(settings.raw).git
    assert local.host == "localhost"
    assert local.local_root == tmp_path / "var" / "git"
    for template in sorted((REPO / "cookiecutters").glob("*/template.yaml")):
        entity = yaml.safe_load(template.read_text())
        for step in entity["spec"]["parameters"]:
            for prop in (step.get("properties") or {}).values():
                for host in (prop.get("ui:options") or {}).get("allowedHosts", []):
                    assert host in settings.scm_hosts, f"{template.parent.name}: {host}"
