"""The boundary to the outside: git, cookiecutter (and later GitHub, AWS, remote catalogs).

Third-party errors are translated into `scaffolder.errors` here; nothing above this package
sees a ``subprocess.CalledProcessError`` or a ``jinja2.TemplateError``.
"""

from __future__ import annotations

from typing import Protocol


class Terminable(Protocol):
    """A running child that a cancel can stop."""

    def terminate(self) -> None: ...


class Cancellation(Protocol):
    """What integrations need of a task's cancel signal (`CancelSignal` is one)."""

    @property
    def cancelled(self) -> bool: ...

    def attach(self, child: Terminable) -> None: ...

    def detach(self, child: Terminable) -> None: ...
