"""The action registry: builtins plus plugins from the ``scaffolder.actions`` entry points."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import entry_points

from scaffolder.actions.base import TemplateAction
from scaffolder.errors import ConflictError, NotFoundError

log = logging.getLogger(__name__)

#: The entry-point group third-party action packages register under.
ENTRY_POINT_GROUP = "scaffolder.actions"

_ACTION_ID = re.compile(r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.\-]+)+$")


class ActionRegistry:
    """Actions by id. `register` refuses duplicates; `get` raises `NotFoundError`."""

    def __init__(self, actions: Iterable[TemplateAction] = ()) -> None:
        self._actions: dict[str, TemplateAction] = {}
        for action in actions:
            self.register(action)

    def register(self, action: TemplateAction) -> None:
        """Add ``action``; a second action with the same id is a `ConflictError`."""
        if not _ACTION_ID.match(action.id):
            raise ValueError(f"Action id {action.id!r} is not of the form 'area:verb'")
        if action.id in self._actions:
            raise ConflictError(
                f"Template action with ID '{action.id}' has already been registered"
            )
        self._actions[action.id] = action

    def get(self, action_id: str) -> TemplateAction:
        """The action with ``action_id``."""
        try:
            return self._actions[action_id]
        except KeyError:
            raise NotFoundError(
                f"Template action with ID '{action_id}' is not registered. See "
                "https://backstage.io/docs/features/software-templates/builtin-actions/ "
                "on how to add a new action module."
            ) from None

    def __contains__(self, action_id: object) -> bool:
        return action_id in self._actions

    def __iter__(self) -> Iterator[TemplateAction]:
        return iter(sorted(self._actions.values(), key=lambda a: a.id))

    def __len__(self) -> int:
        return len(self._actions)


def load_plugin_actions(group: str = ENTRY_POINT_GROUP) -> list[TemplateAction]:
    """Load third-party actions from installed packages.

    An entry point may name a `TemplateAction`, a factory that returns one, or a factory that
    returns a list of them.
    """
    found: list[TemplateAction] = []
    for ep in entry_points(group=group):
        obj = ep.load()
        produced = obj if isinstance(obj, TemplateAction) else _call_factory(obj, ep.name)
        items = produced if isinstance(produced, list | tuple) else [produced]
        for item in items:
            if not isinstance(item, TemplateAction):
                raise TypeError(
                    f"Entry point {ep.name!r} in {group!r} gave {type(item).__name__}, "
                    "not a TemplateAction"
                )
            log.info("loaded plugin action %s from %s", item.id, ep.value)
            found.append(item)
    return found


def _call_factory(obj: object, name: str) -> object:
    if not callable(obj):
        raise TypeError(f"Entry point {name!r} is neither a TemplateAction nor a factory")
    factory: Callable[[], object] = obj
    return factory()
