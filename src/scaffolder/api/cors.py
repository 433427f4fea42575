"""CORS as Backstage's root router does it: the npm ``cors`` package configured by ``backend.cors``.

It wraps the whole WSGI app, so a browser's preflight ``OPTIONS`` is answered (204) before any
route or auth gate sees it, on every path, as upstream. With no ``backend.cors`` there is no
middleware at all. Origins are Backstage's globs (minimatch, case-insensitive, no globstar):
``https://*.example.com``, ``http://localhost:{3000,3001}``. We keep this ~100 lines of ours
rather than flask-cors, whose origins are regexes and whose preflight answers differ.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scaffolder.errors import InputError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: The npm ``cors`` package's default ``methods``.
DEFAULT_METHODS = ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE")


@dataclass(frozen=True, kw_only=True)
class CorsPolicy:
    """``backend.cors``, parsed. ``origins`` ``None`` allows any origin (``*``), as npm cors."""

    origins: tuple[re.Pattern[str], ...] | None = None
    methods: tuple[str, ...] = DEFAULT_METHODS
    allowed_headers: tuple[str, ...] | None = None
    exposed_headers: tuple[str, ...] = ()
    credentials: bool = False
    max_age: int | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CorsPolicy | None:
        """The policy in ``backend.cors``, or ``None`` when CORS is off (no such key)."""
        cors = (config.get("backend") or {}).get("cors")
        if cors is None:
            return None
        if not isinstance(cors, Mapping):
            raise InputError("backend.cors must be a mapping")
        origins = _strings(cors, "origin")
        max_age = cors.get("maxAge")
        if max_age is not None and (not isinstance(max_age, int) or isinstance(max_age, bool)):
            raise InputError("backend.cors.maxAge must be a number of seconds")
        methods = _strings(cors, "methods")
        return cls(
            origins=tuple(glob_pattern(o) for o in origins) if origins is not None else None,
            methods=methods if methods is not None else DEFAULT_METHODS,
            allowed_headers=_strings(cors, "allowedHeaders"),
            exposed_headers=_strings(cors, "exposedHeaders") or (),
            credentials=bool(cors.get("credentials", False)),
            max_age=max_age,
        )

    def allows(self, origin: str) -> bool:
        """Whether ``origin`` matches one of the configured globs."""
        return self.origins is None or any(p.fullmatch(origin) for p in self.origins)

    def headers(self, environ: WSGIEnvironment, *, preflight: bool) -> list[tuple[str, str]]:
        """The CORS headers of the answer to this request."""
        origin = str(environ.get("HTTP_ORIGIN", ""))
        headers: list[tuple[str, str]] = []
        if self.origins is None:
            headers.append(("Access-Control-Allow-Origin", "*"))
        else:
            if self.allows(origin):
                headers.append(("Access-Control-Allow-Origin", origin))
            headers.append(("Vary", "Origin"))
        if self.credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        if preflight:
            headers.append(("Access-Control-Allow-Methods", ",".join(self.methods)))
            if self.allowed_headers is not None:
                if self.allowed_headers:
                    headers.append(("Access-Control-Allow-Headers", ",".join(self.allowed_headers)))
            else:
                requested = str(environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", ""))
                if requested:
                    headers.append(("Access-Control-Allow-Headers", requested))
                headers.append(("Vary", "Access-Control-Request-Headers"))
            if self.max_age is not None:
                headers.append(("Access-Control-Max-Age", str(self.max_age)))
        if self.exposed_headers:
            headers.append(("Access-Control-Expose-Headers", ",".join(self.exposed_headers)))
        return headers


class CorsMiddleware:
    """Answers preflights and adds CORS headers to every other response."""

    def __init__(self, app: WSGIApplication, policy: CorsPolicy) -> None:
        self._app = app
        self._policy = policy

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "OPTIONS":
            headers = [*self._policy.headers(environ, preflight=True), ("Content-Length", "0")]
            start_response("204 No Content", headers)
            return [b""]
        extra = self._policy.headers(environ, preflight=False)

        def with_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, *extra], exc_info)

        return self._app(environ, with_cors)


def glob_pattern(glob: str) -> re.Pattern[str]:
    """A minimatch glob (``nocase``, ``noglobstar``) as a regular expression.

    ``*`` and ``?`` stop at ``/``; ``{a,b}`` alternates; ``[...]`` is a character class.
    """
    out: list[str] = []
    i = 0
    depth = 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            while i + 1 < len(glob) and glob[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in glob[i + 2 :]:
            end = glob.index("]", i + 2)
            body = glob[i + 1 : end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            out.append(("[^" if negate else "[") + body.replace("\\", "\\\\") + "]")
            i = end
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "," and depth:
            out.append("|")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        raise InputError(f"backend.cors.origin has an unclosed brace: {glob}")
    return re.compile("".join(out), re.IGNORECASE)


def _strings(section: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    """A string or a list of strings (Backstage's ``readStringArray``), or ``None``."""
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InputError(f"backend.cors.{key} must be a string or a list of strings")
