"""Backstage's own filters: ``parseRepoUrl``, ``parseEntityRef``, ``pick``, ``projectSlug``.

They behave as in ``@backstage/plugin-scaffolder-backend`` (CONTRACT §6.4), error messages
included, and `BACKSTAGE_FILTER_METADATA` is what Backstage serves for them on
``GET /v2/templating-extensions``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlsplit

from scaffolder.errors import InputError
from scaffolder.tasks.templating_filters import own_value
from scaffolder.tasks.templating_js import (
    JS_UNDEFINED,
    JS_WHITESPACE,
    is_undefined,
    js_json,
    js_string,
    js_truthy,
)

_DRAFT_07: Final = "http://json-schema.org/draft-07/schema#"
#: Backstage's `parseRepoUrl` reads these query parameters, in this order of output keys.
_REPO_URL_PARAMS: Final = ("owner", "repo", "organization", "workspace", "project")
#: Query parameters `parseRepoUrl` requires for each integration type (default: github).
_REQUIRED_REPO_PARAMS: Final[Mapping[str, tuple[str, ...]]] = {
    "azure": ("project", "repo"),
    "bitbucketServer": ("project", "repo"),
    "bitbucketCloud": ("workspace", "project", "repo"),
    "gitea": ("repo",),
    "gerrit": ("repo",),
}
# lodash's `stringToPath`, which `pick` uses to split paths like `a.b[0]["c"]`.
_LODASH_PATH = re.compile(
    r"""[^.[\]]+|\[(?:(-?\d+(?:\.\d+)?)|(["'])((?:(?!\2)[^\\]|\\.)*?)\2)\]"""
    r"""|(?=(?:\.|\[\])(?:\.|\[\]|$))"""
)


def parse_repo_url(repo_url: Any, scm_hosts: Mapping[str, str]) -> dict[str, str]:
    """Backstage's ``parseRepoUrl``: ``"github.com?owner=o&repo=r"`` into its parts.

    The value is read as ``https://<repoUrl>``. The host must be a configured SCM integration
    and the query must carry the parameters that integration type needs; parameters that are
    absent are left out of the result (they are `undefined` in Backstage).

    Raises:
        InputError: with Backstage's messages for an unparsable URL, an unknown host or a
            missing parameter.
    """
    text = js_string(repo_url)
    try:
        parts = urlsplit(f"https://{text}")
        hostname, port = parts.hostname, parts.port
    except ValueError:
        hostname = port = None
    if not hostname or any(char in JS_WHITESPACE for char in hostname):
        raise InputError(
            f"Invalid repo URL passed to publisher, got {text}, TypeError: Invalid URL"
        )
    host = hostname if port in (None, 443) else f"{hostname}:{port}"
    integration = {key.lower(): kind for key, kind in scm_hosts.items()}.get(host)
    if integration is None:
        raise InputError(
            f"No matching integration configuration for host {host}, "
            "please check your integrations config"
        )
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(key, value)
    found = {name: query[name].strip("/") for name in _REPO_URL_PARAMS if name in query}
    if integration == "gitlab":
        required: tuple[str, ...] = () if found.get("project") else ("owner", "repo")
    elif integration == "bitbucket":
        required = ("workspace",) if host == "www.bitbucket.org" else ()
        required += ("project", "repo")
    else:
        required = _REQUIRED_REPO_PARAMS.get(integration, ("repo", "owner"))
    for name in required:
        if not query.get(name):
            serialized = f"https://{host}{_url_encode(parts.path) or '/'}"
            if parts.query:
                serialized += f"?{_url_encode(parts.query)}"
            raise InputError(f"Invalid repo URL passed to publisher: {serialized}, missing {name}")
    return {"host": host} | {name: found[name] for name in _REPO_URL_PARAMS if name in found}


def _url_encode(text: str) -> str:
    """Percent-encode what WHATWG URL serialization encodes in a path or query."""
    return "".join(
        quote(char, safe="") if char in " \"'<>`" or not 0x20 < ord(char) < 0x7F else char
        for char in text
    )


def project_slug(repo_url: Any, scm_hosts: Mapping[str, str]) -> str:
    """Backstage's ``projectSlug``: ``"<owner>/<repo>"`` of a repo URL."""
    parts = parse_repo_url(repo_url, scm_hosts)
    return f"{js_string(parts.get('owner', JS_UNDEFINED))}/{js_string(parts.get('repo'))}"


def parse_entity_ref(ref: Any, context: Any = JS_UNDEFINED) -> dict[str, Any]:
    """Backstage's ``parseEntityRef``: ``[<kind>:][<namespace>/]<name>`` into its parts.

    Parts are not lower-cased. ``context`` may give ``defaultKind`` and ``defaultNamespace``;
    the namespace defaults to ``default``, the kind has no default.

    Raises:
        ValueError: the reference is empty or has no kind, namespace or name.
        TypeError: the string is not of the form ``[<kind>:][<namespace>/]<name>``.
    """
    if not js_truthy(ref):
        raise ValueError("Entity reference must not be empty")
    defaults = context if isinstance(context, Mapping) else {}
    default_kind = defaults.get("defaultKind", JS_UNDEFINED)
    default_namespace = defaults.get("defaultNamespace")
    if not js_truthy(default_namespace):
        default_namespace = "default"
    if isinstance(ref, str):
        kind, namespace, name = _split_entity_ref(str(ref))
    else:
        kind, namespace, name = (own_value(ref, key) for key in ("kind", "namespace", "name"))
    kind = default_kind if kind is None or is_undefined(kind) else kind
    namespace = default_namespace if namespace is None or is_undefined(namespace) else namespace
    for part, value in (("kind", kind), ("namespace", namespace), ("name", name)):
        if not js_truthy(value):
            hint = ' (e.g. did not start with "component:" or similar)' if part == "kind" else ""
            raise ValueError(f"Entity reference {js_json(ref)} had missing or empty {part}{hint}")
    return {"kind": kind, "namespace": namespace, "name": name}


def _split_entity_ref(ref: str) -> tuple[str | None, str | None, str]:
    colon = ref.find(":")
    slash = ref.find("/")
    if slash != -1 and slash < colon:  # a "/" ahead of the ":" makes the rest the name
        colon = -1
    kind = None if colon == -1 else ref[:colon]
    namespace = None if slash == -1 else ref[colon + 1 : slash]
    name = ref[max(colon + 1, slash + 1) :]
    if kind == "" or namespace == "" or name == "":
        raise TypeError(
            f'Entity reference "{ref}" was not on the form [<kind>:][<namespace>/]<name>'
        )
    return kind, namespace, name


def pick(value: Any, path: Any = JS_UNDEFINED) -> Any:
    """Backstage's ``pick``: lodash ``get(value, path)``, e.g. ``pick('metadata.name')``."""
    if isinstance(path, list | tuple):
        segments = [js_string(segment) for segment in path]
    else:
        key = js_string(path)
        if isinstance(value, Mapping) and key in value:
            return value[key]
        segments = [""] if key.startswith(".") else []
        for match in _LODASH_PATH.finditer(key):
            number, quote_mark, quoted = match.groups()
            if quote_mark:
                segments.append(re.sub(r"\\(\\)?", r"\1", quoted))
            else:
                segments.append(number.strip() if number else match.group(0))
    for segment in segments:
        if value is None or is_undefined(value):
            return JS_UNDEFINED
        value = own_value(value, segment)
    return value


def backstage_filters(scm_hosts: Mapping[str, str]) -> dict[str, Callable[..., Any]]:
    """The four filters Backstage always registers, bound to the configured SCM hosts."""
    return {
        "parseRepoUrl": functools.partial(parse_repo_url, scm_hosts=scm_hosts),
        "parseEntityRef": parse_entity_ref,
        "pick": pick,
        "projectSlug": functools.partial(project_slug, scm_hosts=scm_hosts),
    }


#: ``GET /v2/templating-extensions`` metadata of the four filters, as Backstage serves it.
BACKSTAGE_FILTER_METADATA: Final[Mapping[str, Any]] = {
    "parseRepoUrl": {
        "description": (
            "Parses a repository URL into its constituent parts: owner, repository name, etc."
        ),
        "examples": [
            {
                "example": (
                    "- id: log\n"
                    "  name: Parse Repo URL\n"
                    "  action: debug:log\n"
                    "  input:\n"
                    "    message: ${{ parameters.repoUrl | parseRepoUrl }}"
                ),
                "notes": (
                    " - **Input**: `github.com?repo=backstage&owner=backstage`\n"
                    "  - **Output**: "
                    '`{"host":"github.com","owner":"backstage","repo":"backstage"}`\n'
                ),
            },
        ],
        "schema": {
            "input": {
                "type": "string",
                "description": "repo URL as collected from repository picker",
                "$schema": _DRAFT_07,
            },
            "output": {
                "type": "object",
                "properties": {
                    "repo": {
                        "type": "string",
                    },
                    "host": {
                        "type": "string",
                    },
                    "owner": {
                        "type": "string",
                    },
                    "organization": {
                        "type": "string",
                    },
                    "workspace": {
                        "type": "string",
                    },
                    "project": {
                        "type": "string",
                    },
                },
                "required": [
                    "repo",
                    "host",
                ],
                "additionalProperties": False,
                "description": "`RepoSpec`",
                "$schema": _DRAFT_07,
            },
        },
    },
    "parseEntityRef": {
        "description": (
            "Extracts the parts of an entity reference, such as the kind, namespace, and name."
        ),
        "examples": [
            {
                "description": "Without context",
                "example": (
                    "- id: log\n"
                    "  name: Parse Entity Reference\n"
                    "  action: debug:log\n"
                    "  input:\n"
                    "    message: ${{ parameters.owner | parseEntityRef }}\n"
                ),
                "notes": (
                    "- **Input**: `group:techdocs`\n"
                    '- **Output**: `{"kind": "group", "namespace": "default", "name": '
                    '"techdocs"}`\n'
                ),
            },
            {
                "description": "With context",
                "example": (
                    "- id: log\n"
                    "  name: Parse Entity Reference\n"
                    "  action: debug:log\n"
                    "  input:\n"
                    "    message: ${{ parameters.owner | parseEntityRef({ "
                    'defaultKind:"group", defaultNamespace:"another-namespace" }) }}\n'
                ),
                "notes": (
                    "- **Input**: `techdocs`\n"
                    '- **Arguments:**: `[{ "defaultKind": "group", "defaultNamespace": '
                    '"another-namespace" }]`\n'
                    '- **Output**: `{"kind": "group", "namespace": "another-namespace", '
                    '"name": "techdocs"}`\n'
                ),
            },
        ],
        "schema": {
            "input": {
                "anyOf": [
                    {
                        "type": "string",
                        "description": "compact entity reference",
                    },
                    {
                        "type": "object",
                        "properties": {
                            "kind": {
                                "type": "string",
                            },
                            "namespace": {
                                "type": "string",
                            },
                            "name": {
                                "type": "string",
                            },
                        },
                        "required": [
                            "name",
                        ],
                        "additionalProperties": False,
                        "description": "`CompoundEntityRef`",
                    },
                ],
                "$schema": _DRAFT_07,
            },
            "arguments": [
                {
                    "anyOf": [
                        {
                            "not": {},
                        },
                        {
                            "type": "object",
                            "properties": {
                                "defaultKind": {
                                    "type": "string",
                                    "description": (
                                        "The default kind, if none is given in the reference"
                                    ),
                                },
                                "defaultNamespace": {
                                    "type": "string",
                                    "description": (
                                        "The default namespace, if none is given in the reference"
                                    ),
                                },
                            },
                            "additionalProperties": False,
                        },
                    ],
                    "$schema": _DRAFT_07,
                },
            ],
            "output": {
                "type": "object",
                "properties": {
                    "kind": {
                        "type": "string",
                    },
                    "namespace": {
                        "type": "string",
                    },
                    "name": {
                        "type": "string",
                    },
                },
                "required": [
                    "kind",
                    "namespace",
                    "name",
                ],
                "additionalProperties": False,
                "description": "`CompoundEntityRef`",
                "$schema": _DRAFT_07,
            },
        },
    },
    "pick": {
        "description": ("Selects a specific property (e.g. kind, namespace, name) from an object."),
        "examples": [
            {
                "example": (
                    "- id: log\n"
                    "  name: Pick\n"
                    "  action: debug:log\n"
                    "  input:\n"
                    "    message: ${{ parameters.owner | parseEntityRef | pick('name') }}"
                ),
                "notes": (
                    "- **Input**: `{ kind: 'Group', namespace: 'default', name: "
                    "'techdocs'` }\n"
                    "- **Output**: `techdocs`\n"
                ),
            },
        ],
        "schema": {
            "input": {
                "$schema": _DRAFT_07,
            },
            "arguments": [
                {
                    "type": "string",
                    "description": "Property",
                    "$schema": _DRAFT_07,
                },
            ],
            "output": {
                "description": "Selected property",
                "$schema": _DRAFT_07,
            },
        },
    },
    "projectSlug": {
        "description": "Generates a project slug from a repository URL.",
        "examples": [
            {
                "example": (
                    "- id: log\n"
                    "  name: Project Slug\n"
                    "  action: debug:log\n"
                    "  input:\n"
                    "    message: ${{ parameters.repoUrl | projectSlug }}\n"
                ),
                "notes": (
                    "- **Input**: `github.com?repo=backstage&owner=backstage`\n"
                    "- **Output**: backstage/backstage\n"
                ),
            },
        ],
        "schema": {
            "input": {
                "type": "string",
                "description": "repo URL as collected from repository picker",
                "$schema": _DRAFT_07,
            },
            "output": {
                "type": "string",
                "$schema": _DRAFT_07,
            },
        },
    },
}
