"""Fixtures for the client conformance suite.

The suite drives a running server with Backstage's real npm clients (see ``driver.js``).

* ``SCAFFOLDER_CONFORMANCE_BASE=http://127.0.0.1:7007`` runs it against an already running
  backend (for example the upstream reference Backstage); nothing is started or stopped.
* Without it, our own server is started once per session:
  ``<venv>/bin/scaffolder serve --config <tmp>/app-config.yaml --host 127.0.0.1 --port <free>``
  with the fixture templates of ``tests/fixtures/templates`` in its catalog, and terminated at
  the end of the session.

``SCAFFOLDER_CONFORMANCE_TOKEN`` (optional) is sent as ``Authorization: Bearer <token>``.
Node modules are installed with ``npm ci`` on first use; the tests are skipped only when
``node`` is not on PATH.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.postgres.cluster import free_port

from .harness import FIXTURE_TEMPLATES, HERE, REPO, NodeDriver

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
READY_TIMEOUT_S = 30.0
UPSTREAM_FIXTURE_HOST = "127.0.0.1:7010"
NPM_CI_TIMEOUT_S = 600


def _scaffolder_cli() -> Path:
    candidates = [
        Path(sys.executable).parent / "scaffolder",
        REPO / ".venv" / "bin" / "scaffolder",
    ]
    found = shutil.which("scaffolder")
    if found:
        candidates.append(Path(found))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    pytest.fail(
        "the `scaffolder` CLI is not installed (looked at "
        + ", ".join(str(c) for c in candidates)
        + "); run `pip install -e .` or set SCAFFOLDER_CONFORMANCE_BASE to a running server"
    )


def _write_config(tmp: Path, port: int, fixture_host: str) -> Path:
    base = f"http://127.0.0.1:{port}"
    config = {
        "backend": {
            "baseUrl": base,
            "listen": {"host": "127.0.0.1", "port": port},
            "database": {"connection": f"sqlite:///{tmp / 'db.sqlite'}"},
            "workingDirectory": str(tmp / "work"),
            "auth": {"dangerouslyDisableDefaultAuthPolicy": True},
            # The catalog reads registered url locations from the fixture server only.
            "reading": {"allow": [{"host": fixture_host}]},
        },
        "catalog": {
            "locations": [
                {"type": "file", "target": str(FIXTURE_TEMPLATES / "*" / "template.yaml")},
            ],
        },
    }
    (tmp / "work").mkdir(exist_ok=True)
    path = tmp / "app-config.yaml"
    # JSON is valid YAML; keeps this module free of a yaml dependency.
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _readiness_status(base: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{base}/.backstage/health/v1/readiness", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    # The server runs in its own session (start_new_session=True): signal that group only, so
    # workers it forked (gunicorn) go too.
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def catalog_fixture_host() -> Iterator[str]:
    """``host:port`` serving ``fixtures/`` (a ``catalog-info.yaml`` to register).

    Against upstream it is the reference backend's own static server (127.0.0.1:7010, the
    host its ``backend.reading.allow`` lists, serving the same file); against ours, a
    loopback ``http.server`` started here.
    """
    if os.environ.get("SCAFFOLDER_CONFORMANCE_BASE", "").strip():
        yield UPSTREAM_FIXTURE_HOST
        return
    handler = functools.partial(_QuietHandler, directory=str(HERE / "fixtures"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def conformance_base(
    tmp_path_factory: pytest.TempPathFactory, catalog_fixture_host: str
) -> Iterator[str]:
    """Base URL (``http://host:port``, no ``/api``) of the server under test."""
    env_base = os.environ.get("SCAFFOLDER_CONFORMANCE_BASE", "").strip().rstrip("/")
    if env_base:
        host = urlsplit(env_base).hostname
        assert host in LOOPBACK_HOSTS, f"SCAFFOLDER_CONFORMANCE_BASE must be loopback: {env_base}"
        yield env_base
        return

    cli = _scaffolder_cli()
    tmp = tmp_path_factory.mktemp("conformance-server")
    port = free_port()
    config = _write_config(tmp, port, catalog_fixture_host)
    base = f"http://127.0.0.1:{port}"
    log_path = tmp / "server.log"
    cmd = [str(cli), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        status: int | None = None
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"`{' '.join(cmd)}` exited with {proc.returncode} before it was ready:\n"
                    + log_path.read_text(errors="replace")[-4000:]
                )
            status = _readiness_status(base)
            if status == 200:
                break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{base}/.backstage/health/v1/readiness not 200 within {READY_TIMEOUT_S}s "
                    f"(last: {status}); server log:\n"
                    + log_path.read_text(errors="replace")[-4000:]
                )
            time.sleep(0.2)
        yield base
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """``tests/conformance/node_modules``, installed from the lock file if missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the conformance suite needs Node 20+")
    modules = HERE / "node_modules"
    if not (modules / "@backstage" / "plugin-scaffolder-common").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node_modules is missing and npm is not on PATH")
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT_S,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"npm ci failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return modules


@pytest.fixture(scope="session")
def driver(node_modules: Path, conformance_base: str) -> NodeDriver:
    node = shutil.which("node")
    assert node is not None
    return NodeDriver(node, conformance_base, os.environ.get("SCAFFOLDER_CONFORMANCE_TOKEN"))


@pytest.fixture(scope="session")
def server_is_ours(conformance_base: str) -> bool:
    """Whether the server under test is ours (its OpenAPI document says so), not upstream.

    A few behaviours differ on purpose (README, "Compatibility notes"): we fill in the
    parameter defaults the caller left out, upstream does not.
    """
    url = f"{conformance_base}/api/scaffolder/openapi.json"
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only, checked above
        info = json.loads(response.read()).get("info", {})
    return bool(str(info.get("x-implementation", "")).startswith("scaffolder"))
