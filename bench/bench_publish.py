#!/usr/bin/env python3
"""Render, publish and register, end to end, against its floor (issue 5).

Measured in one run on one machine:

* ours: an ecs-web-service task (defaults and a fresh name per run) on our freshly started
  server, from POST to ``completed``: fetch:cookiecutter, debug:log, publish:git to the local
  git host (``integrations.git: [{host: localhost, baseUrl: file://<tmp>/git}]``) and
  catalog:register of the published catalog-info.yaml;
* floor: the same work done directly in this already warm process:
  ``cookiecutter.main.cookiecutter(no_input=True, extra_context=<the step's values>)``, then
  ``git init``/``add``/``commit``, ``git init --bare`` and ``git push`` to it, and an insert of
  the catalog file's entity into a SQLite table.

The two are interleaved (a floor run, then a task, ``--runs`` times, after one unmeasured
warm-up of each) so that both see the same machine load. The medians and their ratio
(target <= ``--factor``, 1.3) go to ``bench/results/<date>-publish.json``. Stdlib plus
cookiecutter and PyYAML (from our venv).

  .venv/bin/python bench/bench_publish.py [--runs 15] [--poll-ms 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_tasks as bt  # noqa: E402

REPO = HERE.parent
TEMPLATE_DIR = REPO / "cookiecutters" / "ecs-web-service"
TEMPLATE_REF = "template:default/ecs-web-service"
GIT_ENV = {
    "PATH": os.environ["PATH"],
    "HOME": os.environ.get("HOME", "/tmp"),
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def step_values(name: str) -> dict[str, Any]:
    """What the fetch step passes for a task with only ``name`` set: the form's defaults for
    every cookiecutter value the step maps (absent ones, such as ``system``, are omitted)."""
    import yaml

    spec = yaml.safe_load((TEMPLATE_DIR / "template.yaml").read_text())["spec"]
    props: dict[str, Any] = {}
    for page in spec["parameters"]:
        props.update(page.get("properties") or {})
    fetch = next(s for s in spec["steps"] if s["action"] == "fetch:cookiecutter")
    values: dict[str, Any] = {}
    for key in fetch["input"]["values"]:
        if key == "name":
            values[key] = name
        elif "default" in props.get(key, {}):
            values[key] = props[key]["default"]
    return values


def git(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True)


class Floor:
    """The same work directly, in this warm process: render, git push, SQLite insert."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bench-publish-floor-"))
        self.config = self.root / "config.yaml"
        self.config.write_text(
            f"cookiecutters_dir: {self.root / 'cc'}\nreplay_dir: {self.root / 'replay'}\n"
        )
        self.db = sqlite3.connect(self.root / "catalog.sqlite")
        self.db.execute("CREATE TABLE entities (ref TEXT PRIMARY KEY, location TEXT, body TEXT)")
        self.db.commit()

    def run_ms(self, name: str) -> float:
        import yaml
        from cookiecutter.main import cookiecutter

        extra = step_values(name)  # prepared before the clock starts
        bare = self.root / "git" / "platform" / f"{name}.git"
        t0 = time.perf_counter()
        project = Path(
            cookiecutter(
                str(TEMPLATE_DIR / "cookiecutter"),
                no_input=True,
                extra_context=extra,
                output_dir=str(self.root / "out" / name),
                config_file=str(self.config),
            )
        )
        git("init", "-q", "-b", "main", cwd=project)
        git("add", "-A", cwd=project)
        git(
            "-c", "user.name=Scaffolder", "-c", "user.email=scaffolder@backstage.io",
            "commit", "-q", "-m", "initial commit", cwd=project,
        )  # fmt: skip
        git("init", "-q", "--bare", "-b", "main", str(bare))
        git("push", "-q", bare.as_uri(), "main", cwd=project)
        entity = yaml.safe_load((project / "catalog-info.yaml").read_text())
        ref = f"{entity['kind']}:default/{entity['metadata']['name']}".lower()
        self.db.execute(
            "INSERT OR REPLACE INTO entities VALUES (?, ?, ?)",
            (ref, f"url:{bare.as_uri()}/blob/main/catalog-info.yaml", json.dumps(entity)),
        )
        self.db.commit()
        return (time.perf_counter() - t0) * 1000

    def close(self) -> None:
        self.db.close()
        shutil.rmtree(self.root, ignore_errors=True)


def measure(runs: int, poll_s: float, keep_tmp: bool) -> tuple[list[float], list[float], list[str]]:
    """Milliseconds per floor run and per ecs-web-service task (POST to ``completed``) on our
    fresh server, interleaved (floor, task, floor, task, ...) so both see the same load."""
    args = argparse.Namespace(
        ours_base=None,
        ours_pid=None,
        repo=str(REPO),
        ready_timeout=60.0,
        template=TEMPLATE_REF,
        keep_tmp=keep_tmp,
        catalog_target=str(REPO / "cookiecutters" / "*" / "template.yaml"),
        extra_config=lambda tmp: (
            "integrations:\n  git:\n"
            f"    - {{host: localhost, baseUrl: '{(tmp / 'git').as_uri()}'}}\n"
        ),
    )
    floor = Floor()
    ours = bt.Ours(args)
    ours.start()
    try:
        client = bt.Client(ours.base)
        # Warm-up, not measured: the floor's imports and Jinja caches, our cookiecutter process.
        floor.run_ms("floor-warm")
        bt.run_task(client, TEMPLATE_REF, {"name": "bench-warm"}, poll_s, 120)
        floor_times, ours_times = [], []
        for i in range(runs):
            floor_times.append(floor.run_ms(f"floor-svc-{i}"))
            ours_times.append(
                bt.run_task(client, TEMPLATE_REF, {"name": f"bench-svc-{i}"}, poll_s, 120) * 1000
            )
        assert ours.tmp is not None
        published = {p.name for p in (ours.tmp / "git" / "platform").iterdir()}
        for i in range(runs):
            if f"bench-svc-{i}.git" not in published:
                raise RuntimeError(f"bench-svc-{i} was not published to the local git host")
            status, _ = client.call(
                "GET", f"/api/catalog/entities/by-name/component/default/bench-svc-{i}"
            )
            if status != 200:
                raise RuntimeError(f"bench-svc-{i} is not in the catalog: {status}")
        return floor_times, ours_times, ours.notes
    finally:
        ours.stop()
        floor.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--poll-ms", type=float, default=5)
    ap.add_argument("--factor", type=float, default=1.3)
    ap.add_argument("--keep-tmp", action="store_true")
    a = ap.parse_args()

    floor, ours, notes = measure(a.runs, a.poll_ms / 1000, a.keep_tmp)
    med = statistics.median
    ratio = med(ours) / med(floor)
    result = {
        "floor_ms": round(med(floor), 1),
        "ours_task_ms": round(med(ours), 1),
        "ratio": round(ratio, 3),
        "target": a.factor,
        "pass": ratio <= a.factor,
        "floor_min_max_ms": [round(min(floor), 1), round(max(floor), 1)],
        "ours_min_max_ms": [round(min(ours), 1), round(max(ours), 1)],
        "runs": a.runs,
        "interleaved": True,
        "poll_ms": a.poll_ms,
        "cpus": os.cpu_count(),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "template": TEMPLATE_REF,
        "ours_notes": notes,
    }
    print(
        f"floor (cookiecutter + git push + SQLite insert, warm): {result['floor_ms']} ms; "
        f"ours (ecs-web-service task, publish:git + catalog:register): "
        f"{result['ours_task_ms']} ms; ratio {result['ratio']} (target <= {a.factor}): "
        f"{'PASS' if result['pass'] else 'FAIL'}"
    )
    out = HERE / "results" / f"{time.strftime('%Y-%m-%d')}-publish.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
