"""The template engine: Backstage's templating language (CONTRACT §5.3, §6, §2.12)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from scaffolder.errors import InputError
from scaffolder.tasks.templating import (
    UNDEFINED,
    Templater,
    TemplateRenderError,
    is_truthy,
    to_js_string,
)

TRACE_04 = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "traces"
    / "04-get-templating-extensions.http"
)

# The parameters CONTRACT §6.2 was checked with, against nunjitsu 0.7.0.
PARAMETERS = {
    "count": 5,
    "name": "abc",
    "num": "123",
    "obj": {"a": 1},
    "arr": [1, "x"],
    "flag": True,
    "empty": "",
    "n": None,
}
CONTEXT = {"parameters": PARAMETERS}


@pytest.fixture(scope="module")
def templater() -> Templater:
    return Templater()


def render(templater: Templater, source: str, context: dict[str, Any] | None = None) -> str:
    return templater.render_string(source, CONTEXT if context is None else context)


def same(actual: Any, expected: Any) -> bool:
    """Equal, and of the same JSON type all the way down (1 is not True, 5 is not "5")."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            same(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(map(same, actual, expected))
    return bool(actual == expected)


# --- §6.2 type preservation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${{ parameters.count }}", 5),
        ("${{parameters.name}}", "abc"),
        ("${{ parameters.num }}", "123"),
        ("${{ parameters.obj }}", {"a": 1}),
        ("${{ parameters.arr }}", [1, "x"]),
        ("${{ parameters.flag }}", True),
        ("${{ parameters.count == 5 }}", True),
        ("${{ parameters.n }}", None),
        (" ${{ parameters.count }}", " 5"),
        ("${{ parameters.count }} ", "5 "),
        ("x-${{ parameters.count }}", "x-5"),
        ("x-${{ parameters.obj }}", "x-[object Object]"),
        ("x-${{ parameters.arr }}", "x-1,x"),
        ("x-${{ parameters.missing }}", "x-"),
        ("x-${{ parameters.n }}", "x-"),
        ("${{ parameters.obj.a }}${{ parameters.count }}", "15"),
        ("{% if parameters.flag %}false{% endif %}", False),
        ("{% if parameters.flag %}abc{% endif %}", "abc"),
        ("true", "true"),
        ("42", "42"),
        ("${{ [1,2] }}", [1, 2]),
        ('${{ {"a": parameters.name} }}', {"a": "abc"}),
        ("${{ parameters.obj | dump }}", '{"a":1}'),
        ('${{ "" }}', ""),
        ("${{ parameters.empty }}", ""),
    ],
)
def test_type_preservation_table(templater: Templater, template: str, expected: Any) -> None:
    assert same(templater.render_value(template, CONTEXT), expected)


@pytest.mark.parametrize(
    "template",
    [
        "${{ parameters.missing }}",
        "${{ parameters.missing.deep }}",
        "${{ parameters.missing }}${{ parameters.n }}",
        "{% if not parameters.flag %}x{% endif %}",
        "",
    ],
)
def test_empty_result_is_undefined(templater: Templater, template: str) -> None:
    assert templater.render_value(template, CONTEXT) is UNDEFINED


def test_render_value_walks_dicts_and_lists(templater: Templater) -> None:
    value = {
        "message": "Hello ${{ parameters.name }}",
        "count": "${{ parameters.count }}",
        "dropped": "${{ parameters.missing }}",
        "nested": {"items": ["${{ parameters.flag }}", "${{ parameters.missing }}", 7, None]},
        "number": 3,
        "boolean": False,
        "nothing": None,
    }
    assert same(
        templater.render_value(value, CONTEXT),
        {
            "message": "Hello abc",
            "count": 5,
            "nested": {"items": [True, None, 7, None]},
            "number": 3,
            "boolean": False,
            "nothing": None,
        },
    )


def test_render_value_leaves_input_untouched(templater: Templater) -> None:
    value = {"a": ["${{ parameters.count }}"]}
    templater.render_value(value, CONTEXT)
    assert value == {"a": ["${{ parameters.count }}"]}


@pytest.mark.parametrize(
    "template",
    [
        "${{ parameters.name | nosuchfilter }}",
        "${{ 'gitlab.com?owner=o&repo=r' | parseRepoUrl }}",
        "${{ parameters.name",
        "{% if %}",
        "x ${{ parameters.missing() }}",
    ],
)
def test_render_value_keeps_the_raw_string_when_rendering_fails(
    templater: Templater, template: str
) -> None:
    assert templater.render_value(template, CONTEXT) == template


def test_text_inside_a_block_with_values_falls_back_to_the_string(templater: Templater) -> None:
    source = "{% if parameters.flag %}n=${{ parameters.name }}{% endif %}"
    assert templater.render_value(source, CONTEXT) == "n=abc"
    assert same(
        templater.render_value("{% if true %}${{ parameters.arr }}{% endif %}", CONTEXT), [1, "x"]
    )


def test_numbers_parse_the_way_javascript_writes_them(templater: Templater) -> None:
    assert same(templater.render_value("${{ 4 / 2 }}", {}), 2)
    assert same(templater.render_value("${{ 1 / 4 }}", {}), 0.25)
    assert same(templater.render_value("{% if true %}5.0{% endif %}", {}), 5)
    assert templater.render_value("{% if true %}NaN{% endif %}", {}) == "NaN"


# --- output (finalize) and to_js_string -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (UNDEFINED, ""),
        (True, "true"),
        (False, "false"),
        (5, "5"),
        (5.0, "5"),
        (-0.0, "0"),
        (1.5, "1.5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e21, "1e+21"),
        (1e16, "10000000000000000"),
        (123456789012345680000.0, "123456789012345680000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (2.5e-8, "2.5e-8"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        ("text", "text"),
        ([1, "x", None, [2, [3.0, True]]], "1,x,,2,3,true"),
        ([], ""),
        ({"a": 1}, "[object Object]"),
        ({}, "[object Object]"),
    ],
)
def test_to_js_string(value: Any, expected: str) -> None:
    assert to_js_string(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (5.0, "5"),
        (1.5, "1.5"),
        ([1, [2, None], {"a": 1}], "1,2,,[object Object]"),
        ({"a": 1}, "[object Object]"),
    ],
)
def test_interpolated_values_are_written_as_javascript_writes_them(
    templater: Templater, value: Any, expected: str
) -> None:
    assert templater.render_string("[${{ v }}]", {"v": value}) == f"[{expected}]"


def test_undefined_renders_as_empty_text(templater: Templater) -> None:
    assert render(templater, "<${{ parameters.missing }}|${{ nothing.at.all }}>") == "<|>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (UNDEFINED, False),
        (False, False),
        (0, False),
        (0.0, False),
        (math.nan, False),
        ("", False),
        ([], False),
        (True, True),
        (1, True),
        (-1.5, True),
        ("false", True),
        ("0", True),
        ([0], True),
        ({}, True),
        ({"a": 1}, True),
    ],
)
def test_is_truthy(value: Any, expected: bool) -> None:
    assert is_truthy(value) is expected


# --- JavaScript semantics of the language --------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${{ 1 + 2 }}", "3"),
        ("${{ 'v' + parameters.count }}", "v5"),
        ("${{ 1 + '1' }}", "11"),
        ("${{ parameters.arr + 1 }}", "1,x1"),
        ("${{ '6' * 2 }}", "12"),
        ("${{ 'ab' * 2 }}", "NaN"),
        ("${{ 7 / 0 }}", "Infinity"),
        ("${{ -7 % 3 }}", "-1"),
        ("${{ 7 // 2 }}", "3"),
        ("${{ 2 ** 10 }}", "1024"),
        ("${{ parameters.missing + 1 }}", "NaN"),
        ("${{ -parameters.num }}", "-123"),
        ("${{ 'a' ~ true ~ none ~ parameters.missing ~ 1.0 }}", "atruenullundefined1"),
        ("${{ parameters.count == '5' }}", "true"),
        ("${{ parameters.n == parameters.missing }}", "true"),
        ("${{ parameters.n == 0 }}", "false"),
        ("${{ parameters.flag == 1 }}", "true"),
        ("${{ parameters.count != 5 }}", "false"),
        ("${{ '10' < '9' }}", "true"),
        ("${{ 10 < '9' }}", "false"),
        ("${{ 1 < 2 < 3 }}", "true"),
        ("${{ 3 > 2 > 1 }}", "false"),
        ("${{ 'x' in parameters.arr }}", "true"),
        ("${{ '1' in parameters.arr }}", "false"),
        ("${{ 'bc' in parameters.name }}", "true"),
        ("${{ 'a' in parameters.obj }}", "true"),
        ("${{ 'b' not in parameters.obj }}", "true"),
        ("${{ [] or 'fallback' }}", ""),
        ("${{ parameters.empty or 'fallback' }}", "fallback"),
        ("${{ parameters.flag and parameters.name }}", "abc"),
        ("${{ 0 and parameters.name }}", "0"),
        ("${{ not [] }}", "false"),
        ("{% if {} %}yes{% else %}no{% endif %}", "yes"),
        ("{% if 0.0 %}yes{% else %}no{% endif %}", "no"),
        ("${{ 'yes' if parameters.arr else 'no' }}", "yes"),
        ("{% for k, v in parameters.obj %}${{ k }}=${{ v }};{% endfor %}", "a=1;"),
        ("{% for pair in parameters.obj %}${{ pair }}{% endfor %}", "a,1"),
        ("{% for c in 'ab' %}${{ loop.index }}${{ c }}{% endfor %}", "1a2b"),
        ("{% for x in parameters.missing %}x{% else %}empty{% endfor %}", "empty"),
        ("{% for x in [1, 2, 3] if x > 1 %}${{ x }}{% endfor %}", "23"),
        ("{% set n = parameters.count + 1 %}${{ n }}", "6"),
        ("{% for x in [0, 1, 2, 3] if x and x > 1 %}${{ x }}{% endfor %}", "23"),
        ("{% macro m(a=none or 'd') %}${{ a }}{% endmacro %}${{ m() }}${{ m('z') }}", "dz"),
        (
            "{% macro w() %}[${{ caller() }}]{% endmacro %}{% call w() %}${{ '' or 'c' }}{% endcall %}",
            "[c]",
        ),
        ("${{ (1 and 0) or (none and 1) or 'z' }}", "z"),
        (
            "{% macro greet(who) %}hi ${{ who }}{% endmacro %}${{ greet(parameters.name) }}",
            "hi abc",
        ),
        ("${{ parameters['name'] }}${{ parameters.arr[1] }}${{ parameters.arr[-1] }}", "abcx"),
        ("${{ parameters.arr['1'] }}${{ parameters.arr[4 / 4] }}", "xx"),
        ("${{ parameters.name[1:] }}", "bc"),
        ("${{ range(3) }}", "0,1,2"),
        ("{% set c = cycler('a', 'b') %}${{ c.next() }}${{ c.next() }}${{ c.next() }}", "aba"),
        ('${{ {key: 1, "other": 2} | dump }}', '{"key":1,"other":2}'),
    ],
)
def test_javascript_semantics(templater: Templater, template: str, expected: str) -> None:
    assert render(templater, template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${{ parameters.name.length }}", "3"),
        ("${{ parameters.name.charAt(1) }}${{ parameters.name.charAt(9) }}", "b"),
        ("${{ parameters.name.charCodeAt(0) }}", "97"),
        ("${{ parameters.name.concat('-', 1, true) }}", "abc-1true"),
        ("${{ parameters.name.endsWith('bc') }}", "true"),
        ("${{ parameters.name.endsWith('a', 1) }}", "true"),
        ("${{ parameters.name.includes('b') }}", "true"),
        ("${{ parameters.name.indexOf('c') }}|${{ parameters.name.indexOf('z') }}", "2|-1"),
        ("${{ 'abcabc'.lastIndexOf('b') }}|${{ 'abcabc'.lastIndexOf('b', 3) }}", "4|1"),
        ("${{ 'a-b-c'.replace('-', '+') }}", "a+b-c"),
        ("${{ 'a-b-c'.replace(r/-/g, '+') }}", "a+b+c"),
        ("${{ 'John Smith'.replace(r/(\\w+)\\s(\\w+)/, '$2, $1') }}", "Smith, John"),
        ("${{ parameters.name.slice(1) }}|${{ parameters.name.slice(-2, -1) }}", "bc|b"),
        ("${{ 'org/repo'.split('/')[1] }}", "repo"),
        ("${{ 'a,b,c'.split(',', 2) }}", "a,b"),
        ("${{ 'abc'.split('') | dump }}", '["a","b","c"]'),
        ("${{ 'a1b2c'.split(r/\\d/) | dump }}", '["a","b","c"]'),
        ("${{ 'My service'.startsWith('My') }}", "true"),
        ("${{ parameters.name.substring(2, 0) }}", "ab"),
        ("${{ 'MiXed'.toLowerCase() }}${{ 'MiXed'.toUpperCase() }}", "mixedMIXED"),
        (
            "[${{ '  x  '.trim() }}|${{ '  x  '.trimEnd() }}|${{ '  x  '.trimStart() }}]",
            "[x|  x|x  ]",
        ),
        ("${{ (1.005).toFixed(2) }}|${{ (2.5).toFixed(0) }}|${{ (-1.5).toFixed(0) }}", "1.00|3|-2"),
        ("${{ parameters.count.toFixed(2) }}", "5.00"),
        ("${{ (123.456).toExponential(2) }}|${{ (0.00015).toExponential() }}", "1.23e+2|1.5e-4"),
        ("${{ (123.456).toPrecision(4) }}|${{ (0.000123).toPrecision(2) }}", "123.5|0.00012"),
        ("${{ (123456).toPrecision(2) }}", "1.2e+5"),
        ("${{ (255).toString(16) }}|${{ (5).toString(2) }}|${{ (1.5).toString() }}", "ff|101|1.5"),
        ("${{ parameters.arr.length }}", "2"),
        ("${{ parameters.arr.at(-1) }}", "x"),
        ("${{ parameters.arr.concat([2, 3], 4) | dump }}", '[1,"x",2,3,4]'),
        ("${{ [1, [2, [3]]].flat() | dump }}", "[1,2,[3]]"),
        ("${{ parameters.arr.includes('x') }}|${{ parameters.arr.includes('1') }}", "true|false"),
        ("${{ parameters.arr.indexOf('x') }}|${{ [1, 2, 1].lastIndexOf(1) }}", "1|2"),
        ("${{ parameters.arr.join(' + ') }}|${{ [1, none, 2].join() }}", "1 + x|1,,2"),
        ("${{ [1, 2, 3, 4].slice(1, -1) | dump }}", "[2,3]"),
        ("${{ [10, 9, 1].sort() | dump }}", "[1,10,9]"),
        ("{% set xs = [1, 2] %}${{ xs.push(3) }}${{ xs.pop() }}${{ xs.shift() }}${{ xs }}", "3312"),
        (
            "{% set xs = [1, 2, 3] %}${{ xs.splice(1, 1, 'a', 'b') }}|${{ xs.reverse() }}",
            "2|3,b,a,1",
        ),
        ("{% set xs = [3] %}${{ xs.unshift(1, 2) }}|${{ xs.fill(0, 1) }}", "3|1,0,0"),
        ("${{ [1, 2, 3, 4, 5].copyWithin(0, 3) | dump }}", "[4,5,3,4,5]"),
    ],
)
def test_javascript_methods(templater: Templater, template: str, expected: str) -> None:
    assert render(templater, template) == expected


@pytest.mark.parametrize(
    "template",
    [
        "${{ parameters.name.upper() }}",
        "${{ parameters.arr.append(1) }}",
        "${{ parameters.obj.items() }}",
        "${{ parameters.obj.keys() }}",
        "${{ parameters.count.bit_length() }}",
        "${{ parameters.flag.toString() }}",
    ],
)
def test_python_methods_are_not_reachable(templater: Templater, template: str) -> None:
    with pytest.raises(TemplateRenderError, match="has no attribute"):
        render(templater, template)


def test_keys_named_like_methods_are_data(templater: Templater) -> None:
    context = {"parameters": {"items": [1, 2, 3], "keys": "k", "length": 9}}
    assert (
        render(templater, "${{ parameters.items.length }}${{ parameters.keys }}", context) == "3k"
    )
    assert render(templater, "${{ parameters.length }}", context) == "9"


def test_mutating_methods_do_not_change_the_callers_data(templater: Templater) -> None:
    context = {"parameters": {"tags": ["a"]}}
    first = templater.render_string(
        "${{ parameters.tags.push('b') }}${{ parameters.tags }}", context
    )
    second = templater.render_string(
        "${{ parameters.tags.push('c') }}${{ parameters.tags }}", context
    )
    assert (first, second) == ("2a,b", "2a,c")
    assert context == {"parameters": {"tags": ["a"]}}


# --- §6.4 Backstage filters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("repo_url", "expected"),
    [
        ("github.com?owner=o&repo=r", {"host": "github.com", "owner": "o", "repo": "r"}),
        (
            "github.com?repo=backstage&owner=backstage",
            {"host": "github.com", "owner": "backstage", "repo": "backstage"},
        ),
        (
            "github.com?owner=/o/&repo=r/&organization=org",
            {"host": "github.com", "owner": "o", "repo": "r", "organization": "org"},
        ),
        ("GitHub.com?owner=o+x&repo=r%2Fs", {"host": "github.com", "owner": "o x", "repo": "r/s"}),
    ],
)
def test_parse_repo_url(templater: Templater, repo_url: str, expected: dict[str, str]) -> None:
    context = {"parameters": {"repoUrl": repo_url}}
    result = templater.render_value("${{ parameters.repoUrl | parseRepoUrl }}", context)
    assert same(result, expected)
    assert list(result) == list(expected)  # Backstage's key order: host, owner, repo, ...


def test_parse_repo_url_unknown_host(templater: Templater) -> None:
    with pytest.raises(TemplateRenderError) as caught:
        render(templater, "${{ 'gitlab.com?owner=o&repo=r' | parseRepoUrl }}")
    assert caught.value.detail == (
        "No matching integration configuration for host gitlab.com, "
        "please check your integrations config"
    )
    assert isinstance(caught.value, InputError)


@pytest.mark.parametrize(
    ("repo_url", "message"),
    [
        ("github.com?owner=o", "https://github.com/?owner=o, missing repo"),
        ("github.com?repo=r", "https://github.com/?repo=r, missing owner"),
        ("github.com?owner=o&repo=", "https://github.com/?owner=o&repo=, missing repo"),
        ("github.com?owner=a b", "https://github.com/?owner=a%20b, missing repo"),
    ],
)
def test_parse_repo_url_missing_parameter(
    templater: Templater, repo_url: str, message: str
) -> None:
    with pytest.raises(TemplateRenderError) as caught:
        render(templater, "${{ parameters.url | parseRepoUrl }}", {"parameters": {"url": repo_url}})
    assert caught.value.detail == f"Invalid repo URL passed to publisher: {message}"


@pytest.mark.parametrize(
    ("repo_url", "expected"),
    [
        ("gitlab.example.com?project=42", {"host": "gitlab.example.com", "project": "42"}),
        (
            "gitlab.example.com?owner=g&repo=r",
            {"host": "gitlab.example.com", "owner": "g", "repo": "r"},
        ),
        ("gitea.example.com?repo=r", {"host": "gitea.example.com", "repo": "r"}),
        (
            "dev.azure.com?organization=o&project=p&repo=r",
            {"host": "dev.azure.com", "repo": "r", "organization": "o", "project": "p"},
        ),
        ("ghe.local:8443?owner=o&repo=r", {"host": "ghe.local:8443", "owner": "o", "repo": "r"}),
    ],
)
def test_parse_repo_url_uses_the_configured_integrations(
    repo_url: str, expected: dict[str, str]
) -> None:
    templater = Templater(
        scm_hosts={
            "gitlab.example.com": "gitlab",
            "gitea.example.com": "gitea",
            "dev.azure.com": "azure",
            "ghe.local:8443": "github",
        }
    )
    result = templater.render_value(
        "${{ parameters.u | parseRepoUrl }}", {"parameters": {"u": repo_url}}
    )
    assert same(result, expected)


def test_parse_repo_url_requirements_per_integration_type() -> None:
    templater = Templater(scm_hosts={"gitlab.example.com": "gitlab", "dev.azure.com": "azure"})
    with pytest.raises(TemplateRenderError, match=r"missing owner$"):
        templater.render_string("${{ 'gitlab.example.com?repo=r' | parseRepoUrl }}", {})
    with pytest.raises(TemplateRenderError, match=r"missing project$"):
        templater.render_string("${{ 'dev.azure.com?owner=o&repo=r' | parseRepoUrl }}", {})


def test_project_slug(templater: Templater) -> None:
    context = {"parameters": {"repoUrl": "github.com?repo=backstage&owner=backstage"}}
    assert same(
        templater.render_value("${{ parameters.repoUrl | projectSlug }}", context),
        "backstage/backstage",
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "${{ 'group:techdocs' | parseEntityRef }}",
            {"kind": "group", "namespace": "default", "name": "techdocs"},
        ),
        (
            "${{ 'Group:Team-A/Tech' | parseEntityRef }}",
            {"kind": "Group", "namespace": "Team-A", "name": "Tech"},
        ),
        (
            "${{ 'user:default/jane' | parseEntityRef }}",
            {"kind": "user", "namespace": "default", "name": "jane"},
        ),
        (
            '${{ "techdocs" | parseEntityRef({ defaultKind:"group", defaultNamespace:"another-namespace" }) }}',
            {"kind": "group", "namespace": "another-namespace", "name": "techdocs"},
        ),
        (
            "${{ 'ns/techdocs' | parseEntityRef({ 'defaultKind': 'group' }) }}",
            {"kind": "group", "namespace": "ns", "name": "techdocs"},
        ),
        (
            "${{ {'kind': 'api', 'name': 'x'} | parseEntityRef }}",
            {"kind": "api", "namespace": "default", "name": "x"},
        ),
        ("${{ 'group:techdocs' | parseEntityRef | pick('name') }}", "techdocs"),
    ],
)
def test_parse_entity_ref(templater: Templater, template: str, expected: Any) -> None:
    assert same(templater.render_value(template, {}), expected)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            "techdocs",
            'Entity reference "techdocs" had missing or empty kind '
            '(e.g. did not start with "component:" or similar)',
        ),
        ("", "Entity reference must not be empty"),
        ("group:", 'Entity reference "group:" was not on the form [<kind>:][<namespace>/]<name>'),
    ],
)
def test_parse_entity_ref_errors(templater: Templater, ref: str, message: str) -> None:
    with pytest.raises(TemplateRenderError) as caught:
        render(
            templater, "${{ parameters.owner | parseEntityRef }}", {"parameters": {"owner": ref}}
        )
    assert caught.value.detail == message


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("name", "techdocs"),
        ("metadata.labels.tier", "gold"),
        ("spec.items[1].id", 2),
        ("spec.items.0.id", 1),
        ('spec["items"][0].id', 1),
        ("a.b", "dotted key"),
        ("spec.items.length", 2),
    ],
)
def test_pick(templater: Templater, path: str, expected: Any) -> None:
    entity = {
        "name": "techdocs",
        "metadata": {"labels": {"tier": "gold"}},
        "spec": {"items": [{"id": 1}, {"id": 2}]},
        "a.b": "dotted key",
    }
    result = templater.render_value("${{ entity | pick(path) }}", {"entity": entity, "path": path})
    assert same(result, expected)


def test_pick_of_a_missing_path_is_undefined(templater: Templater) -> None:
    assert templater.render_value("${{ {'a': {}} | pick('a.b.c') }}", {}) is UNDEFINED


# --- Nunjucks built-in filters -------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${{ -3.5 | abs }}", "3.5"),
        ("${{ [1, 2, 3, 4, 5] | batch(2, 'x') | dump }}", '[[1,2],[3,4],[5,"x"]]'),
        ("${{ [1, 2, 3] | batch(2, 0) | dump }}", "[[1,2],[3]]"),
        ("${{ 'hELLO wORLD' | capitalize }}", "Hello world"),
        ("[${{ 'ab' | center(7) }}]", "[  ab   ]"),
        ("${{ parameters.missing | default('dflt') }}|${{ parameters.n | d('dflt') }}", "dflt|"),
        ("${{ parameters.empty | default('dflt', true) }}", "dflt"),
        ("${{ {'b': 1, 'A': 2} | dictsort | dump }}", '[["A",2],["b",1]]'),
        ("${{ {'a': [1, none], 'b': 'é<'} | dump }}", '{"a":[1,null],"b":"é<"}'),
        ("${{ {'a': 1} | dump(2) }}", '{\n  "a": 1\n}'),
        ("${{ parameters.missing | dump }}|${{ [parameters.missing] | dump }}", "|[null]"),
        ("${{ '<a href=\"x\">\\'&' | escape }}", "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"),
        (
            "${{ '<b>' | e | e }}|${{ '<b>' | safe | e }}|${{ '<b>' | e | forceescape }}",
            "&lt;b&gt;|<b>|&amp;lt;b&amp;gt;",
        ),
        (
            "${{ parameters.arr | first }}${{ parameters.arr | last }}${{ parameters.name | last }}",
            "1xc",
        ),
        ("${{ '3.7abc' | float }}|${{ 'x' | float(1.5) }}", "3.7|1.5"),
        (
            "${{ '42px' | int }}|${{ 3.9 | int }}|${{ 'ff' | int(0, 16) }}|${{ 'x' | int(7) }}",
            "42|3|255|7",
        ),
        (
            "${{ [{'t': 'a', 'v': 1}, {'t': 'b', 'v': 2}, {'t': 'a', 'v': 3}] | groupby('t') | dump }}",
            '{"a":[{"t":"a","v":1},{"t":"a","v":3}],"b":[{"t":"b","v":2}]}',
        ),
        ("${{ 'a\\n\\nb' | indent(2) | dump }}", '"a\\n  \\n  b"'),
        ("${{ 'a\\nb' | indent(2, true) | dump }}", '"  a\\n  b"'),
        ("${{ parameters.arr | join }}|${{ parameters.arr | join(', ') }}", "1x|1, x"),
        ("${{ [{'n': 'a'}, {'n': 'b'}] | join('/', 'n') }}", "a/b"),
        (
            "${{ parameters.arr | length }}${{ parameters.obj | length }}${{ parameters.missing | length }}",
            "210",
        ),
        (
            "${{ {'a': 1} | list | dump }}|${{ 'ab' | list | dump }}",
            '[{"key":"a","value":1}]|["a","b"]',
        ),
        ("${{ 'AbC' | lower }}${{ 'AbC' | upper }}", "abcABC"),
        ("${{ 'a\\r\\nb\\nc' | nl2br | dump }}", '"a<br />\\nb<br />\\nc"'),
        ("${{ [7] | random }}", "7"),
        (
            "${{ [1, 2, 3, 4] | reject('odd') | dump }}|${{ [1, 2, 3, 4] | select('odd') | dump }}",
            "[2,4]|[1,3]",
        ),
        ("${{ [0, 1, '', 'a', [], none] | select | dump }}", '[1,"a",[]]'),
        (
            "${{ [{'on': true, 'n': 1}, {'on': false, 'n': 2}] | selectattr('on') | dump }}",
            '[{"on":true,"n":1}]',
        ),
        (
            "${{ [{'on': true, 'n': 1}, {'on': false, 'n': 2}] | rejectattr('on') | join(',', 'n') }}",
            "2",
        ),
        ("${{ 'aXbXc' | replace('X', '-') }}|${{ 'aXbXc' | replace('X', '-', 1) }}", "a-b-c|a-bXc"),
        ("${{ 'abc' | replace('', '.') }}", ".a.b.c."),
        (
            "${{ 'a  b   c' | replace(r/\\s+/g, '_') }}|${{ 'Hello' | replace(r/l/, 'L') }}",
            "a_b_c|HeLlo",
        ),
        ("${{ 'abc' | reverse }}|${{ [1, 2] | reverse | dump }}", "cba|[2,1]"),
        (
            "${{ 2.5 | round }}|${{ -2.5 | round }}|${{ 1.2345 | round(2) }}|${{ 1.21 | round(1, 'ceil') }}",
            "3|-2|1.23|1.3",
        ),
        ("${{ [1, 2, 3, 4, 5] | slice(2) | dump }}", "[[1,2,3],[4,5]]"),
        (
            "${{ ['b', 'A', 'c'] | sort | dump }}|${{ [3, 1, 2] | sort(true) | dump }}",
            '["A","b","c"]|[3,2,1]',
        ),
        ("${{ [{'n': 2}, {'n': 1}] | sort(false, false, 'n') | dump }}", '[{"n":1},{"n":2}]'),
        ("${{ 5 | string }}${{ true | string }}${{ [1, 2] | string }}", "5true1,2"),
        ("${{ '<p>a  <b>b</b></p>' | striptags }}", "a b"),
        ("${{ [1, 2, 3] | sum }}|${{ [{'v': 1}, {'v': 2}] | sum('v', 10) }}", "6|13"),
        ("${{ 'hello big-world' | title }}", "Hello Big-world"),
        ("[${{ '  x  ' | trim }}]", "[x]"),
        (
            "${{ 'the quick brown fox' | truncate(12) }}|${{ 'abcdef' | truncate(3, true, '!') }}",
            "the quick...|abc!",
        ),
        (
            "${{ 'a b&c/d' | urlencode }}|${{ {'k': 'v w', 'x': 1} | urlencode }}",
            "a%20b%26c%2Fd|k=v%20w&x=1",
        ),
        (
            "${{ 'see https://x.io/a, or www.y.org.' | urlize }}",
            'see <a href="https://x.io/a">https://x.io/a</a> or <a href="http://www.y.org">www.y.org</a>',
        ),
        ("${{ 'one two, three' | wordcount }}|${{ '' | wordcount }}", "3|"),
    ],
)
def test_nunjucks_filters(templater: Templater, template: str, expected: str) -> None:
    assert render(templater, template) == expected


@pytest.mark.parametrize("name", ["map", "tojson", "unique", "items", "min", "format", "wordwrap"])
def test_jinja_only_filters_do_not_exist(templater: Templater, name: str) -> None:
    with pytest.raises(TemplateRenderError, match=f"No filter named '{name}'"):
        render(templater, f"${{{{ parameters.arr | {name} }}}}")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${{ parameters.missing is defined }}${{ parameters.n is defined }}", "falsetrue"),
        ("${{ parameters.n is null }}${{ parameters.missing is undefined }}", "truetrue"),
        ("${{ parameters.count is number }}${{ parameters.flag is number }}", "truefalse"),
        ("${{ parameters.name is string }}${{ parameters.obj is mapping }}", "truetrue"),
        ("${{ 6 is divisibleby(3) }}${{ 3 is odd }}${{ 4 is even }}", "truetruetrue"),
        ("${{ parameters.count is eq(5) }}${{ parameters.count is equalto('5') }}", "truefalse"),
        (
            "${{ 3 is gt(2) }}${{ 3 is lt(2) }}${{ [] is truthy }}${{ '' is falsy }}",
            "truefalsetruetrue",
        ),
    ],
)
def test_nunjucks_tests(templater: Templater, template: str, expected: str) -> None:
    assert render(templater, template) == expected


def test_extra_filters_and_globals() -> None:
    templater = Templater(
        extra_filters={"shout": lambda value: f"{value}!"},
        extra_globals={"region": "eu-west-1", "double": lambda value: value * 2},
    )
    assert (
        templater.render_string("${{ 'hi' | shout }} ${{ region }} ${{ double(4) }}", {})
        == "hi! eu-west-1 8"
    )


def test_always_and_failure_come_from_the_context(templater: Templater) -> None:
    context = {"always": lambda: True, "failure": lambda: False}
    assert templater.render_value("${{ always() }}", context) is True
    assert templater.render_value("${{ failure() }}", context) is False
    assert templater.render_value("${{ failure() }}", {}) == "${{ failure() }}"


def test_regex_literals_are_only_read_inside_tags(templater: Templater) -> None:
    source = 'r/x/ ${{ "r/x/" }} {# r/x/ #}{% raw %}${{ r/x/ }}{% endraw %} ${{ "axb" | replace(r/x/, "-") }}'
    assert templater.render_string(source, {}) == "r/x/ r/x/ ${{ r/x/ }} a-b"


# --- cookiecutter mode, whitespace control, files -------------------------------------------


def test_cookiecutter_compat(templater: Templater) -> None:
    context = {"cookiecutter": {"name": "svc", "port": 8080}}
    source = (
        "{{ cookiecutter.name }} ${{ cookiecutter.name }} {{ cookiecutter | jsonify }} "
        "{% for k, v in cookiecutter.items() %}{{ k }}={{ v }};{% endfor %} "
        "{{ cookiecutter.get('x', 'dflt') }} {{ cookiecutter.keys() | length }}"
    )
    assert templater.render_string(source, context, cookiecutter_compat=True) == (
        'svc $svc {"name":"svc","port":8080} name=svc;port=8080; dflt 2'
    )


def test_cookiecutter_keys_shadow_dict_methods(templater: Templater) -> None:
    context = {"cookiecutter": {"items": "data"}}
    assert (
        templater.render_string("{{ cookiecutter.items }}", context, cookiecutter_compat=True)
        == "data"
    )
    with pytest.raises(TemplateRenderError, match="not callable"):
        templater.render_string("{{ cookiecutter.items() }}", context, cookiecutter_compat=True)


def test_plain_braces_are_text_outside_cookiecutter_mode(templater: Templater) -> None:
    source = "{{ cookiecutter.name }} ${{ parameters.name }}"
    assert templater.render_string(source, CONTEXT) == "{{ cookiecutter.name }} abc"
    assert templater.render_value(source, CONTEXT) == "{{ cookiecutter.name }} abc"


def test_jinja_isms_only_in_cookiecutter_mode(templater: Templater) -> None:
    with pytest.raises(TemplateRenderError):
        templater.render_string("${{ parameters.arr.append(3) }}", CONTEXT)
    context = {"c": {"xs": [1]}}
    assert (
        templater.render_string("{{ c.xs.append(2) }}{{ c.xs }}", context, cookiecutter_compat=True)
        == "21,2"
    )


@pytest.mark.parametrize(
    ("trim", "lstrip", "expected"),
    [
        (False, False, "a\n  \n  b\n  \nend\n"),
        (True, False, "a\n    b\n  end\n"),
        (False, True, "a\n\n  b\n\nend\n"),
        (True, True, "a\n  b\nend\n"),
    ],
)
def test_trim_and_lstrip_blocks(
    templater: Templater, trim: bool, lstrip: bool, expected: str
) -> None:
    source = "a\n  {% if true %}\n  b\n  {% endif %}\nend\n"
    assert templater.render_string(source, {}, trim_blocks=trim, lstrip_blocks=lstrip) == expected


def test_text_is_kept_byte_for_byte(templater: Templater) -> None:
    assert templater.render_string("a\r\nb ${{ 'x' }}\r\n\r\n", {}) == "a\r\nb x\r\n\r\n"
    assert (
        templater.render_string("a\r\n{% if true %}\r\nb\r\n{% endif %}\r\n", {}, trim_blocks=True)
        == "a\r\nb\r\n"
    )
    assert templater.render_string("no tags\r\n\n", {}) == "no tags\r\n\n"
    assert templater.render_string("${{ 'x' }}\n", {}) == "x\n"


def test_render_string_errors_name_the_file_and_line(templater: Templater) -> None:
    with pytest.raises(TemplateRenderError) as caught:
        templater.render_string("one\ntwo\n${{ x | nosuch }}\n", {}, name="skeleton/README.md")
    assert (
        str(caught.value)
        == "Template error in skeleton/README.md at line 3: No filter named 'nosuch'."
    )
    assert (caught.value.template_name, caught.value.lineno) == ("skeleton/README.md", 3)

    with pytest.raises(TemplateRenderError) as caught:
        templater.render_string(
            "a\n{% if x %}\n${{ x.nope() }}{% endif %}", {"x": {}}, name="f.txt"
        )
    assert (
        caught.value.message
        == "Template error in f.txt at line 3: 'dict object' has no attribute 'nope'"
    )

    with pytest.raises(TemplateRenderError) as caught:
        templater.render_string("a\n\n{% for %}", {})
    assert caught.value.message.startswith("Template error at line 3: ")


# --- §5.3 conditions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "values", "expected"),
    [
        (True, {}, True),
        (False, {"x": 1}, False),
        ("parameters.kind == 'service'", {"kind": "service"}, True),
        ("  parameters.kind == 'service'  ", {"kind": "website"}, False),
        ("${{ parameters.enabled }}", {"enabled": False}, False),
        ("${{ parameters.enabled }}", {"enabled": True}, True),
        ("parameters.tags", {"tags": []}, False),
        ("parameters.tags", {"tags": ["a"]}, True),
        ("parameters.opts", {"opts": {}}, True),
        ("parameters.missing", {}, False),
        ("parameters.count", {"count": 0}, False),
        ("'false'", {}, True),
        ("parameters.x | nosuchfilter", {}, True),
        ("${{ parameters.x", {}, True),
        ("secrets.token", {"token": "t"}, False),
    ],
)
def test_evaluate_condition(
    templater: Templater, expression: str | bool, values: dict[str, Any], expected: bool
) -> None:
    assert templater.evaluate_condition(expression, values) is expected


# --- §2.12 extensions ----------------------------------------------------------------------


def test_extensions_equal_backstage_trace(templater: Templater) -> None:
    text = TRACE_04.read_text()
    body = json.loads(text[text.index("\n{") + 1 :])
    extensions = templater.extensions()
    assert extensions == body
    assert list(extensions["filters"]) == ["parseRepoUrl", "parseEntityRef", "pick", "projectSlug"]
    assert json.dumps(extensions, indent=2) == json.dumps(body, indent=2)


def test_extensions_shape(templater: Templater) -> None:
    extensions = templater.extensions()
    assert extensions["globals"] == {"functions": {}, "values": {}}
    entity_ref = extensions["filters"]["parseEntityRef"]
    assert entity_ref["description"] == (
        "Extracts the parts of an entity reference, such as the kind, namespace, and name."
    )
    assert entity_ref["schema"]["output"]["required"] == ["kind", "namespace", "name"]
    assert extensions["filters"]["pick"]["schema"]["arguments"][0]["description"] == "Property"


def test_extensions_list_extra_filters_and_globals() -> None:
    templater = Templater(
        extra_filters={"shout": str.upper}, extra_globals={"region": "eu", "now": lambda: 0}
    )
    extensions = templater.extensions()
    assert extensions["filters"]["shout"] == {}
    assert list(extensions["filters"])[-1] == "shout"
    assert extensions["globals"] == {
        "functions": {"now": {}},
        "values": {"region": {"value": "eu"}},
    }
    extensions["filters"]["pick"]["description"] = "changed"
    assert templater.extensions()["filters"]["pick"]["description"] != "changed"


# --- security ------------------------------------------------------------------------------


ESCAPES = [
    "${{ ''.__class__ }}",
    "${{ ''.__class__.__mro__[1].__subclasses__() }}",
    "${{ parameters.__init__ }}",
    "${{ parameters['__class__'] }}",
    "${{ parameters.name.__class__ }}",
    "${{ cycler.__init__.__globals__ }}",
    "${{ joiner.__init__.__globals__.os }}",
    "${{ namespace.__init__ }}",
    "${{ self.__init__.__globals__ }}",
    "${{ always.__globals__ }}",
    "${{ parameters.name.format }}${{ '{0.__class__}'.format(parameters.name) }}",
    "${{ lipsum.__globals__ }}",
    "${{ range(10 ** 9) | length }}",
    "${{ range(100001) }}",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_sandbox_escapes_fail(templater: Templater, template: str) -> None:
    context = dict(CONTEXT, always=lambda: True)
    with pytest.raises(TemplateRenderError):
        templater.render_string(template, context)
    assert templater.render_value(template, context) == template


@pytest.mark.parametrize(
    "template", ["${{ 'a' * 10 ** 9 }}", "${{ 10 ** 10 ** 10 ** 10 }}", "${{ 9 ** 999999 }}"]
)
def test_arithmetic_cannot_exhaust_memory(templater: Templater, template: str) -> None:
    assert render(templater, template) in {"NaN", "Infinity"}


USER_VALUES = [
    "${{ secrets.token }}",
    "{{ secrets.token }}",
    "{% for x in range(3) %}loop{% endfor %}",
    "{{ 7*7 }}",
    "${{ 7*7 }}",
    "{# comment #}",
    "r/x/g",
]


@pytest.mark.parametrize("value", USER_VALUES)
def test_user_values_are_never_evaluated(templater: Templater, value: str) -> None:
    context = {
        "parameters": {"v": value, "list": [value], "obj": {"k": value}},
        "secrets": {"token": "s3cr3t"},
    }
    assert templater.render_value("${{ parameters.v }}", context) == value
    assert templater.render_value("prefix ${{ parameters.v }}", context) == f"prefix {value}"
    assert templater.render_value("${{ parameters.list }}", context) == [value]
    assert templater.render_value("${{ parameters.obj }}", context) == {"k": value}
    assert templater.render_value({"deep": ["${{ parameters.v }}"]}, context) == {"deep": [value]}
    assert templater.render_value("${{ parameters.v | dump }}", context) == json.dumps(value)
    assert templater.render_string("${{ parameters.v }}", context) == value
    compat = {"cookiecutter": {"v": value}, "secrets": {"token": "s3cr3t"}}
    assert (
        templater.render_string("{{ cookiecutter.v }}", compat, cookiecutter_compat=True) == value
    )
    assert templater.evaluate_condition("parameters.v", {"v": value}) is True


def test_rendered_output_is_not_rendered_again(templater: Templater) -> None:
    context = {"parameters": {"open": "${{", "close": "}}"}, "secrets": {"token": "s3cr3t"}}
    source = "${{ parameters.open }} secrets.token ${{ parameters.close }}"
    assert templater.render_value(source, context) == "${{ secrets.token }}"
    assert (
        templater.render_value("${{ '${{ secrets.token }}' }}", context) == "${{ secrets.token }}"
    )


# --- speed ---------------------------------------------------------------------------------


def test_compiled_templates_are_cached(templater: Templater) -> None:
    inputs = {f"key{i}": f"value-${{{{ parameters.count + {i} }}}}" for i in range(20)}
    first = templater.render_value(inputs, CONTEXT)
    hits_before = templater._compile.cache_info().hits
    assert templater.render_value(inputs, CONTEXT) == first
    assert templater._compile.cache_info().hits == hits_before + 20
    assert first["key3"] == "value-8"
