"""Processing errors as Backstage records them: a name, a message and an optional cause.

An entity's processing errors are stored and shown in its ``status.items`` (and a dry run or
``POST /validate-entity`` answers with them), so they keep upstream's names and wording:
``InputError: Policy check failed for component:default/x; caused by Error: ...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(kw_only=True, eq=False)
class EntityError(Exception):
    """One processing error (``@backstage/errors`` ``CustomErrorBase`` or a plain ``Error``).

    Not frozen: Python assigns ``__traceback__`` on exceptions it passes around.
    """

    name: str
    message: str
    cause: EntityError | None = None

    @classmethod
    def wrap(cls, name: str, message: str, cause: EntityError) -> EntityError:
        """An error whose message ends with ``; caused by <cause>`` (upstream's form)."""
        return cls(name=name, message=f"{message}; caused by {cause}", cause=cause)

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        """``serializeError``: name, message and the serialized cause."""
        body: dict[str, Any] = {"name": self.name, "message": self.message}
        if self.cause is not None:
            body["cause"] = self.cause.to_json()
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> EntityError:
        """The inverse of `to_json`."""
        cause = body.get("cause")
        return cls(
            name=str(body.get("name", "Error")),
            message=str(body.get("message", "")),
            cause=cls.from_json(cause) if isinstance(cause, dict) else None,
        )


def input_error(message: str, cause: EntityError | None = None) -> EntityError:
    """An ``InputError``, wrapping ``cause`` when given."""
    if cause is None:
        return EntityError(name="InputError", message=message)
    return EntityError.wrap("InputError", message, cause)


def plain_error(message: str) -> EntityError:
    """A plain JavaScript ``Error``."""
    return EntityError(name="Error", message=message)
