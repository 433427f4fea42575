from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from scaffolder.actions.builtin import catalog_write
from scaffolder.actions.builtin.catalog_write import create_catalog_write_action, dump_yaml
from scaffolder.errors import InputError
from tests.actions.conftest import RunAction

ENTITY = {
    "apiVersion": "backstage.io/v1alpha1",
    "kind": "Component",
    "metadata": {"name": "svc-one", "description": "First service"},
    "spec": {"type": "service", "lifecycle": "experimental", "owner": "group:default/platform"},
}
HELLO_INFO = {"entityRef": "template:default/hello-template", "baseUrl": "file:///t/template.yaml"}


def test_writes_what_backstage_writes(run_action: RunAction, workspace: Path) -> None:
    run = run_action(
        create_catalog_write_action(),
        {"filePath": "catalog-info.yaml", "entity": ENTITY},
        template_info=HELLO_INFO,
    )

    assert run.messages == ["Writing catalog-info.yaml"]
    assert (workspace / "catalog-info.yaml").read_text() == (
        "apiVersion: backstage.io/v1alpha1\n"
        "kind: Component\n"
        "metadata:\n"
        "  name: svc-one\n"
        "  description: First service\n"
        "  annotations:\n"
        "    backstage.io/source-template: template:default/hello-template\n"
        "spec:\n"
        "  type: service\n"
        "  lifecycle: experimental\n"
        "  owner: group:default/platform\n"
    )


def test_default_path_and_no_template_ref(run_action: RunAction, workspace: Path) -> None:
    run_action(create_catalog_write_action(), {"entity": ENTITY})

    written = yaml.safe_load((workspace / "catalog-info.yaml").read_text())
    assert written == ENTITY
    assert list(written) == list(ENTITY)


def test_existing_annotations_are_kept_in_place(run_action: RunAction, workspace: Path) -> None:
    entity = {
        "kind": "Component",
        "metadata": {"annotations": {"a": "1"}, "name": "x"},
        "spec": {},
    }

    run_action(
        create_catalog_write_action(),
        {"entity": entity, "filePath": "sub/dir/out.yaml"},
        template_info=HELLO_INFO,
    )

    assert (workspace / "sub/dir/out.yaml").read_text() == (
        "kind: Component\n"
        "metadata:\n"
        "  annotations:\n"
        '    a: "1"\n'
        "    backstage.io/source-template: template:default/hello-template\n"
        "  name: x\n"
        "spec: {}\n"
    )


def test_yaml_style_matches_the_yaml_package() -> None:
    assert dump_yaml({"tags": ["a", "b"], "n": None, "t": True, "s": "true", "m": "l1\nl2\n"}) == (
        'tags:\n  - a\n  - b\nn: null\nt: true\ns: "true"\nm: |\n  l1\n  l2\n'
    )


def _pyyaml(document: Any) -> str:
    """What PyYAML alone prints with our dumper: the reference for the direct printer."""
    text: str = yaml.dump(
        document,
        Dumper=catalog_write._Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=80,
    )
    return text


_TRICKY = [
    "svc",
    "A hello service",
    "group:default/platform",
    "template:default/hello-template",
    "http://127.0.0.1/repos/x",
    "backstage.io/source-template",
    "yes",
    "No",
    "TRUE",
    "off",
    "null",
    "Null",
    "~",
    "y",
    "n",
    "on",
    "",
    " lead",
    "trail ",
    "two  spaces",
    "a: b",
    "a:",
    "a #b",
    "a#b",
    "#x",
    "-x",
    "- x",
    "x-",
    "?x",
    "x?",
    "[x]",
    "{x}",
    "x,y",
    "*x",
    "&x",
    "!x",
    "%x",
    "@x",
    "`x",
    "'x'",
    '"x"',
    "it's",
    'say "hi"',
    "1",
    "1.5",
    "0x1F",
    "1e3",
    ".inf",
    "2026-11-28",
    "12:30",
    "l1\nl2",
    "l1\nl2\n",
    "tab\there",
    "één",
    "ü",
    "x" * 90,
    "word " * 16,
    "a=b",
    "a+b",
    "e@x.org",
    "<<",
    "=",
]


_SIMPLE = [*_TRICKY[:5], "experimental", "a b c", "x:y", "x.y/z", None, True, 1, 65535]


def _random_document(rng: random.Random, simple: bool, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.25:
        size = rng.randint(0, 4)
        return {
            _random_key(rng, simple): _random_document(rng, simple, depth + 1) for _ in range(size)
        }
    if depth < 3 and roll < 0.35:
        return [_random_document(rng, simple, depth + 1) for _ in range(rng.randint(0, 3))]
    if simple:
        return rng.choice(_SIMPLE)
    pick = rng.random()
    if pick < 0.6:
        return rng.choice(_TRICKY)
    if pick < 0.7:
        return "".join(rng.choice("ab :#-_./'\"x1 é\n") for _ in range(rng.randint(1, 12)))
    return rng.choice([None, True, False, 0, 7, -3, 8080, 1.5, 10**20])


def _random_key(rng: random.Random, simple: bool) -> str:
    if simple:
        return rng.choice(["name", "spec", "metadata", "a b", "x.y/z", "k1"])
    return rng.choice(["name", "spec", *_TRICKY[:12], rng.choice(_TRICKY)])


def test_the_direct_printer_prints_what_pyyaml_prints() -> None:
    # A typical entity takes the direct path (no PyYAML at all) ...
    entity = catalog_write._with_source_template(ENTITY, "template:default/hello-template")
    assert catalog_write._block_mapping(entity, 0, [])
    assert dump_yaml(entity) == _pyyaml(entity)
    # ... and any document, direct or not, comes out as PyYAML prints it.
    rng = random.Random(20261128)
    direct = 0
    for n in range(3000):
        simple = n % 2 == 0  # half from values the direct printer takes, half from anything
        size = rng.randint(1, 5)
        document = {_random_key(rng, simple): _random_document(rng, simple) for _ in range(size)}
        assert dump_yaml(document) == _pyyaml(document), document
        direct += catalog_write._block_mapping(document, 0, [])
    assert direct > 1000  # the generator does reach the direct path


@pytest.mark.parametrize("bad", ["../outside/x.yaml", "/tmp/x.yaml", "link/x.yaml"])
def test_file_path_stays_inside_the_workspace(
    run_action: RunAction, workspace: Path, outside: Path, bad: str
) -> None:
    os.symlink(outside, workspace / "link")

    with pytest.raises(InputError, match="Invalid input 'filePath'"):
        run_action(create_catalog_write_action(), {"entity": ENTITY, "filePath": bad})

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
