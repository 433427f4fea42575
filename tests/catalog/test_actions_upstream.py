"""``catalog.backend: backstage``: the catalog actions against the real Backstage catalog.

Marked ``upstream``. The catalog is a private copy of the reference backend
(``/work/shared/backstage/reference``, or ``SCAFFOLDER_TEST_REFERENCE``) started on a free
loopback port the way ``bench/bench_tasks.py`` starts it (``node src/index.js`` with
``APP_CONFIG_*`` overrides, its ``backend.reading.allow`` pointed at a file server of ours);
its ``node_modules`` come from the reference directory or the bench's cache
(``make upstream`` fills it: ``npm ci``, about a minute, once). Without node, the reference
or its ``node_modules`` the tests are skipped, so ``make test`` never installs them.

``SCAFFOLDER_TEST_UPSTREAM=http://127.0.0.1:7007`` uses a running reference instead (it must
read ``http://127.0.0.1:7010/catalog-info.yaml``, as the reference's ``start.sh`` sets up);
the tests that need files of their own are then skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from scaffolder.actions.base import ActionContext, ActionLogger, CancelSignal, TemplateAction
from scaffolder.actions.builtin import create_catalog_fetch_action, create_catalog_register_action
from scaffolder.catalog.catalog_client import EmbeddedCatalogClient
from scaffolder.errors import AuthenticationError, InputError
from scaffolder.integrations.backstage_catalog import BackstageCatalogClient
from scaffolder.integrations.scm import ScmIntegrations
from scaffolder.services import Services
from tests.catalog.conftest import group
from tests.postgres.cluster import free_port

pytestmark = pytest.mark.upstream

REFERENCE = Path(os.environ.get("SCAFFOLDER_TEST_REFERENCE", "/work/shared/backstage/reference"))
REUSED = os.environ.get("SCAFFOLDER_TEST_UPSTREAM")
#: The reference's static file server (start.sh), in its backend.reading.allow.
REUSED_FILES = "http://127.0.0.1:7010"
READY_TIMEOUT = 90.0
INGEST_TIMEOUT = 60.0


@dataclass(frozen=True)
class Upstream:
    """A reachable reference backend and where its catalog reads files from."""

    base: str
    files_url: str
    files_dir: Path | None  # None: not ours to write (a reused server)

    @property
    def catalog(self) -> str:
        return f"{self.base}/api/catalog"


def node_modules() -> Path | None:
    """The reference's node_modules: its own, or the bench's cache of ``npm ci``."""
    own = REFERENCE / "node_modules"
    if own.is_dir():
        return own
    lock = REFERENCE / "package-lock.json"
    if not lock.is_file():
        return None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scaffolder-bench"
    cached = cache / f"reference-{hashlib.sha256(lock.read_bytes()).hexdigest()[:12]}"
    return cached / "node_modules" if (cached / "node_modules").is_dir() else None


def copy_reference(tmp: Path, modules: Path) -> Path:
    """A writable copy of the reference under ``tmp``, its node_modules linked in."""
    copy = tmp / "reference"
    shutil.copytree(REFERENCE, copy, ignore=shutil.ignore_patterns("node_modules", "run", ".venv"))
    for path in [copy, *copy.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    (copy / "node_modules").symlink_to(modules.resolve())
    return copy


@contextlib.contextmanager
def run_reference(copy: Path, env: dict[str, str], ready_url: str) -> Iterator[None]:
    """Run the reference copy (``node src/index.js``) until ``ready_url`` answers 200; stop
    it afterwards. Its output goes to ``backend.log`` beside the copy."""
    log_path = copy.parent / "backend.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        ["node", "src/index.js"],
        cwd=copy,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(ready_url, timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_bytes()[-3000:].decode("utf-8", "replace")
                pytest.fail(f"the private upstream at {ready_url} did not start:\n{tail}")
            time.sleep(0.2)
        yield
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        log.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    if REUSED:
        yield Upstream(base=REUSED.rstrip("/"), files_url=REUSED_FILES, files_dir=None)
        return
    modules = node_modules()
    if shutil.which("node") is None or modules is None:
        pytest.skip(
            "the upstream reference is not installed (node, the reference and its "
            "node_modules: `make upstream` installs them)"
        )
    tmp = Path(tempfile.mkdtemp(prefix="scaffolder-upstream-"))
    files = tmp / "files"
    files.mkdir()
    shutil.copy(REFERENCE / "fixtures" / "catalog-info.yaml", files / "catalog-info.yaml")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_Quiet, directory=str(files))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    files_url = f"http://127.0.0.1:{server.server_address[1]}"

    copy = copy_reference(tmp, modules)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "NODE_ENV": "production",
        "BACKSTAGE_REF_NO_COOKIECUTTER": "1",
        "APP_CONFIG_backend_listen_port": str(port),
        "APP_CONFIG_backend_baseUrl": base,
        "APP_CONFIG_backend_reading_allow": json.dumps([{"host": files_url[7:]}]),
    }
    try:
        ready = f"{base}/api/catalog/entities/by-name/template/default/hello-template"
        with run_reference(copy, env, ready):
            yield Upstream(base=base, files_url=files_url, files_dir=files)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def remote(upstream: Upstream) -> BackstageCatalogClient:
    # The reference accepts this static token (its app-config.yaml); a bad one gets 401.
    return BackstageCatalogClient(
        base_url=upstream.catalog, token="ref-static-token-0123456789", timeout=30
    )


def run(
    action: TemplateAction, input: dict[str, Any], tmp_path: Path
) -> tuple[dict[str, Any], str]:
    outputs: dict[str, Any] = {}
    lines: list[str] = []
    (tmp_path / "ws").mkdir(exist_ok=True)
    action.handler(
        ActionContext(
            input=input,
            workspace_path=tmp_path / "ws",
            logger=ActionLogger(lines.append),
            signal=CancelSignal(),
            task_id="t",
            step_id="s",
            step_name="S",
            _output=outputs.__setitem__,
            _checkpoint=lambda key, fn: fn(),
        )
    )
    return outputs, "\n".join(lines)


def wait_for(fetch: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + INGEST_TIMEOUT
    while (found := fetch()) is None:
        assert time.monotonic() < deadline, f"{what} not in the upstream catalog in time"
        time.sleep(0.2)
    return found


def own_files(upstream: Upstream) -> Path:
    if upstream.files_dir is None:
        pytest.skip("a reused upstream reads only the reference's fixtures")
    return upstream.files_dir


def test_register_is_idempotent_and_fetch_reads_backstage(
    upstream: Upstream, remote: BackstageCatalogClient, tmp_path: Path
) -> None:
    register = create_catalog_register_action(catalog=remote, integrations=ScmIntegrations())
    fetch = create_catalog_fetch_action(catalog=remote)
    url = f"{upstream.files_url}/catalog-info.yaml"

    outputs, _ = run(register, {"catalogInfoUrl": url}, tmp_path)
    assert outputs == {"entityRef": "component:default/fixture-service", "catalogInfoUrl": url}
    # Upstream answers the second POST /locations with 409; we refresh instead of failing.
    again, log = run(register, {"catalogInfoUrl": url}, tmp_path)
    assert again == outputs
    assert f"Location url:{url} was registered already; refreshed it" in log

    entity = wait_for(
        lambda: remote.get_entity_by_ref("component:default/fixture-service"), "the component"
    )
    assert entity["metadata"]["annotations"]["backstage.io/managed-by-origin-location"] == (
        f"url:{url}"
    )
    one, _ = run(fetch, {"entityRef": "fixture-service", "defaultKind": "Component"}, tmp_path)
    assert one["entity"]["metadata"]["uid"] == entity["metadata"]["uid"]
    wait_for(lambda: remote.get_entity_by_ref("group:default/platform"), "the group")
    many, _ = run(
        fetch,
        {
            "entityRefs": ["group:default/platform", "component:default/nope"],
            "optional": True,
        },
        tmp_path,
    )
    assert [e and e["kind"] for e in many["entities"]] == ["Group", None]
    assert remote.get_entity_by_ref("component:default/nope") is None


def test_errors_are_upstreams_messages_translated(
    upstream: Upstream, remote: BackstageCatalogClient, tmp_path: Path
) -> None:
    register = create_catalog_register_action(catalog=remote, integrations=ScmIntegrations())
    missing = f"{upstream.files_url}/missing-{time.monotonic_ns()}.yaml"
    with pytest.raises(InputError) as caught:
        run(register, {"catalogInfoUrl": missing}, tmp_path)
    assert caught.value.message == (
        f"NotFoundError: Unable to read url, no matching files found for {missing}"
    )
    outputs, log = run(register, {"catalogInfoUrl": missing, "optional": True}, tmp_path)
    assert outputs == {"catalogInfoUrl": missing}
    assert "No entity to output (optional): InputError: NotFoundError" in log

    with pytest.raises(InputError, match=r"Registered locations must be of an allowed type"):
        remote.add_location("/etc/passwd", type="file")
    bad = BackstageCatalogClient(base_url=upstream.catalog, token="not-a-token")
    with pytest.raises(AuthenticationError) as refused:
        bad.get_entity_by_ref("component:default/x")
    assert "refused the credentials (catalog.token)" in refused.value.message
    assert refused.value.message.endswith(
        "Could not resolve credentials; caused by AuthenticationError: Illegal token"
    )


def test_dry_run_entities_and_choice_match_the_embedded_catalog(
    upstream: Upstream,
    remote: BackstageCatalogClient,
    make_catalog: Callable[..., Services],
    tmp_path: Path,
) -> None:
    files = own_files(upstream)
    (files / "org.yaml").write_text(
        yaml.safe_dump_all([group("team-b"), group("team-a")], sort_keys=False)
    )
    services = make_catalog([], reading={"allow": [{"host": upstream.files_url[7:]}]})
    embedded = EmbeddedCatalogClient(services.catalog)
    for name in ("org.yaml", "catalog-info.yaml"):
        url = f"{upstream.files_url}/{name}"
        theirs = remote.dry_run_location(url)
        ours = embedded.dry_run_location(url)
        assert [(e["kind"], e["metadata"]["name"]) for e in ours] == [
            (e["kind"], e["metadata"]["name"]) for e in theirs
        ]
        assert ours == theirs
    register = create_catalog_register_action(catalog=remote, integrations=ScmIntegrations())
    outputs, _ = run(register, {"catalogInfoUrl": f"{upstream.files_url}/org.yaml"}, tmp_path)
    assert outputs["entityRef"] == "group:default/team-a"
