"""Actions served to Backstage's Actions Registry: the model, the registry, one invocation.

A Backstage backend that lists us in ``backend.actions.pluginSources`` reads our actions from
``GET /api/<pluginId>/.backstage/actions/v1/actions`` and calls one with
``POST .../v1/actions/<id>/invoke`` (the raw input as the body) or ``.../v2/...`` (``{input,
secrets}``). What a listed action looks like, how its input, secrets and output are checked and
the errors a caller sees follow upstream's ``DefaultActionsRegistryService``
(``@backstage/backend-defaults``, ``dist/alpha/entrypoints/actionsRegistry``), with JSON Schema
(draft-07, as upstream's zod schemas are published) in place of zod.

These are not template steps: a remote caller has no workspace to lend us, so each action is a
whole capability (run one of our templates, create an ECS service) with its own
`ActionCall` -> output ``dict`` handler.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from scaffolder.errors import ConflictError, InputError, NotFoundError
from scaffolder.tasks.service import Caller
from scaffolder.validation import error_stacks, validate

log = logging.getLogger(__name__)

#: What upstream's ``zod-to-json-schema`` writes into every published schema.
JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"
#: ``scaffolder.actionsRegistry.pluginId`` when it is not set: actions are ``ecs:<name>``.
DEFAULT_PLUGIN_ID = "ecs"
#: Backstage's rule for plugin ids (its plugin token handler refuses any other subject).
_PLUGIN_ID = re.compile(r"^[a-z0-9_-]+$", re.IGNORECASE)


def plugin_id_from_config(config: Mapping[str, Any]) -> str:
    """``scaffolder.actionsRegistry.pluginId``: where Backstage finds our actions.

    Raises:
        InputError: not a Backstage plugin id.
    """
    section = (config.get("scaffolder") or {}).get("actionsRegistry") or {}
    if not isinstance(section, Mapping):
        raise InputError("scaffolder.actionsRegistry must be a mapping")
    value = section.get("pluginId", DEFAULT_PLUGIN_ID)
    if not isinstance(value, str) or not _PLUGIN_ID.match(value):
        raise InputError(
            "scaffolder.actionsRegistry.pluginId must be a Backstage plugin id "
            "(letters, digits, '-' and '_')"
        )
    return value


@dataclass(frozen=True, kw_only=True)
class ActionAttributes:
    """What an action does to the world, as the registry (and AI agents) are told.

    Attributes:
        read_only: it only reads; Backstage's scaffolder then runs it in dry runs too.
        destructive: it may change or delete what exists (not only create).
        idempotent: calling it twice with the same input has the effect of calling it once.
    """

    read_only: bool
    destructive: bool
    idempotent: bool

    def to_json(self) -> dict[str, bool]:
        """Upstream's key order: destructive, idempotent, readOnly."""
        return {
            "destructive": self.destructive,
            "idempotent": self.idempotent,
            "readOnly": self.read_only,
        }


@dataclass(frozen=True, kw_only=True)
class ActionExample:
    """An example invocation: ``{title, description?, input, output?}`` as upstream lists it."""

    title: str
    input: Mapping[str, Any]
    description: str | None = None
    output: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The example, keys left out when unset."""
        body: dict[str, Any] = {"title": self.title}
        if self.description is not None:
            body["description"] = self.description
        body["input"] = dict(self.input)
        if self.output is not None:
            body["output"] = dict(self.output)
        return body


@dataclass(kw_only=True)
class ActionCall:
    """One invocation as the handler sees it.

    ``audit`` is the audit record's ``meta`` for actions that create or dry-run tasks: the
    handler adds the template ref and task id it used (``templateRef``, ``taskId``).
    """

    input: dict[str, Any]
    secrets: dict[str, Any] | None
    caller: Caller
    audit: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RemoteAction:
    """An action of ours in the Actions Registry.

    Attributes:
        name: the part after ``<pluginId>:`` in its id.
        title: a short human title.
        description: what it does and how to fill its input; AI agents read it.
        input_schema: JSON schema (an object) the input is validated against.
        output_schema: JSON schema (an object) of what the handler returns.
        secrets_schema: JSON schema of ``secrets`` (v2 invocations), if it takes any.
        attributes: what it does to the world.
        handler: returns the output.
        examples: example invocations.
        audit_as: the audit ``actionType`` of an invocation (``create``, ``dry-run``), or None.
    """

    name: str
    title: str
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any]
    attributes: ActionAttributes
    handler: Callable[[ActionCall], dict[str, Any]]
    secrets_schema: Mapping[str, Any] | None = None
    examples: tuple[ActionExample, ...] = ()
    audit_as: str | None = None


class RemoteActionRegistry:
    """Our actions under one plugin id: their listing and their invocation."""

    def __init__(self, plugin_id: str, actions: Iterable[RemoteAction] = ()) -> None:
        self.plugin_id = plugin_id
        self._actions: dict[str, RemoteAction] = {}
        for action in actions:
            self.register(action)

    def register(self, action: RemoteAction) -> None:
        """Add ``action`` as ``<pluginId>:<name>``; a duplicate is a `ConflictError`."""
        action_id = self.action_id(action)
        if action_id in self._actions:
            raise ConflictError(f'Action with id "{action_id}" is already registered')
        self._actions[action_id] = action

    def action_id(self, action: RemoteAction) -> str:
        """``<pluginId>:<name>``."""
        return f"{self.plugin_id}:{action.name}"

    def __iter__(self) -> Iterator[RemoteAction]:
        return iter(self._actions.values())

    def __len__(self) -> int:
        return len(self._actions)

    def get(self, action_id: str) -> RemoteAction:
        """The action, or upstream's 404 ``Action "<id>" not found``."""
        action = self._actions.get(action_id)
        if action is None:
            raise NotFoundError(f'Action "{action_id}" not found')
        return action

    def list_json(self) -> dict[str, Any]:
        """The body of ``GET .../v1/actions``: each action in upstream's shape and key order."""
        items = []
        for action_id, action in self._actions.items():
            schema: dict[str, Any] = {
                "input": _published(action.input_schema),
                "output": _published(action.output_schema),
            }
            if action.secrets_schema is not None:
                schema["secrets"] = _published(action.secrets_schema)
            items.append(
                {
                    "id": action_id,
                    "name": action.name,
                    "title": action.title,
                    "description": action.description,
                    "pluginId": self.plugin_id,
                    "attributes": action.attributes.to_json(),
                    "examples": [example.to_json() for example in action.examples],
                    "schema": schema,
                }
            )
        return {"actions": items}

    def prepare(
        self, action_id: str, raw_input: Any, raw_secrets: Any, caller: Caller
    ) -> tuple[RemoteAction, ActionCall]:
        """Check an invocation the way upstream does, in its order.

        Raises:
            NotFoundError: no such action.
            InputError: input or secrets that fail the action's schemas, or secrets sent to an
                action that takes none (upstream's messages).
        """
        action = self.get(action_id)
        # No input (None) fails the object schema, as upstream's zod parse of undefined does.
        given = raw_input
        _check(given, action.input_schema, f'Invalid input to action "{action_id}"')
        if not isinstance(given, dict):  # every input schema is an object schema
            raise InputError(f'Invalid input to action "{action_id}"; caused by not an object')
        if action.secrets_schema is None:
            if raw_secrets is not None:
                raise InputError(f'Action "{action_id}" does not accept secrets')
        elif raw_secrets is None:
            # Upstream refuses any call without secrets to an action that has a secrets
            # schema; we only refuse it when the schema needs some, so that Backstage's
            # scaffolder (which always invokes through v1, without secrets) can call it too.
            if validate({}, action.secrets_schema):
                raise InputError(f'Action "{action_id}" requires secrets but none were provided')
        else:
            _check(raw_secrets, action.secrets_schema, f'Invalid secrets for action "{action_id}"')
        secrets = raw_secrets if isinstance(raw_secrets, dict) else None
        return action, ActionCall(input=given, secrets=secrets, caller=caller)

    def run(self, action_id: str, action: RemoteAction, call: ActionCall) -> dict[str, Any]:
        """Run a prepared invocation; its output, checked against the output schema."""
        log.info("action %s invoked by %s", action_id, call.caller.principal)
        output = action.handler(call)
        _check(output, action.output_schema, f'Invalid output from action "{action_id}"')
        return output


class SchemaViolation(Exception):
    """The JSON-schema failures behind an `InputError` (its ``cause`` in the error body)."""

    name = "ValidationError"


def _check(value: Any, schema: Mapping[str, Any], message: str) -> None:
    errors = validate(value, schema)
    if errors:
        stacks = error_stacks(errors)
        raise InputError(f"{message}; caused by {stacks}", cause=SchemaViolation(stacks))


def _published(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A schema as listed: what upstream's ``zod-to-json-schema`` adds, ``$schema``, last."""
    return {**schema, "$schema": JSON_SCHEMA_DRAFT}
