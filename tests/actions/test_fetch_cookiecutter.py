"""fetch:cookiecutter with the real cookiecutter library, real child processes and real git."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scaffolder.actions.base import CancelSignal, TemplateAction
from scaffolder.actions.builtin.fetch_cookiecutter import (
    TrustedTemplates,
    create_fetch_cookiecutter_action,
)
from scaffolder.errors import InputError, ScaffolderError, TaskCancelledError
from scaffolder.integrations.cookiecutter import CookiecutterPool
from scaffolder.settings import Settings
from tests.actions.conftest import FIXTURES, ActionRun, RunAction, tree, write_tree

COOKIECUTTERS = FIXTURES / "cookiecutters"
COOKIE_TEMPLATE = FIXTURES / "templates" / "cookie-template"
FIXTURE_INFO = {"baseUrl": f"file://{COOKIECUTTERS}/template.yaml"}
COOKIE_INFO = {"baseUrl": f"file://{COOKIE_TEMPLATE}/template.yaml"}

#: Text that Jinja would evaluate, strip or choke on if it were ever rendered.
PAYLOADS = [
    "{{ 7*7 }}",
    "{% raw %}raw{% endraw %}",
    "{# a comment #}",
    "{{ cookiecutter.slug }}",
    "{% for i in range(3) %}{{ i }}{% endfor %}",
    "{{ ''.__class__.__mro__ }}",
    "{% if %}",
    "}} {{",
]


@pytest.fixture(scope="module")
def pool() -> Iterator[CookiecutterPool]:
    pool = CookiecutterPool()
    yield pool
    pool.close()


MakeAction = Callable[..., TemplateAction]


@pytest.fixture
def make_action(pool: CookiecutterPool) -> MakeAction:
    def make(*trusted: str, git_file_roots: tuple[Path, ...] = ()) -> TemplateAction:
        return create_fetch_cookiecutter_action(
            pool=pool,
            trusted=TrustedTemplates.from_config(trusted, bundled=None),
            git_file_roots=git_file_roots,
        )

    return make


@pytest.fixture
def action(make_action: MakeAction) -> TemplateAction:
    return make_action()


def fixture(run_action: RunAction, action: TemplateAction, name: str, **input: Any) -> ActionRun:
    return run_action(action, {"url": f"./{name}", **input}, template_info=FIXTURE_INFO)


def step_dir(run: ActionRun) -> Path:
    (path,) = run.ctx._temp_dirs
    return path


# --- upstream's layout and log -------------------------------------------------------------


def test_renders_upstreams_cookie_template(
    run_action: RunAction, action: TemplateAction, workspace: Path
) -> None:
    run = run_action(
        action,
        {
            "url": "./skeleton",
            "values": {"name": "cookie_svc", "description": "made by cookiecutter"},
        },
        template_info=COOKIE_INFO,
    )

    # What upstream's debug:log printed after this step (trace 15).
    assert tree(workspace) == {
        "README.md": "# cookie_svc\n\nmade by cookiecutter\n",
        "docs/index.md": "# cookie_svc docs\n",
        "setup.cfg": "[metadata]\nname = cookie_svc\nversion = 0.1.0\n",
        "src/main.py": 'def main():\n    print("hello from COOKIE_SVC")\n',
    }
    source = str((COOKIE_TEMPLATE / "skeleton").resolve())
    assert run.messages == [
        "Fetching and then templating using cookiecutter",
        f"Rendering {source} with cookiecutter 2.7.1 (untrusted: sandboxed, no hooks)",
        "Generated 4 files into ./",
    ]
    assert set(run.levels()) == {"info"}


def test_missing_value_names_file_and_line(run_action: RunAction, action: TemplateAction) -> None:
    # Trace 18: upstream fails on README.md too, with no line and an OrderedDict.
    with pytest.raises(
        InputError,
        match=r"^Template error in README\.md at line 3: 'dict object' has no attribute "
        r"'description'$",
    ):
        run_action(
            action,
            {"url": "./skeleton", "values": {"name": "cookie_two"}},
            template_info=COOKIE_INFO,
        )


def test_target_path(run_action: RunAction, action: TemplateAction, workspace: Path) -> None:
    write_tree(workspace, {"svc/README.md": "old", "svc/kept.txt": "mine"})

    run = run_action(
        action,
        {"url": "./skeleton", "targetPath": "svc", "values": {"name": "x_y", "description": "d"}},
        template_info=COOKIE_INFO,
    )

    assert tree(workspace)["svc/README.md"] == "# x_y\n\nd\n"
    assert tree(workspace)["svc/kept.txt"] == "mine"
    assert run.messages[-1] == "Generated 4 files into svc"


@pytest.mark.parametrize("bad", ["../escape", "/tmp/escape", "link"])
def test_target_path_stays_in_the_workspace(
    run_action: RunAction, action: TemplateAction, workspace: Path, outside: Path, bad: str
) -> None:
    os.symlink(outside, workspace / "link")

    with pytest.raises(InputError, match="Invalid input 'targetPath'"):
        run_action(
            action,
            {"url": "./skeleton", "targetPath": bad, "values": {"name": "n", "description": "d"}},
            template_info=COOKIE_INFO,
        )

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_url_must_stay_in_the_template_directory(
    run_action: RunAction, action: TemplateAction
) -> None:
    with pytest.raises(InputError, match="Invalid input 'url'"):
        run_action(action, {"url": "../hello-template", "values": {}}, template_info=COOKIE_INFO)
    with pytest.raises(InputError, match="template location could not be determined"):
        run_action(action, {"url": "./skeleton", "values": {}})


def test_image_name_is_accepted_and_ignored(run_action: RunAction, action: TemplateAction) -> None:
    run = run_action(
        action,
        {"url": "./skeleton", "values": {"name": "n", "description": "d"}, "imageName": "x/y"},
        template_info=COOKIE_INFO,
    )

    assert "imageName is ignored: cookiecutter runs natively, not in Docker" in run.messages


def test_dry_run_renders_into_the_workspace(
    run_action: RunAction, action: TemplateAction, workspace: Path
) -> None:
    run_action(
        action,
        {"url": "./skeleton", "values": {"name": "dry", "description": "run"}},
        template_info=COOKIE_INFO,
        is_dry_run=True,
    )

    assert tree(workspace)["README.md"] == "# dry\n\nrun\n"


# --- values are data -----------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_values_are_never_rendered_in_a_skeleton(
    run_action: RunAction, action: TemplateAction, workspace: Path, payload: str
) -> None:
    run_action(
        action,
        {"url": "./skeleton", "values": {"name": payload, "description": payload}},
        template_info=COOKIE_INFO,
    )

    assert tree(workspace)["README.md"] == f"# {payload}\n\n{payload}\n"
    assert (
        tree(workspace)["src/main.py"]
        == f'def main():\n    print("hello from {payload.upper()}")\n'
    )


@pytest.mark.parametrize("payload", PAYLOADS)
def test_values_are_never_rendered_in_contents_or_paths(
    run_action: RunAction, action: TemplateAction, workspace: Path, payload: str
) -> None:
    run = fixture(
        run_action,
        action,
        "values-data",
        values={"name": payload, "description": payload, "meta": {"tier": payload}},
    )

    files = tree(workspace)
    slug = payload.lower().replace(" ", "-")
    readme = files["README.md"].splitlines()
    assert readme[:4] == [
        f"# {payload}",
        f"slug={slug}",
        f"description={payload}",
        f"greeting=Hello {payload}",
    ]
    assert f"team={slug}-team" in readme
    assert f"tier={payload}" in readme
    # The slug names a file and a directory inside a directory named by the slug: cookiecutter
    # itself would render that already rendered path a second time.
    assert files[f"{slug}.txt"] == f"{payload}\n"
    assert files[f"sub/{slug}/nested.txt"] == f"nested in {slug}\n"
    replay = (step_dir(run) / "replay" / "values-data.json").read_text()
    assert '"description": ' in replay


def test_a_user_value_may_override_a_computed_default_and_stays_data(
    run_action: RunAction, action: TemplateAction, workspace: Path
) -> None:
    fixture(
        run_action,
        action,
        "values-data",
        values={"name": "Acme", "slug": "{{ cookiecutter.name }}"},
    )

    readme = tree(workspace)["README.md"]
    assert "slug={{ cookiecutter.name }}\n" in readme
    assert "team={{ cookiecutter.name }}-team\n" in readme
    assert (workspace / "sub" / "{{ cookiecutter.name }}" / "nested.txt").is_file()


def test_defaults_render_as_the_author_meant(
    run_action: RunAction, action: TemplateAction, workspace: Path
) -> None:
    fixture(run_action, action, "values-data", values={"name": "Acme Web"})

    assert tree(workspace) == {
        "Dockerfile": "FROM python:3.12-slim\n",
        "README.md": (
            "# Acme Web\nslug=acme-web\ndescription=A service\ngreeting=Hello Acme Web\n"
            "lifecycle=experimental\ndocker=True\nteam=acme-web-team\ntier=1\n"
            "private={{ never rendered }}\nupper=ACME WEB\n"
        ),
        "acme-web.txt": "A service\n",
        "static/raw.txt": "{{ cookiecutter.name }} is copied as is\n",
        "sub/acme-web/nested.txt": "nested in acme-web\n",
    }


def test_numbers_become_strings_as_in_cookiecutter(
    run_action: RunAction, action: TemplateAction, workspace: Path
) -> None:
    run_action(
        action,
        {"url": "./skeleton", "values": {"name": 8080, "description": 1.0}},
        template_info=COOKIE_INFO,
    )

    assert tree(workspace)["README.md"] == "# 8080\n\n1\n"


def test_choices_and_yes_no_values(
    run_action: RunAction, action: TemplateAction, workspace: Path
) -> None:
    fixture(run_action, action, "values-data", values={"lifecycle": "production", "docker": "no"})

    assert "lifecycle=production\n" in tree(workspace)["README.md"]
    assert "docker=False\n" in tree(workspace)["README.md"]
    assert not (workspace / "Dockerfile").exists()


def test_a_choice_outside_the_list_is_refused(
    run_action: RunAction, action: TemplateAction
) -> None:
    with pytest.raises(
        InputError,
        match=r"^\{\{ 7\*7 \}\} provided for choice variable lifecycle, but the choices are "
        r"\['experimental', 'production'\]\.$",
    ):
        fixture(run_action, action, "values-data", values={"lifecycle": "{{ 7*7 }}"})
    with pytest.raises(InputError, match="could not be converted to a boolean"):
        fixture(run_action, action, "values-data", values={"docker": "perhaps"})


# --- copyWithoutRender and extensions ------------------------------------------------------


def test_copy_without_render_input_adds_to_the_templates_own(
    run_action: RunAction, action: TemplateAction, workspace: Path
) -> None:
    fixture(
        run_action, action, "values-data", values={"name": "n"}, copyWithoutRender=["README.md"]
    )

    assert tree(workspace)["README.md"].startswith("# {{ cookiecutter.name }}\n")
    assert tree(workspace)["static/raw.txt"] == "{{ cookiecutter.name }} is copied as is\n"
    assert tree(workspace)["n.txt"] == "A service\n"


def test_builtin_extensions_work_for_untrusted_templates(
    run_action: RunAction, action: TemplateAction, workspace: Path, tmp_path: Path
) -> None:
    write_tree(
        tmp_path / "tpl",
        {
            "template.yaml": "",
            "skeleton/out.txt": "{% set x = [] %}{% do x.append(cookiecutter.name) %}{{ x|jsonify(None) }} "
            "{{ cookiecutter.name|slugify }}\n",
        },
    )

    run_action(
        action,
        {"url": "./skeleton", "values": {"name": "Hello World"}, "extensions": ["jinja2.ext.do"]},
        template_info={"baseUrl": f"file://{tmp_path}/tpl/template.yaml"},
    )

    assert tree(workspace)["out.txt"] == '["Hello World"] hello-world\n'


def test_other_extensions_need_trust(
    run_action: RunAction, make_action: MakeAction, workspace: Path
) -> None:
    source = str(COOKIECUTTERS / "extension")
    with pytest.raises(InputError) as refused:
        fixture(run_action, make_action(), "extension", values={})
    assert str(refused.value) == (
        f"Template {source} asks for the Jinja2 extension 'local_extension.ShoutExtension'; "
        "only trusted templates may load extensions beyond cookiecutter's own. To trust it, "
        f"add '{source}' (or a prefix or glob that matches it) to scaffolder.trustedTemplates "
        "in app-config.yaml."
    )

    fixture(run_action, make_action(str(COOKIECUTTERS)), "extension", values={})
    assert tree(workspace)["README.md"] == "slug=QUIET!\nleaked=nothing\n"


def test_extensions_must_be_importable(run_action: RunAction, make_action: MakeAction) -> None:
    with pytest.raises(InputError, match=r"^Unable to load extension: No module named 'nope'$"):
        fixture(
            run_action,
            make_action(str(COOKIECUTTERS)),
            "values-data",
            values={},
            extensions=["nope.Extension"],
        )


def test_nothing_leaks_from_one_render_to_the_next(
    run_action: RunAction, make_action: MakeAction, workspace: Path
) -> None:
    trusted = make_action(str(COOKIECUTTERS))
    for _ in range(2):
        # The extension sets an environment variable on import; each render is a new child.
        fixture(run_action, trusted, "extension", values={"name": "again"})
        assert tree(workspace)["README.md"] == "slug=AGAIN!\nleaked=nothing\n"
    assert "SCAFFOLDER_TEST_EXTENSION_LEAK" not in os.environ


def test_untrusted_templates_render_in_the_sandbox(
    run_action: RunAction, make_action: MakeAction, workspace: Path, tmp_path: Path
) -> None:
    write_tree(
        tmp_path / "tpl",
        {"template.yaml": "", "skeleton/x.txt": "a\n{{ cookiecutter.__class__.__mro__ }}\n"},
    )
    info = {"baseUrl": f"file://{tmp_path}/tpl/template.yaml"}

    with pytest.raises(
        InputError,
        match=r"^Template error in x\.txt at line 2: access to attribute '__class__' of 'dict' "
        r"object is unsafe\.$",
    ):
        run_action(make_action(), {"url": "./skeleton", "values": {}}, template_info=info)

    run_action(make_action(str(tmp_path)), {"url": "./skeleton", "values": {}}, template_info=info)
    assert "object" in tree(workspace)["x.txt"]


def test_jinja2_env_vars_and_new_lines(
    run_action: RunAction, action: TemplateAction, workspace: Path, tmp_path: Path
) -> None:
    write_tree(
        tmp_path / "tpl",
        {
            "template.yaml": "",
            "t/cookiecutter.json": (
                '{"name": "x", "_new_lines": "\\r\\n", "_jinja2_env_vars": {"trim_blocks": true, '
                '"lstrip_blocks": true, "variable_start_string": "[[", "variable_end_string": "]]"}}'
            ),
            "t/[[cookiecutter.name]]/a.txt": "  {% if true %}\n[[ cookiecutter.name ]]\n  {% endif %}\nend\n",
        },
    )

    run_action(
        action,
        {"url": "./t", "values": {"name": "{{ 7*7 }}"}},
        template_info={"baseUrl": f"file://{tmp_path}/tpl/template.yaml"},
    )

    assert (workspace / "a.txt").read_bytes() == b"{{ 7*7 }}\r\nend\r\n"


def test_untrusted_templates_may_not_set_other_jinja2_options(
    run_action: RunAction, action: TemplateAction, tmp_path: Path
) -> None:
    write_tree(
        tmp_path / "tpl",
        {
            "template.yaml": "",
            "t/cookiecutter.json": '{"name": "x", "_jinja2_env_vars": {"cache_size": 0}}',
            "t/{{cookiecutter.name}}/a.txt": "a",
        },
    )

    with pytest.raises(
        InputError,
        match=r"sets _jinja2_env_vars\.cache_size; an untrusted template may only change "
        r"Jinja2's syntax and whitespace options\. To trust it, add .* to "
        r"scaffolder\.trustedTemplates",
    ):
        run_action(
            action,
            {"url": "./t", "values": {}},
            template_info={"baseUrl": f"file://{tmp_path}/tpl/template.yaml"},
        )


# --- hooks ---------------------------------------------------------------------------------


def test_hooks_of_an_untrusted_template_fail_and_say_how_to_trust_it(
    run_action: RunAction, action: TemplateAction, workspace: Path
) -> None:
    source = str(COOKIECUTTERS / "hooks")
    with pytest.raises(InputError) as refused:
        fixture(run_action, action, "hooks", values={})

    assert str(refused.value) == (
        f"Template {source} has hooks (hooks/post_gen_project.py, hooks/pre_gen_project.py), "
        "which run only for trusted templates. To trust it, add "
        f"'{source}' (or a prefix or glob that matches it) to scaffolder.trustedTemplates in "
        "app-config.yaml."
    )
    assert tree(workspace) == {}


@pytest.mark.parametrize("dry_run", [False, True])
def test_hooks_of_a_trusted_template_run(
    run_action: RunAction, make_action: MakeAction, workspace: Path, dry_run: bool
) -> None:
    run = run_action(
        make_action(str(COOKIECUTTERS / "hooks")),
        {"url": "./hooks", "values": {"name": "it's {{ me }}"}},
        template_info=FIXTURE_INFO,
        is_dry_run=dry_run,
    )

    assert run.messages[2:] == [
        "Running hook pre_gen_project",
        "pre_gen_project hook for it's {{ me }}",
        "Running hook post_gen_project",
        "post_gen_project hook done",
        "Generated 1 files into ./",
    ]
    home = step_dir(run) / "home"
    assert tree(workspace) == {
        "README.md": "name=it's {{ me }}\n",
        "hook-env.txt": f"home={home}\ndry_run={'1' if dry_run else ''}\n",
    }
    assert run.messages[1].endswith("(trusted)")


def test_a_failing_hook_fails_the_step(
    run_action: RunAction, make_action: MakeAction, workspace: Path
) -> None:
    with pytest.raises(
        InputError, match=r"^Hook pre_gen_project failed: Hook script failed \(exit status: 1\)$"
    ):
        fixture(run_action, make_action(str(COOKIECUTTERS)), "hooks", values={"name": "bad"})
    assert tree(workspace) == {}


def test_no_data_generated(run_action: RunAction, make_action: MakeAction) -> None:
    with pytest.raises(ScaffolderError, match=r"^No data generated by cookiecutter$"):
        fixture(
            run_action,
            make_action(str(COOKIECUTTERS)),
            "hooks",
            values={"remove_project": True},
        )


def test_trust_entries_are_prefixes_or_globs() -> None:
    trusted = TrustedTemplates.from_config(
        [
            "/srv/templates",
            "https://github.com/acme/templates.git",
            "https://git.example.com/*/cookie-*",
        ],
        bundled=None,
    )

    assert trusted.allows("/srv/templates/python/skeleton")
    assert not trusted.allows("/srv/templates-evil/x")
    assert trusted.allows("https://github.com/acme/templates/python")
    assert trusted.allows("https://github.com/acme/templates.git")
    assert not trusted.allows("https://github.com/acme/templates-fork")
    assert trusted.allows("https://git.example.com/team/cookie-web")
    assert not trusted.allows("https://git.example.com/team/other")
    assert TrustedTemplates.from_config([]).allows(
        str(
            Path(__file__).resolve().parents[2]
            / "cookiecutters"
            / "ecs-web-service"
            / "cookiecutter"
        )
    )


def test_settings_read_trusted_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_config(
        {"scaffolder": {"trustedTemplates": ["./templates", "https://github.com/acme/*"]}}
    )

    assert settings.trusted_templates == (str(tmp_path / "templates"), "https://github.com/acme/*")
    with pytest.raises(InputError, match=r"scaffolder\.trustedTemplates must be a list"):
        Settings.from_config({"scaffolder": {"trustedTemplates": [1]}})


# --- errors --------------------------------------------------------------------------------


def test_template_errors_name_the_file_and_line(
    run_action: RunAction, action: TemplateAction
) -> None:
    with pytest.raises(
        InputError,
        match=r"^Template error in \{\{cookiecutter\.slug\}\}/app/main\.py at line 12: "
        r"'dict object' has no attribute 'x'$",
    ):
        fixture(run_action, action, "template-error", values={})


def test_syntax_errors_name_the_file_and_line(
    run_action: RunAction, action: TemplateAction, tmp_path: Path
) -> None:
    write_tree(tmp_path / "tpl", {"template.yaml": "", "skeleton/a/b.txt": "one\ntwo {% if %}\n"})

    with pytest.raises(
        InputError, match=r"^Template syntax error in a/b\.txt at line 2: Expected an expression"
    ):
        run_action(
            action,
            {"url": "./skeleton", "values": {}},
            template_info={"baseUrl": f"file://{tmp_path}/tpl/template.yaml"},
        )


def test_errors_in_defaults_name_the_variable(
    run_action: RunAction, action: TemplateAction, tmp_path: Path
) -> None:
    write_tree(
        tmp_path / "tpl",
        {
            "template.yaml": "",
            "t/cookiecutter.json": '{\n  "name": "x",\n  "slug": "{{ cookiecutter.nope }}"\n}\n',
            "t/{{cookiecutter.slug}}/a.txt": "a",
        },
    )

    with pytest.raises(
        InputError,
        match=r"^Template error in cookiecutter\.json at line 3 \(variable 'slug'\): "
        r"'dict object' has no attribute 'nope'$",
    ):
        run_action(
            action,
            {"url": "./t", "values": {}},
            template_info={"baseUrl": f"file://{tmp_path}/tpl/template.yaml"},
        )


def test_a_bad_cookiecutter_json_is_an_input_error(
    run_action: RunAction, action: TemplateAction
) -> None:
    source = COOKIECUTTERS / "bad-json"
    with pytest.raises(
        InputError,
        match=rf"^Invalid cookiecutter\.json in {source}: Expecting property name enclosed in "
        r"double quotes: line 4 column 1 \(char \d+\)$",
    ):
        fixture(run_action, action, "bad-json", values={})


def test_rendered_paths_stay_in_the_project(
    run_action: RunAction, action: TemplateAction, workspace: Path, tmp_path: Path
) -> None:
    write_tree(
        tmp_path / "tpl",
        {
            "template.yaml": "",
            "skeleton/{{ cookiecutter.file }}": "x\n",
            "skeleton/keep.txt": "k\n",
        },
    )
    info = {"baseUrl": f"file://{tmp_path}/tpl/template.yaml"}

    with pytest.raises(
        InputError, match=r"renders to '\.\./\.\./escape\.txt', which leads outside"
    ):
        run_action(
            action,
            {"url": "./skeleton", "values": {"file": "../../escape.txt"}},
            template_info=info,
        )
    # An absolute path renders to a name with an empty first segment: nothing is written.
    run_action(
        action, {"url": "./skeleton", "values": {"file": f"{tmp_path}/abs.txt"}}, template_info=info
    )

    assert tree(workspace) == {"keep.txt": "k\n"}
    assert [p.name for p in tmp_path.rglob("*") if p.name in ("escape.txt", "abs.txt")] == []


def test_a_symlink_out_of_the_template_is_refused(
    run_action: RunAction, action: TemplateAction, outside: Path, tmp_path: Path
) -> None:
    write_tree(tmp_path / "tpl", {"template.yaml": "", "skeleton/a.txt": "a"})
    os.symlink(outside / "secret.txt", tmp_path / "tpl" / "skeleton" / "secret.txt")

    with pytest.raises(InputError, match=r"has a symbolic link secret\.txt that points outside it"):
        run_action(
            action,
            {"url": "./skeleton", "values": {}},
            template_info={"baseUrl": f"file://{tmp_path}/tpl/template.yaml"},
        )


# --- git -----------------------------------------------------------------------------------


def _git(*args: str, cwd: Path) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@pytest.fixture
def git_host(tmp_path: Path) -> Path:
    """A local git host holding ``templates.git``: the cookiecutters fixtures, tagged v1, then
    a change to values-data's README on main."""
    host = tmp_path / "git"
    work = tmp_path / "clone"
    shutil.copytree(COOKIECUTTERS, work)
    _git("init", "-q", "-b", "main", cwd=work)
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", "v1", cwd=work)
    _git("tag", "v1", cwd=work)
    readme = work / "values-data" / "{{cookiecutter.slug}}" / "README.md"
    readme.write_text("# v2 {{ cookiecutter.name }}\n")
    _git("commit", "-q", "-am", "v2", cwd=work)
    host.mkdir()
    _git("clone", "-q", "--bare", str(work), str(host / "templates.git"), cwd=tmp_path)
    return host


def test_fetches_a_git_template(
    run_action: RunAction, make_action: MakeAction, workspace: Path, git_host: Path
) -> None:
    url = f"{(git_host / 'templates.git').as_uri()}?path=values-data"
    run = run_action(make_action(git_file_roots=(git_host,)), {"url": url, "values": {"name": "G"}})

    assert tree(workspace)["README.md"] == "# v2 G\n"
    assert run.messages[1].startswith(
        f"Fetched {git_host.as_uri()}/templates.git (values-data) at commit "
    )
    assert not (step_dir(run) / "cookiecutters" / "templates" / ".git").exists()


def test_fetches_a_git_ref(
    run_action: RunAction, make_action: MakeAction, workspace: Path, git_host: Path
) -> None:
    url = f"{(git_host / 'templates.git').as_uri()}?ref=v1&path=values-data"
    run_action(make_action(git_file_roots=(git_host,)), {"url": url, "values": {"name": "G"}})

    assert tree(workspace)["README.md"].startswith("# G\nslug=g\n")


def test_git_templates_are_trusted_by_url(
    run_action: RunAction, make_action: MakeAction, workspace: Path, git_host: Path
) -> None:
    remote = (git_host / "templates.git").as_uri()
    action = make_action(f"{remote}/hooks", git_file_roots=(git_host,))

    run_action(action, {"url": f"{remote}?path=hooks", "values": {}})

    assert "hook-env.txt" in tree(workspace)
    with pytest.raises(InputError, match="which run only for trusted templates"):
        run_action(
            make_action(git_file_roots=(git_host,)), {"url": f"{remote}?path=hooks", "values": {}}
        )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ext::sh -c touch% /tmp/pwned", "contains whitespace or control characters"),
        ("ext::sh", "ext scheme is not supported"),
        ("ssh://git@github.com/a/b.git", "ssh scheme is not supported"),
        ("http://github.com/a/b.git", "http scheme is not supported"),
        ("https://evil.example.com/a/b.git", "No integration found for location"),
        ("https://user:token@github.com/a/b.git", "credentials are not allowed"),
        ("https://github.com/a/b.git#--upload-pack=touch", "is not a valid git ref"),
        ("https://github.com/a/b.git?ref=a..b", "is not a valid git ref"),
        ("https://github.com/a/b.git?ref=x:y", "is not a valid git ref"),
        ("https://github.com/a/b.git?path=../..", "is not a path inside the repository"),
        ("https://github.com/a/b.git?upload-pack=x", "unsupported query parameter"),
        ("file:///etc", "is not under a local git host"),
    ],
)
def test_git_urls_are_checked_before_git_runs(
    run_action: RunAction, action: TemplateAction, url: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        run_action(action, {"url": url, "values": {}})
    assert not Path("/tmp/pwned").exists()


def test_an_unknown_ref_is_a_clear_error(
    run_action: RunAction, make_action: MakeAction, git_host: Path
) -> None:
    url = f"{(git_host / 'templates.git').as_uri()}#nope"
    with pytest.raises(
        ScaffolderError,
        match=r"^Failed to fetch .*templates\.git#nope: couldn't find remote ref nope$",
    ):
        run_action(make_action(git_file_roots=(git_host,)), {"url": url, "values": {}})


def test_a_cancelled_task_does_not_fetch(
    run_action: RunAction, make_action: MakeAction, git_host: Path
) -> None:
    signal = CancelSignal()
    signal.cancel()

    with pytest.raises(TaskCancelledError):
        run_action(
            make_action(git_file_roots=(git_host,)),
            {"url": (git_host / "templates.git").as_uri(), "values": {}},
            signal=signal,
        )


# --- cancel --------------------------------------------------------------------------------


def test_cancel_kills_the_render_and_its_hooks(
    make_context: Callable[..., ActionRun], make_action: MakeAction, workspace: Path
) -> None:
    signal = CancelSignal()
    run = make_context(
        {"url": "./hooks", "values": {"sleep": "60"}}, template_info=FIXTURE_INFO, signal=signal
    )
    failure: list[BaseException] = []

    def target() -> None:
        try:
            make_action(str(COOKIECUTTERS)).handler(run.ctx)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + 20
    while "pre_gen_project hook for hooked" not in run.messages and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = int((step_dir(run) / "tmp" / "hook.pid").read_text())

    started = time.monotonic()
    signal.cancel()
    thread.join(10)

    assert not thread.is_alive()
    assert time.monotonic() - started < 3
    assert [type(e) for e in failure] == [TaskCancelledError]
    assert tree(workspace) == {}
    assert _gone(pid)


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.02)
    return False
