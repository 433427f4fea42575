"""``--cpu N``: our threads on one CPU, cookiecutter renders on every CPU the process had.

Pinning changes the process that does it, so the pinning runs in a child interpreter of its
own, with the real cookiecutter pool; the test process is never pinned.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from scaffolder.cli import main
from tests.conftest import FIXTURE_TEMPLATES, per_thread
from tests.postgres.cluster import free_port

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's"
)
#: On one CPU every thread is on it, pinned or not: nothing to tell apart.
needs_two_cpus = pytest.mark.skipif(
    hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < 2,
    reason="pinning shows only with two CPUs or more",
)

PINNED_CHILD = textwrap.dedent(
    """
    import json, os, sys, threading
    from pathlib import Path
    from scaffolder.cpu import pin_to_cpu, unpinned_cpus
    from scaffolder.integrations.cookiecutter import CookiecutterPool, RenderJob

    cpu, skeleton, work = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    pin_to_cpu(cpu)
    seen = {}
    worker = threading.Thread(target=lambda: seen.update(thread=sorted(os.sched_getaffinity(0))))
    worker.start()
    worker.join()
    pool = CookiecutterPool(spares=1)
    (work / "out").mkdir()
    result = pool.render(
        RenderJob(
            template_dir=skeleton, output_dir=work / "out", work_dir=work,
            values={"name": "svc", "description": "d"}, trusted=False, source=str(skeleton),
        )
    )
    print(json.dumps({
        "main": sorted(os.sched_getaffinity(0)),
        "thread": seen["thread"],
        "unpinned": sorted(unpinned_cpus()),
        "server": sorted(os.sched_getaffinity(pool._server.process.pid)),
        "rendered": (result.project_dir / "README.md").read_text(),
    }))
    pool.close()
    """
)


@needs_two_cpus
def test_a_pinned_process_keeps_its_threads_on_the_cpu_and_renders_on_all(
    tmp_path: Path,
) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[-1]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            PINNED_CHILD,
            str(cpu),
            str(FIXTURE_TEMPLATES / "cookie-template" / "skeleton"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(out.stdout)
    assert seen["main"] == [cpu]
    assert seen["thread"] == [cpu]  # a thread started later inherits the pin
    assert seen["unpinned"] == allowed
    # The fork server, and so every render it forks, runs on what the process had before.
    assert seen["server"] == allowed
    assert seen["rendered"] == "# svc\n\nd\n"


def _listening(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/.backstage/health/v1/liveness")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@needs_two_cpus
def test_serve_started_with_cpu_runs_every_thread_on_that_cpu(tmp_path: Path) -> None:
    cpu = max(os.sched_getaffinity(0))
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "backend": {
                    "database": {"connection": f"sqlite:///{tmp_path / 'db.sqlite'}"},
                    "workingDirectory": str(tmp_path / "work"),
                    "auth": {"dangerouslyDisableDefaultAuthPolicy": True},
                },
                "catalog": {"locations": []},
            }
        )
    )
    scaffolder = Path(sys.executable).parent / "scaffolder"
    log = tmp_path / "serve.log"
    command = [str(scaffolder), "serve", "--config", str(config), "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--cpu", str(cpu)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        cpus = per_thread(proc.pid, os.sched_getaffinity)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    # The HTTP pool, the task workers' loops, the event writer: all started after the pin.
    assert len(cpus) > 3, cpus
    assert all(c == {cpu} for c in cpus.values()), cpus


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_cpu_the_process_may_not_use_is_refused_before_anything_starts(
    command: str, tmp_path: Path
) -> None:
    missing = max(os.sched_getaffinity(0)) + 1
    before = os.sched_getaffinity(0)
    result = CliRunner().invoke(
        main, [command, "--cpu", str(missing), "--config", str(tmp_path / "absent.yaml")]
    )
    assert result.exit_code == 2, result.output
    allowed = ", ".join(str(c) for c in sorted(before))
    assert f"Invalid value for --cpu: CPU {missing} is not one this process may run on" in (
        result.output
    )
    assert f"({allowed})" in result.output
    assert os.sched_getaffinity(0) == before


def test_a_negative_cpu_is_refused() -> None:
    result = CliRunner().invoke(main, ["worker", "--cpu", "-1"])
    assert result.exit_code == 2
    assert "--cpu" in result.output
