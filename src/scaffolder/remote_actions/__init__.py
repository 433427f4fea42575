"""Our actions in Backstage's distributed Actions Registry (``ecs:*`` by default)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaffolder.remote_actions.ecs import create_ecs_actions
from scaffolder.remote_actions.registry import (
    ActionAttributes,
    ActionCall,
    ActionExample,
    RemoteAction,
    RemoteActionRegistry,
    plugin_id_from_config,
)

if TYPE_CHECKING:
    from scaffolder.services import Services


def build_remote_actions(services: Services) -> RemoteActionRegistry:
    """The registry the app serves: our actions under the configured plugin id."""
    return RemoteActionRegistry(
        plugin_id_from_config(services.settings.raw),
        create_ecs_actions(
            scaffolder=services.scaffolder, broker=services.broker, catalog=services.catalog
        ),
    )


__all__ = [
    "ActionAttributes",
    "ActionCall",
    "ActionExample",
    "RemoteAction",
    "RemoteActionRegistry",
    "build_remote_actions",
    "create_ecs_actions",
    "plugin_id_from_config",
]
