#!/usr/bin/env python3
"""500 tasks at once: ours on PostgreSQL with 1 and 2 worker processes, beside upstream.

Issue 7's benchmark. In one run on one machine, for each setup:

* ``upstream``: the reference Backstage backend (its own database and task workers);
* ``ours-1w`` / ``ours-2w``: a throwaway PostgreSQL cluster (Debian's binaries, as the tests
  use), one ``scaffolder serve`` with ``scaffolder.concurrentTasksLimit: 0`` (the API only) and
  1 or 2 ``scaffolder worker`` processes (10 task slots each, upstream's default), started
  with ``--nice 10`` (``--worker-nice``): on cores shared with the API and PostgreSQL, as
  README advises, the workers' batch work yields to them; each process on one CPU
  (``--cpu``; ``--pin``), so that its threads do not hand their GIL between cores;

``--tasks`` tasks of a light template (hello-template: debug:log, fetch:template,
catalog:write, debug:log) are POSTed at once (``--clients`` threads, a keep-alive connection
each), and measured:

* throughput: tasks / (last completion - first POST), completions taken from each task's
  ``completion`` event ``createdAt``;
* time to completion per task: its completion ``createdAt`` - the moment its POST was sent
  (p50, p99; same clock, the servers run here);
* event latency on the stream: every ``--sse-every``-th task gets an event stream opened as
  soon as its POST returns; each event's arrival time - its ``createdAt`` (p50, p99). Ours
  stamps ``createdAt`` when the event is logged (milliseconds); upstream's timestamps have
  whole seconds, so its figure is shown but is not comparable;
* RSS of each process (server tree, each worker) at the end, and PostgreSQL's;
* cores used by other processes meanwhile (this machine is shared).

Targets (issue 7): ours throughput at least 3x upstream's, p99 event latency under 50 ms.

  .venv/bin/python bench/bench_scale.py [--tasks 500] [--only ours|upstream]

Writes bench/results/<date>-scale.json. Stdlib plus psycopg (our dependency); loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import http.client
import json
import multiprocessing
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import bench_tasks as bt  # noqa: E402

TEMPLATE = "template:default/hello-template"
VALUES = bt.HELLO_VALUES
TASKS = bt.TASKS
#: Backstage reads APP_CONFIG_<path> as config overrides, keys case-sensitive.
UPSTREAM_WORKDIR_ENV = "APP_CONFIG_backend_workingDirectory"


def pinned_cpus(pin: str, workers: int) -> dict[str, Any]:
    """``--cpu`` for serve and each worker: ``all`` puts serve on the first CPU we may use
    and worker i on the (i+1)-th (round robin), ``workers`` pins the workers only, ``none``
    nothing. On 2 CPUs: serve 0, one worker 1; two workers 1 and 0."""
    cpus = sorted(os.sched_getaffinity(0))
    serve = cpus[0] if pin == "all" else None
    pinned = pin in ("all", "workers")
    return {
        "serve": serve,
        "workers": [cpus[(i + 1) % len(cpus)] if pinned else None for i in range(workers)],
    }


def log(msg: str) -> None:
    print(msg, flush=True)


def parse_ts(value: str) -> float:
    return _dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, round(q / 100 * (len(xs) - 1))))
    return round(xs[k], 1)


def dist(xs: list[float]) -> dict[str, Any]:
    return {
        "n": len(xs),
        "p50_ms": pct(xs, 50),
        "p99_ms": pct(xs, 99),
        "max_ms": round(max(xs), 1) if xs else None,
        "mean_ms": round(statistics.fmean(xs), 1) if xs else None,
    }


def process_rss_kb(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------------- our setup
class OursCluster:
    """PostgreSQL, one API-only ``scaffolder serve`` and ``workers`` ``scaffolder worker``s."""

    def __init__(self, a: argparse.Namespace, workers: int, admin_url: str, db: str) -> None:
        self.name = f"ours-{workers}w"
        self.a = a
        self.workers = workers
        self.admin_url = admin_url
        self.db = db
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-scale-{self.name}-"))
        self.work = Path(tempfile.mkdtemp(prefix=f"bench-scale-{self.name}-work-", dir=a.workdir))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []
        self.base = ""
        self.pid: int | None = None
        self.worker_pids: list[int] = []
        self.notes: list[str] = []
        self.db_url = ""

    def _spawn(self, cmd: list[str], name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        logf = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115
        self.logs.append(logf)
        proc = subprocess.Popen(
            cmd, cwd=self.tmp, stdout=logf, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}"')
            conn.execute(f'CREATE DATABASE "{self.db}"')
        url = self.admin_url.rsplit("/", 1)[0] + f"/{self.db}"
        self.db_url = url
        port = bt.free_port()
        cfg = self.tmp / "app-config.yaml"
        target = REPO / "tests/fixtures/templates/*/template.yaml"
        cfg.write_text(
            "backend:\n"
            f"  baseUrl: http://127.0.0.1:{port}\n"
            f"  listen: {{host: 127.0.0.1, port: {port}}}\n"
            f"  database: {{connection: '{url}'}}\n"
            f"  workingDirectory: {self.work}\n"
            "  auth: {dangerouslyDisableDefaultAuthPolicy: true}\n"
            "catalog:\n"
            "  locations:\n"
            f"    - {{type: file, target: '{target}'}}\n"
        )
        api_only = self.tmp / "api-only.yaml"  # merged over app-config.yaml for serve
        api_only.write_text("scaffolder:\n  concurrentTasksLimit: 0\n")
        exe = str(REPO / ".venv" / "bin" / "scaffolder")
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("SCAFFOLDER_")}
        cmd = [exe, "serve", "--config", str(cfg), "--config", str(api_only)]
        cmd += ["--host", "127.0.0.1", "--port", str(port)]
        self.cpus = pinned_cpus(self.a.pin, self.workers)
        if self.cpus["serve"] is not None:
            cmd += ["--cpu", str(self.cpus["serve"])]
        log(f"[{self.name}] starting: {shlex.join(cmd)}")
        t0 = time.perf_counter()
        server = self._spawn(cmd, "serve", base_env)
        self.pid = server.pid
        self.base = f"http://127.0.0.1:{port}"
        hello = "/api/catalog/entities/by-name/template/default/hello-template"
        while bt.http_status(self.base, hello, timeout=1) != 200:
            if server.poll() is not None or time.perf_counter() - t0 > self.a.ready_timeout:
                raise RuntimeError(f"{self.name} serve not ready:\n{self.log_tail('serve')}")
            time.sleep(0.05)
        slots = self.tmp / "worker.yaml"
        slots.write_text(f"scaffolder:\n  concurrentTasksLimit: {self.a.slots}\n")
        for i in range(self.workers):
            cmd = [exe, "worker", "--config", str(cfg), "--config", str(slots)]
            cmd += ["--nice", str(self.a.worker_nice)]
            if self.cpus["workers"][i] is not None:
                cmd += ["--cpu", str(self.cpus["workers"][i])]
            worker = self._spawn(cmd, f"worker{i}", base_env)
            self.worker_pids.append(worker.pid)
        time.sleep(1.5)  # the workers import, connect and LISTEN
        for i, proc in enumerate(self.procs[1:]):
            if proc.poll() is not None:
                raise RuntimeError(f"worker {i} exited:\n{self.log_tail(f'worker{i}')}")
        self.notes.append(
            f"PostgreSQL database {self.db}; 1 scaffolder serve (concurrentTasksLimit 0) and "
            f"{self.workers} scaffolder worker process(es), {self.a.slots} slots each, "
            f"--nice {self.a.worker_nice}; CPUs (--cpu): {self.cpus}"
        )

    def rss(self) -> dict[str, Any]:
        return {
            "serve_kb": process_rss_kb(self.pid),
            "workers_kb": [process_rss_kb(p) for p in self.worker_pids],
        }

    def cpu_pids(self) -> list[int]:
        return [p for p in [self.pid, *self.worker_pids] if p]

    def log_tail(self, name: str, n: int = 3000) -> str:
        try:
            return (self.tmp / f"{name}.log").read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for logf in self.logs:
            logf.close()
        shutil.rmtree(self.work, ignore_errors=True)
        if not self.a.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


class UpstreamSetup:
    def __init__(self, a: argparse.Namespace) -> None:
        self.name = "upstream"
        ns = argparse.Namespace(
            upstream_base=None,
            upstream_pid=None,
            reuse_upstream=False,
            reference_dir=a.reference_dir,
            reference_inplace=False,
            node_modules=a.node_modules,
            upstream_port=None,
            ready_timeout=a.ready_timeout,
        )
        self.server = bt.Upstream(ns)
        self.notes = self.server.notes
        self.work = Path(tempfile.mkdtemp(prefix="bench-scale-upstream-work-", dir=a.workdir))
        self.base = ""
        self.pid: int | None = None

    def start(self) -> None:
        # Backstage's standard override for backend.workingDirectory (its task workspaces),
        # read by the node process start.sh starts.
        os.environ[UPSTREAM_WORKDIR_ENV] = str(self.work)
        try:
            self.server.start()
        finally:
            del os.environ[UPSTREAM_WORKDIR_ENV]
        self.base, self.pid = self.server.base, self.server.pid
        self.notes.append(f"backend.workingDirectory {self.work}")

    def rss(self) -> dict[str, Any]:
        return {"server_tree_kb": (bt.tree_rss_kb(self.pid) or {}).get("total_kb")}

    def cpu_pids(self) -> list[int]:
        return [self.pid] if self.pid else []

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.work, ignore_errors=True)


# ------------------------------------------------------------------------------- the load
class StreamReader(threading.Thread):
    """Reads one task's event stream; records (arrival wall time, event) for each event."""

    def __init__(self, base: str, task_id: str, timeout: float) -> None:
        super().__init__(daemon=True)
        self.base, self.task_id, self.timeout = base, task_id, timeout
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.error: str | None = None
        self.requested = 0.0  # when the stream was asked for

    def run(self) -> None:
        u = urllib.parse.urlparse(self.base)
        host, port = u.hostname or "127.0.0.1", u.port or 80
        conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            self.requested = time.time()
            conn.request(
                "GET",
                f"{TASKS}/{self.task_id}/eventstream",
                headers={"Accept": "text/event-stream"},
            )
            resp = conn.getresponse()
            if resp.status != 200:
                self.error = f"eventstream -> {resp.status}"
                return
            buf, event, data = b"", None, []
            while True:
                chunk = resp.read1(65536)
                now = time.time()
                if not chunk:
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    line = line.rstrip(b"\r")
                    if line == b"":
                        if data:
                            with contextlib.suppress(ValueError):
                                self.arrivals.append((now, json.loads(b"\n".join(data))))
                        if event == "completion":
                            return
                        event, data = None, []
                    elif line.startswith(b"event:"):
                        event = line[6:].strip().decode()
                    elif line.startswith(b"data:"):
                        data.append(line[5:].lstrip())
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()


def quiet_collector() -> None:
    """No garbage collection in a measuring process: its pauses would be counted as latency.

    A forked observer inherits the bench's whole heap (and the previous setups' results); a
    full collection of it stalled every reader thread for 130-180 ms, while the API had
    written the events on time (serve's socket writes and the arrivals, joined per event).
    What these processes allocate in one run is small and freed when they exit.
    """
    gc.freeze()
    gc.disable()


def observe(base: str, timeout: float, ids: multiprocessing.Queue[str | None], out: Any) -> None:
    """The stream observer, a process of its own: a reader thread per task id received.

    Arrival times are taken here rather than in the process that POSTs, whose threads would
    hold its GIL and delay the timestamps.
    """
    quiet_collector()
    readers = []
    while (task_id := ids.get()) is not None:
        reader = StreamReader(base, task_id, timeout)
        reader.start()
        readers.append(reader)
    for reader in readers:
        reader.join(timeout)
    out.send(
        [
            {
                "task_id": r.task_id,
                "arrivals": r.arrivals,
                "error": r.error,
                "requested": r.requested,
            }
            for r in readers
        ]
    )
    out.close()


def listen_notifies(url: str, stop: Any, out: Any) -> None:
    """A process of its own: LISTENs on our event channel; sends [(arrival, task id)] at stop.

    Splits an event's latency in two: logged -> committed and announced (the worker and
    PostgreSQL), announced -> read from the stream (the API process and the reader).
    """
    import psycopg

    quiet_collector()
    heard: list[tuple[float, str]] = []
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("LISTEN scaffolder_task_events")
        while not stop.is_set():
            for note in conn.notifies(timeout=0.2):
                heard.append((time.time(), note.payload))
    # A payload is the task id, or {"t": task id, "e": [its events]} (the events it carries).
    out.send([(at, json.loads(p)["t"] if p.startswith("{") else p) for at, p in heard])
    out.close()


def split_latency(
    timed: list[tuple[float, str, float]], heard: list[tuple[float, str]]
) -> dict[str, Any]:
    """For each (arrival, task id, createdAt): the first notification of its task after it."""
    by_task: dict[str, list[float]] = {}
    for at, task_id in heard:
        by_task.setdefault(task_id, []).append(at)
    to_notify, notify_to_stream = [], []
    for arrival, task_id, created in timed:
        notes = by_task.get(task_id) or []
        first = next((n for n in notes if n >= created - 0.0005), None)
        if first is None or first > arrival:
            continue
        to_notify.append((first - created) * 1000)
        notify_to_stream.append((arrival - first) * 1000)
    return {
        "logged_to_notified": dist(to_notify),
        "notified_to_stream": dist(notify_to_stream),
    }


def load(setup: Any, a: argparse.Namespace) -> dict[str, Any]:
    """POST --tasks tasks at once; wait for all; collect the figures."""
    base = setup.base
    posted: dict[str, float] = {}  # task id -> wall time the POST was sent
    streamed: list[str] = []
    ctx = multiprocessing.get_context("fork")  # before any thread of ours starts
    ids: multiprocessing.Queue[str | None] = ctx.Queue()
    results_r, results_w = ctx.Pipe(duplex=False)
    observer = ctx.Process(target=observe, args=(base, a.timeout, ids, results_w), daemon=True)
    observer.start()
    listener = None
    db_url = getattr(setup, "db_url", None)
    if db_url:
        stop_listening = ctx.Event()
        heard_r, heard_w = ctx.Pipe(duplex=False)
        listener = ctx.Process(
            target=listen_notifies, args=(db_url, stop_listening, heard_w), daemon=True
        )
        listener.start()
        time.sleep(0.5)  # connected and listening before the first POST
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(a.tasks))
    barrier = threading.Barrier(a.clients + 1)

    def client_loop() -> None:
        client = bt.Client(base, timeout=a.timeout)
        client.call("GET", "/.backstage/health/v1/readiness")
        barrier.wait()
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            sent = time.time()
            try:
                task_id = bt.post_task(client, TEMPLATE, VALUES)
            except Exception as exc:
                with lock:
                    errors.append(f"POST: {exc}")
                continue
            with lock:
                posted[task_id] = sent
            if i % a.sse_every == 0:
                ids.put(task_id)
                streamed.append(task_id)
        client.close()

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(a.clients)]
    for t in threads:
        t.start()
    c0 = bt.cpu_snapshot(None)
    pids_cpu0 = {p: proc_cpu_s(p) for p in setup.cpu_pids()}
    pids_sys0 = {p: proc_cpu_s(p, system=True) for p in setup.cpu_pids()}
    barrier.wait(timeout=60)
    t0 = time.time()
    for t in threads:
        t.join()
    posted_s = time.time() - t0
    log(f"[{setup.name}] {len(posted)} tasks posted in {posted_s:.1f} s")

    # Wait until every task is finished: the finished count (totalTasks of a status filter
    # with limit=1, on the fresh database), polled every half second. Listing every task
    # instead would make the server serialise 500 specs each time, load we would measure.
    watcher = bt.Client(base, timeout=a.timeout)
    deadline = time.time() + a.timeout
    while True:
        done = 0
        for status in bt.FINAL:
            st, body = watcher.call("GET", f"{TASKS}?status={status}&limit=1")
            if st == 200 and isinstance(body, dict):
                done += int(body.get("totalTasks") or 0)
        if done >= len(posted):
            break
        if time.time() > deadline:
            errors.append(f"only {done} of {len(posted)} tasks finished in {a.timeout:.0f} s")
            break
        time.sleep(0.5)
    c1 = bt.cpu_snapshot(None)
    pids_cpu = {p: round(proc_cpu_s(p) - s, 2) for p, s in pids_cpu0.items()}
    pids_sys = {p: round(proc_cpu_s(p, system=True) - s, 2) for p, s in pids_sys0.items()}
    ids.put(None)
    readers = results_r.recv() if results_r.poll(60) else []
    observer.join(10)
    heard: list[tuple[float, str]] = []
    if listener is not None:
        stop_listening.set()
        heard = heard_r.recv() if heard_r.poll(30) else []
        listener.join(10)

    # Completion times from the events.
    completed_at: dict[str, float] = {}
    failed: list[str] = []
    for task_id in posted:
        st, events = watcher.call("GET", f"{TASKS}/{task_id}/events")
        if st != 200 or not isinstance(events, list):
            errors.append(f"events of {task_id}: {st}")
            continue
        for ev in events:
            if ev.get("type") == "completion":
                completed_at[task_id] = parse_ts(ev["createdAt"])
                if (ev.get("body") or {}).get("error"):
                    failed.append(task_id)
    watcher.close()
    to_completion = [(completed_at[t] - posted[t]) * 1000 for t in completed_at]
    first_post = min(posted.values()) if posted else t0
    last_done = max(completed_at.values()) if completed_at else time.time()
    span = max(last_done - first_post, 1e-3)
    # Latency of events logged while their stream was open. An event logged before the
    # client asked for the stream arrives in its first read, as history: its wait is the
    # time the client took to ask, not the push (counted apart, as "replayed").
    logged = [
        (arrival, parse_ts(ev["createdAt"]), r)
        for r in readers
        for arrival, ev in r["arrivals"]
        if isinstance(ev, dict) and ev.get("createdAt")
    ]
    timed = [(arrival, (arrival - at) * 1000) for arrival, at, r in logged if at >= r["requested"]]
    replayed = sum(1 for _, at, r in logged if at < r["requested"])
    latencies = [lat for _, lat in timed]
    split = split_latency(
        [(arrival, r["task_id"], at) for arrival, at, r in logged if at >= r["requested"]],
        heard,
    )
    posts_end = t0 + posted_s
    cpu = bt.cpu_delta(c0, c1)
    ours_cores = sum(pids_cpu.values()) / max(c1[0] - c0[0], 1e-3)
    res = {
        "tasks": len(posted),
        "completed": len(completed_at) - len(failed),
        "failed": len(failed),
        "errors": errors[:20],
        "post_all_s": round(posted_s, 2),
        "span_s": round(span, 2),
        "throughput_tasks_per_s": round(len(completed_at) / span, 1),
        "time_to_completion": dist(to_completion),
        "event_latency": dist(latencies),
        # While the POSTs still arrive the API process is busy with them.
        "event_latency_during_posts": dist([lat for at, lat in timed if at <= posts_end]),
        "event_latency_after_posts": dist([lat for at, lat in timed if at > posts_end]),
        # Ours only: where an event's latency goes (see listen_notifies).
        "event_latency_split": split if heard else None,
        "streams": {
            "opened": len(streamed),
            "errors": [r["error"] for r in readers if r["error"]][:5],
            "events": len(latencies),
            "replayed_events": replayed,
        },
        "cpu_s_by_process": pids_cpu,
        "system_cpu_s_by_process": pids_sys,
        "machine_cores_busy": round(cpu["other_cores"] + cpu["bench_client_cores"], 2),
        "server_processes_cores": round(ours_cores, 2),
    }
    log(
        f"[{setup.name}] {res['completed']} completed, {res['failed']} failed in "
        f"{res['span_s']} s: {res['throughput_tasks_per_s']} tasks/s; to completion p50 "
        f"{res['time_to_completion']['p50_ms']} p99 {res['time_to_completion']['p99_ms']} ms; "
        f"event latency p50 {res['event_latency']['p50_ms']} p99 "
        f"{res['event_latency']['p99_ms']} ms ({len(latencies)} events, {replayed} replayed; "
        "while POSTing p99 "
        f"{res['event_latency_during_posts']['p99_ms']}, after "
        f"{res['event_latency_after_posts']['p99_ms']})"
    )
    log(
        f"[{setup.name}] CPU seconds by process (user+system): "
        + ", ".join(f"{pid}: {cpu} ({pids_sys[pid]} system)" for pid, cpu in pids_cpu.items())
    )
    if heard:
        log(
            f"[{setup.name}] latency split p50/p99: logged -> notified "
            f"{split['logged_to_notified']['p50_ms']}/{split['logged_to_notified']['p99_ms']} ms, "
            f"notified -> stream {split['notified_to_stream']['p50_ms']}/"
            f"{split['notified_to_stream']['p99_ms']} ms"
        )
    return res


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def proc_cpu_s(pid: int, *, system: bool = False) -> float:
    """CPU seconds of a process and its waited-for children (``system``: kernel time only)."""
    hz = os.sysconf("SC_CLK_TCK")
    try:
        st = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        fields = (st[12], st[14]) if system else st[11:15]
        return sum(int(x) for x in fields) / hz
    except (OSError, IndexError, ValueError):
        return 0.0


def postgres_rss_kb() -> int:
    out = subprocess.run(
        ["ps", "-C", "postgres", "-o", "rss="], capture_output=True, text=True, check=False
    ).stdout
    return sum(int(x) for x in out.split() if x.isdigit())


def run_setup(setup: Any, a: argparse.Namespace) -> dict[str, Any]:
    """Start ``setup``, wait until it is quiet, put the load on it, stop it."""
    try:
        setup.start()
        log(f"[{setup.name}] ready at {setup.base}")
        bt.wait_quiet(
            argparse.Namespace(name=setup.name, pid=setup.pid),
            argparse.Namespace(quiet_cores=0.3, quiet_wait=30),
        )
        res = load(setup, a)
        time.sleep(2)
        res["rss_kb"] = setup.rss()
        if isinstance(setup, OursCluster):
            res["rss_kb"]["postgres_all_kb"] = postgres_rss_kb()
    except Exception as exc:
        res = {"errors": [f"{type(exc).__name__}: {exc}"]}
        log(f"[{setup.name}] ERROR {exc}")
    finally:
        setup.stop()
    res["notes"] = setup.notes
    return res


def compare(results: dict[str, Any]) -> dict[str, Any]:
    """Each of ours against the upstream run of the same round."""
    up = results.get("upstream", {})
    comparison = {}
    for name, res in results.items():
        if name == "upstream":
            continue
        ratio = None
        if up.get("throughput_tasks_per_s") and res.get("throughput_tasks_per_s"):
            ratio = round(res["throughput_tasks_per_s"] / up["throughput_tasks_per_s"], 2)
        p99 = (res.get("event_latency") or {}).get("p99_ms")
        comparison[name] = {
            "throughput_vs_upstream": ratio,
            "throughput_pass": None if ratio is None else ratio >= 3,
            "event_latency_p99_ms": p99,
            "event_latency_pass": None if p99 is None else p99 < 50,
        }
    return comparison


def summarise(rounds: list[dict[str, Any]], comparisons: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds: throughput per setup, and each of ours' ratio and p99."""

    def median(xs: list[float | None]) -> float | None:
        got = [x for x in xs if x is not None]
        return round(statistics.median(got), 2) if got else None

    throughput = {
        name: {
            "median": median([r.get(name, {}).get("throughput_tasks_per_s") for r in rounds]),
            "each": [r.get(name, {}).get("throughput_tasks_per_s") for r in rounds],
        }
        for name in rounds[0]
    }
    comparison = {}
    for name in comparisons[0]:
        ratios = [c[name]["throughput_vs_upstream"] for c in comparisons]
        p99s = [c[name]["event_latency_p99_ms"] for c in comparisons]
        ratio, p99 = median(ratios), median(p99s)
        comparison[name] = {
            "throughput_vs_upstream": ratio,
            "throughput_vs_upstream_each": ratios,
            "throughput_pass": None if ratio is None else ratio >= 3,
            "event_latency_p99_ms": p99,
            "event_latency_p99_ms_each": p99s,
            "event_latency_pass": None if p99 is None else p99 < 50,
        }
    return {"throughput_tasks_per_s": throughput, "comparison": comparison}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=500)
    ap.add_argument("--clients", type=int, default=8, help="threads POSTing (default 8)")
    ap.add_argument("--sse-every", type=int, default=25, help="open a stream on every Nth task")
    ap.add_argument("--workers", default="1,2", help="worker process counts to measure")
    ap.add_argument(
        "--slots", type=int, default=10, help="task slots per worker (default 10, as upstream)"
    )
    ap.add_argument(
        "--worker-nice",
        type=int,
        default=10,
        help="``scaffolder worker --nice`` (default 10, README's advice when the API, the "
        "workers and PostgreSQL share cores, as here; 0 for equal priority)",
    )
    ap.add_argument(
        "--pin",
        choices=["all", "workers", "none"],
        default="all",
        help="``--cpu`` for our processes (default all: serve on the first CPU, worker i on "
        "the (i+1)-th, round robin; README's advice for a GIL-bound process on a VM)",
    )
    ap.add_argument("--only", choices=["ours", "upstream"])
    ap.add_argument(
        "--workdir",
        default=None,
        help="where both backends' task workspaces go (default: the system temp dir); "
        "e.g. /dev/shm for tmpfs",
    )
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--ready-timeout", type=float, default=120)
    ap.add_argument("--reference-dir", default=str(bt.DEFAULT_REFERENCE))
    ap.add_argument("--node-modules")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every setup this many times, interleaved (upstream, ours-1w, ours-2w, "
        "upstream, ...); the verdict is on the medians, each ratio against the same round's "
        "upstream. This VM gives the same setup +-40%% from run to run.",
    )
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()

    started = _dt.datetime.now().astimezone()
    setups: list[Any] = []
    cluster = None
    if a.only != "upstream":
        from tests.postgres.cluster import LocalCluster

        cluster = LocalCluster()
        admin = cluster.start()
        for n in (int(x) for x in a.workers.split(",") if x.strip()):
            setups.append(lambda n=n: OursCluster(a, n, admin, f"bench_scale_{n}w"))
    if a.only != "ours":
        setups.insert(0, lambda: UpstreamSetup(a))
    rounds: list[dict[str, Any]] = []
    try:
        for round_no in range(1, a.rounds + 1):
            results: dict[str, Any] = {}
            for make in setups:
                setup = make()
                if a.rounds > 1:
                    log(f"[{setup.name}] round {round_no} of {a.rounds}")
                results[setup.name] = run_setup(setup, a)
            rounds.append(results)
    finally:
        if cluster is not None:
            cluster.stop()

    comparisons = [compare(results) for results in rounds]
    summary = summarise(rounds, comparisons) if a.rounds > 1 else None
    log("")
    for number, comparison in enumerate(comparisons, 1):
        prefix = f"round {number}: " if a.rounds > 1 else ""
        for name, c in comparison.items():
            log(
                f"{prefix}{name}: throughput {c['throughput_vs_upstream']}x upstream "
                f"(target >= 3): {verdict(c['throughput_pass'])}"
                f"; event latency p99 {c['event_latency_p99_ms']} ms (target < 50): "
                f"{verdict(c['event_latency_pass'])}"
            )
    if summary is not None:
        for name, c in summary["comparison"].items():
            log(
                f"median of {a.rounds} rounds, {name}: throughput {c['throughput_vs_upstream']}x "
                f"upstream (rounds: {c['throughput_vs_upstream_each']}; target >= 3): "
                f"{verdict(c['throughput_pass'])}; event latency p99 "
                f"{c['event_latency_p99_ms']} ms (rounds: {c['event_latency_p99_ms_each']}; "
                f"target < 50): {verdict(c['event_latency_pass'])}"
            )
    doc = {
        "date": started.isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "template": TEMPLATE,
        "params": {
            "tasks": a.tasks,
            "clients": a.clients,
            "sse_every": a.sse_every,
            "slots": a.slots,
            "worker_nice": a.worker_nice,
            "pin": a.pin,
            "workdir": a.workdir or tempfile.gettempdir(),
            "rounds": a.rounds,
        },
        "machine": {"nproc": len(os.sched_getaffinity(0))},
        # One round: its results. Several: every round's, and the verdict on the medians.
        **(
            {"results": rounds[0], "comparison": comparisons[0]}
            if summary is None
            else {
                "rounds": [
                    {"results": r, "comparison": c}
                    for r, c in zip(rounds, comparisons, strict=True)
                ],
                "median": summary,
            }
        ),
    }
    if not a.no_write:
        out = HERE / "results" / f"{started.date().isoformat()}-scale.json"
        out.write_text(json.dumps(doc, indent=2) + "\n")
        log(f"wrote {out}")
    failed = any(r.get("errors") or r.get("failed") for results in rounds for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
