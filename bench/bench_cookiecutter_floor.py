#!/usr/bin/env python3
"""fetch:cookiecutter against its floor: the same render done directly in a warm process.

Issue 3's second target: a cookie-template task on our server takes at most 1.5x of
(the floor + our task overhead). This script measures, in one run on one machine:

* floor: ``cookiecutter.main.cookiecutter()`` on upstream's cookie-template skeleton (laid out
  as upstream's action lays it out: ``{{cookiecutter and 'contents'}}`` with the values as
  cookiecutter.json), in this already warm process, ``--runs`` times;
* overhead: a task of slow-template with ``seconds: 0`` (two debug:log steps and a zero wait)
  on our freshly started server: what any task costs us from POST to ``completed``;
* ours: the cookie-template task on the same server.

The comparison with upstream's own server lives in ``bench_tasks.py --template
template:default/cookie-template``. Stdlib plus cookiecutter (from our venv).

  .venv/bin/python bench/bench_cookiecutter_floor.py [--runs 20] [--poll-ms 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_tasks as bt  # noqa: E402

REPO = HERE.parent
SKELETON = REPO / "tests/fixtures/templates/cookie-template/skeleton"
COOKIE_VALUES = {"name": "bench_svc", "description": "bench"}


def floor_ms(runs: int) -> list[float]:
    """Milliseconds per direct cookiecutter render in this warm process."""
    from cookiecutter.main import cookiecutter

    root = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    try:
        template = root / "template"
        shutil.copytree(SKELETON, template / "{{cookiecutter and 'contents'}}")
        (template / "cookiecutter.json").write_text(json.dumps(COOKIE_VALUES))
        config = root / "config.yaml"
        config.write_text(f"cookiecutters_dir: {root / 'cc'}\nreplay_dir: {root / 'replay'}\n")
        times = []
        for i in range(runs + 1):
            out = root / f"out{i}"
            t0 = time.perf_counter()
            cookiecutter(str(template), no_input=True, output_dir=str(out), config_file=str(config))
            elapsed = (time.perf_counter() - t0) * 1000
            if i:  # the first render warms cookiecutter's imports and Jinja's caches
                times.append(elapsed)
        return times
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--poll-ms", type=float, default=5)
    ap.add_argument("--factor", type=float, default=1.5)
    a = ap.parse_args()

    floor = floor_ms(a.runs)
    args = argparse.Namespace(
        ours_base=None,
        ours_pid=None,
        repo=str(REPO),
        ready_timeout=60.0,
        template="template:default/cookie-template",
        keep_tmp=False,
    )
    ours = bt.Ours(args)
    ours.start()
    try:
        client = bt.Client(ours.base)
        poll = a.poll_ms / 1000
        bt.run_task(client, "template:default/slow-template", {"seconds": 0}, poll, 60)
        bt.run_task(client, "template:default/cookie-template", COOKIE_VALUES, poll, 60)
        overhead = [
            bt.run_task(client, "template:default/slow-template", {"seconds": 0}, poll, 60) * 1000
            for _ in range(a.runs)
        ]
        cookie = [
            bt.run_task(client, "template:default/cookie-template", COOKIE_VALUES, poll, 60) * 1000
            for _ in range(a.runs)
        ]
    finally:
        ours.stop()

    med = statistics.median
    bound = a.factor * (med(floor) + med(overhead))
    result = {
        "floor_ms": round(med(floor), 1),
        "task_overhead_ms": round(med(overhead), 1),
        "ours_cookie_task_ms": round(med(cookie), 1),
        "bound_ms": round(bound, 1),
        "ratio_to_floor_plus_overhead": round(med(cookie) / (med(floor) + med(overhead)), 3),
        "pass": med(cookie) <= bound,
        "runs": a.runs,
        "poll_ms": a.poll_ms,
    }
    print(
        f"floor (direct cookiecutter, warm): {result['floor_ms']} ms; "
        f"task overhead (slow-template, 0 s): {result['task_overhead_ms']} ms; "
        f"ours cookie-template task: {result['ours_cookie_task_ms']} ms; "
        f"ratio to floor+overhead {result['ratio_to_floor_plus_overhead']} "
        f"(target <= {a.factor}): {'PASS' if result['pass'] else 'FAIL'}"
    )
    out = HERE / "results" / f"{time.strftime('%Y-%m-%d')}-cookiecutter-floor.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
