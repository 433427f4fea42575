"""``scaffolder catalog ingest|get|validate``, driven through click on a temp database."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from scaffolder.cli import main
from scaffolder.services import build_services
from scaffolder.settings import load_settings
from tests.catalog.conftest import component, group, write_yaml
from tests.catalog.test_actions_git import dump, push


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def config(tmp_path: Path, served: tuple[str, Path]) -> Path:
    path = tmp_path / "app-config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "backend": {
                    "database": {"connection": f"sqlite:///{tmp_path / 'db.sqlite'}"},
                    "workingDirectory": str(tmp_path / "work"),
                    "reading": {"allow": [{"host": served[0].removeprefix("http://")}]},
                },
                "catalog": {"locations": []},
                "integrations": {
                    "git": [{"host": "localhost", "baseUrl": (tmp_path / "git").as_uri()}]
                },
            }
        )
    )
    return path


def scaffolder(*args: str) -> Result:
    return CliRunner().invoke(main, ["--log-level", "WARNING", *args])


BAD = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: svc, tags: [Bad_Tag, ok]}
spec: {type: service, owner: team-a}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: "Team A!", labels: {"x/y/z": v}}
spec: {type: team, children: []}
---
kind: Group
metadata: {}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: fine}
spec: {type: service, owner: team-a, lifecycle: production}
extra: 1
---
apiVersion: backstage.io/v2
kind: Component
metadata: {name: future}
spec: {}
---
[a, list]
---
key: [unclosed
"""


def test_validate_prints_every_problem_with_its_field(tmp_path: Path) -> None:
    path = tmp_path / "catalog-info.yaml"
    path.write_text(BAD)
    result = scaffolder("catalog", "validate", str(path))
    assert result.exit_code == 1
    name_rule = (
        "a string that is sequences of [a-zA-Z0-9] separated by any of [-_.], "
        "at most 63 characters in total"
    )
    *lines, last = result.stdout.splitlines()
    assert last.startswith(
        f"{path}: document 7: <document>: YAML error at file:{path}, while parsing a flow sequence"
    )
    assert lines == [
        f'{path}: document 1 (component:default/svc): metadata.tags.0: "tags.0" is not valid; '
        "expected a string that is sequences of [a-z0-9+#] separated by [-], at most 63 "
        'characters in total but found "Bad_Tag".',
        f"{path}: document 1 (component:default/svc): spec.lifecycle: must have required "
        "property 'lifecycle' (missingProperty: lifecycle)",
        f'{path}: document 2 (group:default/team a!): metadata.name: "metadata.name" is not '
        f'valid; expected {name_rule} but found "Team A!".',
        f'{path}: document 2 (group:default/team a!): metadata.labels.x/y/z: "labels.x/y/z" is '
        'not valid; expected a valid prefix and/or suffix but found "x/y/z".',
        f"{path}: document 3: apiVersion: must have required property 'apiVersion' "
        "(missingProperty: apiVersion)",
        f"{path}: document 3: metadata.name: must have required property 'name' "
        "(missingProperty: name)",
        f"{path}: document 4 (component:default/fine): extra: must NOT have additional "
        "properties (additionalProperty: extra)",
        f"{path}: document 5 (component:default/future): apiVersion: No processor recognized "
        "the entity component:default/future as valid, possibly caused by a foreign kind or "
        "apiVersion",
        f"{path}: document 6: <document>: Expected object at root, got object",
    ]
    assert result.stderr == "10 problems\n"


def test_validate_passes_good_files_and_fails_unreadable_ones(tmp_path: Path) -> None:
    good = write_yaml(tmp_path / "good.yaml", component("svc"), group("team-a"))
    template = Path(__file__).parents[2] / "cookiecutters" / "ecs-web-service" / "template.yaml"
    ok = scaffolder("catalog", "validate", str(good), str(template))
    assert (ok.exit_code, ok.stdout, ok.stderr) == (0, "", "2 files valid\n")
    missing = scaffolder("catalog", "validate", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 1
    assert missing.stdout == f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory\n"


def test_ingest_a_file_registers_it_and_reads_it_now(config: Path, tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "org" / "org.yaml", group("team-a"), component("svc"))

    first = scaffolder("catalog", "ingest", "--config", str(config), str(path))

    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == ["component:default/svc", "group:default/team-a"]
    assert first.stderr.startswith(f"registered file:{path} (location ")
    assert first.stderr.endswith("2 entities, 0 errors\n")

    got = scaffolder("catalog", "get", "--config", str(config), "component:svc")
    assert got.exit_code == 0
    entity = json.loads(got.stdout)
    assert entity["relations"] == [{"type": "ownedBy", "targetRef": "group:default/team-a"}]
    assert entity["metadata"]["annotations"]["backstage.io/managed-by-location"] == (f"file:{path}")

    write_yaml(path, group("team-a"), component("svc", lifecycle="deprecated"))
    again = scaffolder("catalog", "ingest", "--config", str(config), str(path))
    assert again.exit_code == 0
    assert again.stderr.startswith(f"read again file:{path} (location ")
    got = scaffolder("catalog", "get", "--config", str(config), "component:default/svc")
    assert json.loads(got.stdout)["spec"]["lifecycle"] == "deprecated"

    # A server on the same database keeps the location and reads it on start.
    services = build_services(load_settings([str(config)]), with_worker=False)
    try:
        assert [loc.target for loc in services.catalog.store.locations()] == [str(path)]
        assert services.catalog.get_entity("component:default/svc") is not None
    finally:
        services.close()


def test_ingest_reports_errors_and_exits_one(config: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = scaffolder("catalog", "ingest", "--config", str(config), str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 7
    assert errors[0].startswith("error: location:default/generated-")
    assert any(
        'Policy check failed for component:default/svc; caused by Error: "tags.0" is not '
        "valid; expected a string that is sequences of [a-z0-9+#] separated by [-], at most 63 "
        'characters in total but found "Bad_Tag".' in line
        for line in errors
    )
    assert not any("To learn more" in line for line in errors)
    assert result.stderr.endswith("0 entities, 7 errors\n")


def test_ingest_urls_and_the_local_git_host(
    config: Path, tmp_path: Path, served: tuple[str, Path]
) -> None:
    base, root = served
    write_yaml(root / "catalog-info.yaml", component("served"))
    result = scaffolder("catalog", "ingest", "--config", str(config), f"{base}/catalog-info.yaml")
    assert (result.exit_code, result.stdout) == (0, "component:default/served\n")

    bare = tmp_path / "git" / "platform" / "svc.git"
    bare.parent.mkdir(parents=True)
    push(bare, {"catalog-info.yaml": dump(component("from-git"))})
    url = f"{bare.as_uri()}/blob/main/catalog-info.yaml"
    result = scaffolder("catalog", "ingest", "--config", str(config), url)
    assert (result.exit_code, result.stdout) == (0, "component:default/from-git\n")

    missing = scaffolder("catalog", "ingest", "--config", str(config), f"{base}/nope.yaml")
    assert missing.exit_code == 1
    assert f"Unable to read url, no matching files found for {base}/nope.yaml" in missing.stderr


def test_ingest_refusals(config: Path, tmp_path: Path) -> None:
    result = scaffolder("catalog", "ingest", "--config", str(config), str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    readonly = tmp_path / "readonly.yaml"
    readonly.write_text(config.read_text() + "\n")
    data = yaml.safe_load(config.read_text())
    data["catalog"]["readonly"] = True
    readonly.write_text(yaml.safe_dump(data))
    path = write_yaml(tmp_path / "c.yaml", component("svc"))
    refused = scaffolder("catalog", "ingest", "--config", str(readonly), str(path))
    assert refused.exit_code == 2
    assert refused.stderr == (
        "error: NotAllowedError: This operation not allowed in readonly mode\n"
    )


def test_get_missing_and_malformed_refs(config: Path) -> None:
    missing = scaffolder("catalog", "get", "--config", str(config), "component:default/nope")
    assert (missing.exit_code, missing.stdout) == (1, "")
    assert missing.stderr == "error: NotFoundError: Entity component:default/nope not found\n"
    bad = scaffolder("catalog", "get", "--config", str(config), "nope")
    assert bad.exit_code == 2
    assert "had missing or empty kind" in bad.stderr


def test_the_command_is_installed() -> None:
    out = subprocess.run(
        [str(Path(__file__).parents[2] / ".venv" / "bin" / "scaffolder"), "catalog", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ingest" in out
    assert "validate" in out
