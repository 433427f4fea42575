"""The scaffolder's use cases: parameter schemas, creating and retrying tasks, dry runs."""

from __future__ import annotations

import base64
import copy
import os
import shutil
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaffolder.actions.base import CancelSignal
from scaffolder.catalog.model import TEMPLATE_API_VERSION, parse_entity_ref
from scaffolder.catalog.store import CatalogStore
from scaffolder.catalog.validation import validate_entity
from scaffolder.errors import InputError, NotFoundError, ValidationErrors
from scaffolder.tasks.broker import TaskBroker
from scaffolder.tasks.runner import WorkflowRunner
from scaffolder.tasks.templating import Templater
from scaffolder.tasks.workspace import create_workspace, remove_workspace, resolve_within
from scaffolder.validation import validate

if TYPE_CHECKING:
    from scaffolder.access import TemplateAccess

DRY_RUN_TEMPLATE_REF = "template:default/dry-run"


@dataclass(frozen=True, kw_only=True)
class Caller:
    """Who is calling: a user (``user_ref``), a service, or nobody (auth disabled).

    ``ownership_refs`` are a user's ``ent`` claim (itself and its groups). ``local`` marks a
    command run on this machine by its operator (``scaffolder run``), to whom template
    allow-lists do not apply.
    """

    user_ref: str | None = None
    token: str | None = None
    subject: str | None = None
    ownership_refs: tuple[str, ...] = ()
    local: bool = False

    @property
    def principal(self) -> str:
        """Who this is, for logs and audit records: a user ref, a service subject or none."""
        return self.user_ref or self.subject or "none"


class ScaffolderService:
    """What the scaffolder API does, free of HTTP."""

    def __init__(
        self,
        *,
        broker: TaskBroker,
        catalog: CatalogStore,
        templater: Templater,
        runner: WorkflowRunner,
        working_directory: Path,
        template_access: TemplateAccess | None = None,
    ) -> None:
        self._broker = broker
        self._catalog = catalog
        self._templater = templater
        self._runner = runner
        self._working_directory = working_directory
        self._access = template_access

    # --- templates -----------------------------------------------------------------------

    def find_template(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        """A Template entity from the catalog, checked as Backstage checks it."""
        if kind.lower() != "template":
            raise InputError("Invalid kind, only 'Template' kind is supported")
        ref = f"template:{namespace}/{name}"
        entity = self._catalog.get_entity(ref)
        if entity is None:
            raise NotFoundError(f"Template {ref} not found")
        if entity.get("apiVersion") != TEMPLATE_API_VERSION:
            raise InputError(
                f"Unsupported apiVersion field in schema entity, {entity.get('apiVersion')}"
            )
        return entity

    def parameter_schema(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        """The body of ``GET /v2/templates/{ns}/{kind}/{name}/parameter-schema``."""
        entity = self.find_template(namespace, kind, name)
        metadata = entity.get("metadata") or {}
        spec = entity.get("spec") or {}
        body: dict[str, Any] = {"title": metadata.get("title", metadata.get("name"))}
        if spec.get("presentation") is not None:
            body["presentation"] = spec["presentation"]
        if metadata.get("description") is not None:
            body["description"] = metadata["description"]
        if metadata.get("ui:options") is not None:
            body["ui:options"] = metadata["ui:options"]
        steps = []
        for step in parameter_steps(spec):
            schema = {k: v for k, v in step.items() if k != "when"}
            item: dict[str, Any] = {
                "title": step.get("title", "Please enter the following information")
            }
            if step.get("description") is not None:
                item["description"] = step["description"]
            if isinstance(step.get("when"), str | bool):
                item["when"] = step["when"]
            item["schema"] = schema
            steps.append(item)
        body["steps"] = steps
        decorators = spec.get("formDecorators", spec.get("EXPERIMENTAL_formDecorators"))
        if decorators is not None:
            body["formDecorators"] = decorators
        return body

    # --- tasks ---------------------------------------------------------------------------

    def create_task(
        self,
        *,
        template_ref: str,
        values: dict[str, Any],
        secrets: dict[str, str] | None,
        caller: Caller,
    ) -> str:
        """Validate and store a task; returns its id. Nothing is written on a bad request."""
        ref = parse_entity_ref(template_ref, default_kind="template")
        template = self.find_template(ref.namespace, ref.kind, ref.name)
        if self._access is not None:
            self._access.check_template(str(ref), caller)
        spec_in = template.get("spec") or {}
        parameters = self.validate_values(spec_in, values)
        validate_secrets(spec_in, secrets or {})
        user_entity = self._catalog.get_entity(caller.user_ref) if caller.user_ref else None
        spec = build_task_spec(
            template,
            parameters=parameters,
            user_ref=caller.user_ref,
            user_entity=user_entity,
            base_url=template_base_url(template),
        )
        stored_secrets = dict(secrets or {})
        if caller.token:
            stored_secrets["backstageToken"] = caller.token
        return self._broker.dispatch(
            spec=spec, secrets=stored_secrets or None, created_by=caller.user_ref
        )

    def retry_task(self, task_id: str, *, secrets: dict[str, str] | None, caller: Caller) -> str:
        """Reopen a finished task (409 while it is open or running)."""
        task = self._broker.store.get_task(task_id)
        entity_ref = (task.spec.get("templateInfo") or {}).get("entityRef")
        if entity_ref and entity_ref != DRY_RUN_TEMPLATE_REF:
            ref = parse_entity_ref(entity_ref, default_kind="template")
            template = self.find_template(ref.namespace, ref.kind, ref.name)
            if self._access is not None:
                self._access.check_template(str(ref), caller)
            validate_secrets(template.get("spec") or {}, secrets or {})
        stored = dict(secrets or {})
        if caller.token:
            stored["backstageToken"] = caller.token
        self._broker.retry(task_id, secrets=stored or None)
        return task_id

    def validate_values(self, spec: Mapping[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        """Apply defaults, drop hidden-step values, validate each visible step in order.

        Raises:
            ValidationErrors: the first failing step's errors, in Backstage's shape.
        """
        steps = parameter_steps(spec)
        result = copy.deepcopy(values)
        visible_keys: set[str] = set()
        hidden_keys: set[str] = set()
        visible_values: dict[str, Any] = {}
        checks: list[Mapping[str, Any]] = []
        for step in steps:
            keys = set((step.get("properties") or {}).keys())
            when = step.get("when")
            shown = when is None or self._templater.evaluate_condition(when, visible_values)
            if shown:
                apply_defaults(step, result)
                visible_keys |= keys
                visible_values.update({k: result[k] for k in keys if k in result})
                checks.append(step)
            else:
                hidden_keys |= keys
        for key in hidden_keys - visible_keys:
            result.pop(key, None)
        for step in checks:
            schema = {k: v for k, v in step.items() if k != "when"}
            errors = validate(result, schema)
            if errors:
                raise ValidationErrors(errors)
        return result

    # --- dry run -------------------------------------------------------------------------

    def dry_run(
        self,
        *,
        template: dict[str, Any],
        values: dict[str, Any],
        secrets: dict[str, str] | None,
        directory_contents: list[dict[str, Any]],
        caller: Caller,
    ) -> dict[str, Any]:
        """Run a template against uploaded files in a throwaway workspace."""
        try:
            validate_entity(template)
        except InputError:
            raise InputError("Input template is not a template") from None
        if str(template.get("kind", "")).lower() != "template":
            raise InputError("Input template is not a template")
        if self._access is not None:
            metadata = template.get("metadata") or {}
            self._access.check_dry_run(
                f"template:{metadata.get('namespace', 'default')}/{metadata.get('name')}", caller
            )
        spec_in = template.get("spec") or {}
        parameters = self.validate_values(spec_in, values)
        validate_secrets(spec_in, secrets or {})

        content_dir = self._working_directory / f"dry-run-content-{uuid.uuid4()}"
        workspace_id = f"dry-run-{uuid.uuid4()}"
        content_dir.mkdir(parents=True)
        try:
            for item in directory_contents:
                target = resolve_within(content_dir, str(item["path"]), input_name="path")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(str(item.get("base64Content", ""))))
                if item.get("executable"):
                    target.chmod(0o755)
            spec = build_task_spec(
                template,
                parameters=parameters,
                user_ref=caller.user_ref,
                user_entity=None,
                base_url=f"file://{content_dir}/template.yaml",
                entity_ref=DRY_RUN_TEMPLATE_REF,
            )
            run_secrets = dict(secrets or {})
            if caller.token:
                run_secrets["backstageToken"] = caller.token
            workspace = create_workspace(self._working_directory, workspace_id)
            run = _DryRun(
                task_id=workspace_id,
                spec=spec,
                secrets=run_secrets,
                workspace_path=workspace,
            )
            # Backstage appends a hidden step that serializes the workspace.
            run.emit_log({"message": f"Starting up task with {len(spec['steps']) + 1} steps"})
            result = self._runner.execute(run)
            if result.error is not None:
                raise result.error
            contents = serialize_directory(workspace)
        finally:
            shutil.rmtree(content_dir, ignore_errors=True)
            remove_workspace(self._working_directory / workspace_id)
        return {
            # Our "Starting up" line (counting the hidden step) replaces the runner's own.
            "log": [run.log[0], *run.log[2:]],
            "directoryContents": contents,
            "output": result.output or {},
            "steps": spec["steps"],
        }


@dataclass(kw_only=True)
class _DryRun:
    """A `RunContext` that keeps its log in memory."""

    task_id: str
    spec: Mapping[str, Any]
    secrets: Mapping[str, str]
    workspace_path: Path
    signal: CancelSignal = field(default_factory=CancelSignal)
    is_dry_run: bool = True
    state: dict[str, Any] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def emit_log(self, body: dict[str, Any]) -> None:
        ordered = {k: v for k, v in body.items() if k != "message"}
        ordered["message"] = body.get("message")
        with self._lock:
            self.log.append({"body": ordered})

    def save_state(self) -> None:
        """A dry run keeps no state."""

    def load_workspace(self) -> bytes | None:
        """A dry run has no earlier run."""
        return None

    def save_workspace(self, archive: bytes | None) -> None:
        """A dry run keeps no workspace."""


def parameter_steps(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``spec.parameters`` as a list (one object, a list, or nothing)."""
    params = spec.get("parameters")
    if params is None:
        return []
    items = params if isinstance(params, list) else [params]
    return [p for p in items if isinstance(p, Mapping)]


def apply_defaults(schema: Mapping[str, Any], values: dict[str, Any]) -> None:
    """Fill in JSON-schema ``default``s for properties the caller left out (nested too)."""
    for key, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, Mapping):
            continue
        if key not in values and "default" in prop:
            values[key] = copy.deepcopy(prop["default"])
        if isinstance(values.get(key), dict) and prop.get("type") == "object":
            apply_defaults(prop, values[key])


def validate_secrets(spec: Mapping[str, Any], secrets: Mapping[str, Any]) -> None:
    """Check secrets against ``spec.secrets.schema`` (Backstage's message rewrite)."""
    schema = (spec.get("secrets") or {}).get("schema")
    if not isinstance(schema, Mapping):
        return
    errors = validate(dict(secrets), schema)
    if not errors:
        return
    rewritten = []
    for error in errors:
        prop = "secrets" + str(error["property"])[len("instance") :]
        if error["name"] == "required":
            message = f"secrets.{error['argument']} is required"
        else:
            message = f"{prop} {error['message']}"
        rewritten.append(
            {**error, "property": prop, "message": message, "instance": {}, "stack": message}
        )
    raise ValidationErrors(rewritten)


def template_base_url(entity: Mapping[str, Any]) -> str | None:
    """``templateInfo.baseUrl`` from the source-location or managed-by-location annotation."""
    annotations = (entity.get("metadata") or {}).get("annotations") or {}
    location = annotations.get("backstage.io/source-location") or annotations.get(
        "backstage.io/managed-by-location"
    )
    if not isinstance(location, str) or ":" not in location:
        return None
    kind, _, target = location.partition(":")
    if kind == "url":
        return target
    if kind == "file":
        return f"file://{os.path.abspath(target)}"
    return None


def build_task_spec(
    template: Mapping[str, Any],
    *,
    parameters: dict[str, Any],
    user_ref: str | None,
    user_entity: Mapping[str, Any] | None,
    base_url: str | None,
    entity_ref: str | None = None,
) -> dict[str, Any]:
    """The task spec exactly as Backstage stores it (keys in Backstage's order)."""
    spec = template.get("spec") or {}
    metadata = template.get("metadata") or {}
    steps = []
    for index, step in enumerate(spec.get("steps") or [], start=1):
        item = dict(step)
        item.setdefault("id", f"step-{index}")
        item.setdefault("name", item.get("action"))
        steps.append(item)
    out: dict[str, Any] = {"apiVersion": template.get("apiVersion"), "steps": steps}
    if spec.get("EXPERIMENTAL_recovery") is not None:
        out["EXPERIMENTAL_recovery"] = spec["EXPERIMENTAL_recovery"]
    out["output"] = spec.get("output") or {}
    out["parameters"] = parameters
    user: dict[str, Any] = {}
    if user_ref:
        if user_entity is not None:
            user["entity"] = user_entity
        user["ref"] = user_ref
    out["user"] = user
    ref = entity_ref or str(
        parse_entity_ref(
            f"{template.get('kind')}:{metadata.get('namespace', 'default')}/{metadata.get('name')}"
        )
    )
    info: dict[str, Any] = {"entityRef": ref}
    if base_url is not None:
        info["baseUrl"] = base_url
    info["entity"] = {"metadata": metadata}
    out["templateInfo"] = info
    return out


def serialize_directory(root: Path) -> list[dict[str, Any]]:
    """Every file under ``root`` (not ``.git``) as ``{path, executable, base64Content}``."""
    items = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if full.is_symlink():
                data = os.readlink(full).encode()
                executable = False
            else:
                data = full.read_bytes()
                executable = bool(full.stat().st_mode & 0o111)
            items.append(
                {
                    "path": full.relative_to(root).as_posix(),
                    "executable": executable,
                    "base64Content": base64.b64encode(data).decode(),
                }
            )
    return items
