"""Runs ``driver.js`` scenarios (Backstage's npm clients in Node) and parses their JSON output."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIXTURE_TEMPLATES = REPO / "tests" / "fixtures" / "templates"
DRIVER = HERE / "driver.js"


@dataclass
class DriverResult:
    """What one ``node driver.js <scenario>`` run printed."""

    scenario: str
    params: dict[str, Any]
    ok: bool
    result: Any = None
    error: dict[str, Any] | None = None
    timeout: bool = False
    partial: Any = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""

    def describe(self) -> str:
        """A compact, human-readable account of the run, for assertion messages."""
        lines = [f"scenario {self.scenario!r} params={_short(self.params)}"]
        for r in self.requests:
            lines.append(
                f"  {r.get('method')} {r.get('url')} -> {r.get('status', r.get('networkError'))}"
                f" ({r.get('contentType')}, {r.get('ms')} ms)"
            )
        if self.error is not None:
            lines.append(f"  error: {_short(self.error, 1500)}")
        if self.timeout:
            lines.append(f"  TIMEOUT; partial: {_short(self.partial, 3000)}")
        if self.stderr.strip():
            lines.append(f"  stderr: {self.stderr.strip()[-2000:]}")
        return "\n".join(lines)

    def value(self) -> Any:
        """The scenario's result; fails the test (with the request log) if the client threw."""
        assert self.ok, f"client call failed:\n{self.describe()}"
        return self.result


def _short(value: Any, limit: int = 600) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


class NodeDriver:
    """Runs ``driver.js`` scenarios against one base URL."""

    def __init__(self, node: str, base_url: str, token: str | None) -> None:
        self.node = node
        self.base_url = base_url
        self.token = token

    def run(
        self, scenario: str, params: dict[str, Any] | None = None, *, timeout_s: float = 60.0
    ) -> DriverResult:
        params = params or {}
        env = {
            **os.environ,
            "SCAFFOLDER_CONFORMANCE_BASE": self.base_url,
            "SCAFFOLDER_CONFORMANCE_TIMEOUT_MS": str(int(timeout_s * 1000)),
            "NODE_NO_WARNINGS": "1",
        }
        env.pop("SCAFFOLDER_CONFORMANCE_TOKEN", None)
        if self.token:
            env["SCAFFOLDER_CONFORMANCE_TOKEN"] = self.token
        try:
            proc = subprocess.run(
                [self.node, str(DRIVER), scenario],
                input=json.dumps(params),
                capture_output=True,
                text=True,
                cwd=HERE,
                env=env,
                timeout=timeout_s + 15,  # the driver has its own deadline; this is a backstop
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"driver {scenario!r} hung past {timeout_s + 15}s: {exc.stderr!r}")
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        try:
            doc = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            pytest.fail(
                f"driver {scenario!r} printed no JSON (exit {proc.returncode}).\n"
                f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}"
            )
        return DriverResult(
            scenario=scenario,
            params=params,
            ok=bool(doc.get("ok")),
            result=doc.get("result"),
            error=doc.get("error"),
            timeout=bool(doc.get("timeout")),
            partial=doc.get("partial"),
            requests=doc.get("requests") or [],
            stderr=proc.stderr,
        )
