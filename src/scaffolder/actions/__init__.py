"""The action SDK, the registry and the builtin actions."""

from __future__ import annotations

from scaffolder.actions.base import ActionContext, ActionExample, CancelSignal, TemplateAction

__all__ = ["ActionContext", "ActionExample", "CancelSignal", "TemplateAction"]
