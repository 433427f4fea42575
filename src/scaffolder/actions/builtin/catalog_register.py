"""``catalog:register``: register a catalog-info file's location in the catalog.

Upstream's inputs and flow (CONTRACT §7.4): ``catalogInfoUrl``, or ``repoContentsUrl`` plus
``catalogInfoPath`` (default ``/catalog-info.yaml``) resolved by the repository's integration;
``POST /locations``, then its dry run to find the entity to output as ``entityRef`` (the first
Component, else the first entity that is not a generated Location, else the Location);
``optional`` ignores failures of either call. ``catalogInfoUrl`` is always output.

Unlike upstream, registering is idempotent: a location that is registered already is read
again (upstream fails with 409, so a retried task could never get past this step). With the
embedded catalog the location has been read when the step ends.

``repoContentsUrl`` resolves through GitHub integrations as upstream's ``resolveUrl`` does
(a path starting with ``/`` is relative to the repository root, and the result is GitHub's
``/tree/`` form), and through our ``integrations.git[]`` hosts by their ``baseUrl``: the path
is joined to ``repoContentsUrl`` (``publish:git``'s ``<remote>/blob/<branch>``), which the
embedded catalog reads out of the bare repository for a ``file:`` host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action
from scaffolder.catalog.catalog_client import CatalogClient
from scaffolder.catalog.model import stringify_ref
from scaffolder.errors import InputError, ScaffolderError, TaskCancelledError
from scaffolder.integrations.scm import ScmIntegrations

ACTION_ID = "catalog:register"
DEFAULT_CATALOG_INFO_PATH = "/catalog-info.yaml"
#: Upstream's test for an absolute URL: ``new URL(x)`` succeeds for anything with a scheme.
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_GITHUB_TYPE = re.compile(r"//([^/]+)/([^/]+)/([^/]+)/(blob|tree|edit)/")
_GITHUB_FILEPATH = re.compile(r"^/[^/]+/[^/]+/(?:blob|tree|edit)/[^/]+/(?P<filepath>.*)$")


def create_catalog_register_action(
    *, catalog: CatalogClient, integrations: ScmIntegrations
) -> TemplateAction:
    """Build ``catalog:register``.

    Args:
        catalog: the catalog to register in (embedded, or a Backstage catalog).
        integrations: resolve ``repoContentsUrl`` (GitHub, and our plain git hosts).
    """

    def handler(ctx: ActionContext) -> None:
        if "catalogInfoUrl" in ctx.input:
            catalog_info_url = str(ctx.input["catalogInfoUrl"])
        else:
            catalog_info_url = resolve_catalog_info_url(
                integrations,
                str(ctx.input["repoContentsUrl"]),
                str(ctx.input.get("catalogInfoPath", DEFAULT_CATALOG_INFO_PATH)),
            )
        optional = bool(ctx.input.get("optional"))
        ctx.logger.info(f"Registering {catalog_info_url} in the catalog")
        try:
            location = catalog.add_location(catalog_info_url)
            if location.existed:
                ctx.logger.info(
                    f"Location url:{catalog_info_url} was registered already; refreshed it"
                )
        except TaskCancelledError:
            raise
        except ScaffolderError as exc:
            if not optional:
                raise
            ctx.logger.warn(f"Not registered (optional): {exc.name}: {exc.message}")
        try:
            entities = catalog.dry_run_location(catalog_info_url)
            if entities:
                ctx.output("entityRef", _ref(pick_entity(entities)))
        except TaskCancelledError:
            raise
        except ScaffolderError as exc:
            if not optional:
                raise
            ctx.logger.warn(f"No entity to output (optional): {exc.name}: {exc.message}")
        ctx.output("catalogInfoUrl", catalog_info_url)

    return build_action(ACTION_ID, handler, supports_dry_run=False)


def pick_entity(entities: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The entity a registration stands for: the first Component, else the first entity
    that is not a generated Location, else the first (upstream's choice)."""

    def generated(entity: Mapping[str, Any]) -> bool:
        return str((entity.get("metadata") or {}).get("name", "")).startswith("generated-")

    for entity in entities:
        if not generated(entity) and entity.get("kind") == "Component":
            return entity
    for entity in entities:
        if not generated(entity):
            return entity
    return entities[0]


def _ref(entity: Mapping[str, Any]) -> str:
    metadata = entity.get("metadata") or {}
    return stringify_ref(str(entity.get("kind")), metadata.get("namespace"), str(metadata["name"]))


def resolve_catalog_info_url(
    integrations: ScmIntegrations, repo_contents_url: str, path: str
) -> str:
    """``catalogInfoPath`` resolved against ``repoContentsUrl`` by the repository's integration.

    Raises:
        InputError: ``No integration found for host <repoContentsUrl>`` (upstream's message).
    """
    try:
        netloc = urlsplit(repo_contents_url).netloc.lower()
    except ValueError:
        netloc = ""
    for git in integrations.git:
        if repo_contents_url.startswith(git.base_url.rstrip("/") + "/"):
            if _ABSOLUTE.match(path):
                return path
            return repo_contents_url.rstrip("/") + "/" + path.lstrip("/")
    for github in integrations.github:
        if netloc and github.host.lower() == netloc:
            return _github_type(_scm_resolve(path, repo_contents_url), "tree")
    raise InputError(f"No integration found for host {repo_contents_url}")


def _scm_resolve(url: str, base: str) -> str:
    """``defaultScmResolveUrl``: absolute as is; ``/x`` from the repository root; else joined."""
    if _ABSOLUTE.match(url):
        return url
    parts = urlsplit(base)
    if url.startswith("/"):
        match = _GITHUB_FILEPATH.match(parts.path)
        filepath = match["filepath"] if match else ""
        root = parts.path[: len(parts.path) - len(filepath)].rstrip("/")
        return urlunsplit((parts.scheme, parts.netloc, root + url, parts.query, ""))
    joined = urlsplit(urljoin(base, url))
    return urlunsplit((joined.scheme, joined.netloc, joined.path, parts.query, ""))


def _github_type(url: str, kind: str) -> str:
    """``replaceGithubUrlType``: ``/blob/`` (or ``/tree/``, ``/edit/``) becomes ``/<kind>/``."""
    return _GITHUB_TYPE.sub(rf"//\1/\2/\3/{kind}/", url, count=1)
