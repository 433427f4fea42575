#!/usr/bin/env python3
"""Compare our scaffolder server with the upstream Backstage backend in the same run.

  .venv/bin/python bench/bench_tasks.py [--template template:default/hello-template]
      [--values JSON] [--upstream-base URL [--upstream-pid PID]] [--ours-base URL [--ours-pid PID]]
      [--reference-dir DIR [--reference-inplace] [--node-modules DIR]] [--only upstream|ours]
      [--runs 20] [--concurrent 8] [--rounds 3] [--sse-runs 10] [--poll-ms 5]
      [--targets sequential=0.33,concurrent=0.33,sse=0.10,rss=0.5] [--no-write]

For each server (upstream first, then ours; the one measured is the only one we started that is
running, unless a server was given with --*-base or upstream was already listening on 7007):
  * idle RSS of the server's process tree right after start (after a short settle)
  * 1 warm-up task (reported, not counted)
  * --runs sequential tasks: time from just before POST /api/scaffolder/v2/tasks until
    GET /api/scaffolder/v2/tasks/:id (polled every --poll-ms on one keep-alive connection)
    shows `completed`
  * --rounds rounds of --concurrent tasks POSTed at once (a thread + connection each): time until
    all of them are completed
  * --sse-runs runs: time from just before the POST until the `completion` event arrives on
    GET .../v2/tasks/:id/eventstream (opened right after the POST, read incrementally)
  * idle RSS again after the runs
Then prints ratios ours/upstream (of medians), checks them against --targets, and writes
bench/results/<date>-<template-name>.json and a section of bench/results/latest.md.

Stdlib only. All traffic goes to 127.0.0.1. Exit code 0 unless a task failed (or a server could
not be started); missed targets are reported as FAIL but do not change the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
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
RESULTS = HERE / "results"
DEFAULT_REFERENCE = Path("/work/shared/backstage/reference")
UPSTREAM_PORT = 7007  # fixed by the reference's app-config.yaml

# Same values as upstream's bench.py (hello-template) and its README (cookie-template).
HELLO_VALUES = {
    "name": "bench-svc",
    "description": "bench",
    "owner": "group:default/platform",
    "language": "python",
    "port": 8080,
}
COOKIE_VALUES = {"name": "bench_svc", "description": "bench"}
DEFAULT_VALUES = {
    "template:default/hello-template": HELLO_VALUES,
    "template:default/cookie-template": COOKIE_VALUES,
}
DEFAULT_TARGETS = "sequential=0.33,concurrent=0.33,sse=0.10,rss=0.5"
FINAL = ("completed", "failed", "cancelled")
TASKS = "/api/scaffolder/v2/tasks"


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------------------- HTTP
class Client:
    """One keep-alive HTTP/1.1 connection; reconnects once if the server closed it."""

    def __init__(self, base: str, timeout: float = 60) -> None:
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def call(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                r = self.conn.getresponse()
                raw = r.read()
                try:
                    return r.status, json.loads(raw or b"null")
                except ValueError:
                    return r.status, raw[:300].decode("utf-8", "replace")
            except (
                http.client.RemoteDisconnected,
                ConnectionResetError,
                BrokenPipeError,
                http.client.CannotSendRequest,
                http.client.ResponseNotReady,
            ):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def http_status(base: str, path: str, timeout: float = 2) -> int | None:
    try:
        c = Client(base, timeout=timeout)
        st, _ = c.call("GET", path)
        c.close()
        return st
    except OSError:
        return None


def post_task(client: Client, template: str, values: dict) -> str:
    st, body = client.call("POST", TASKS, {"templateRef": template, "values": values})
    if st != 201 or not isinstance(body, dict) or "id" not in body:
        raise RuntimeError(f"POST /v2/tasks -> {st} {str(body)[:300]}")
    return str(body["id"])


def failure_reason(client: Client, tid: str) -> str:
    """The error of a failed task's completion event, for the report (best effort)."""
    try:
        st, events = client.call("GET", f"{TASKS}/{tid}/events")
    except OSError:
        return ""
    if st != 200 or not isinstance(events, list):
        return ""
    for ev in reversed(events):
        body = ev.get("body") if isinstance(ev, dict) else None
        if isinstance(body, dict) and body.get("error"):
            err = body["error"]
            msg = err.get("message", err) if isinstance(err, dict) else err
            return f": {str(msg)[:300]}"
    return ""


def run_task(client: Client, template: str, values: dict, poll_s: float, timeout: float) -> float:
    """Seconds from just before the POST until GET /v2/tasks/:id shows `completed`."""
    t0 = time.perf_counter()
    tid = post_task(client, template, values)
    while True:
        st, task = client.call("GET", f"{TASKS}/{tid}")
        status = task.get("status") if isinstance(task, dict) else None
        if st != 200:
            raise RuntimeError(f"GET /v2/tasks/{tid} -> {st} {str(task)[:300]}")
        if status in FINAL:
            t = time.perf_counter() - t0
            if status != "completed":
                raise RuntimeError(f"task {tid} ended {status}{failure_reason(client, tid)}")
            return t
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"task {tid} still {status!r} after {timeout:.0f} s")
        time.sleep(poll_s)


def run_sse(client: Client, base: str, template: str, values: dict, timeout: float) -> float:
    """Seconds from just before the POST until the `completion` SSE event has arrived."""
    t0 = time.perf_counter()
    tid = post_task(client, template, values)
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=timeout)
    try:
        conn.request("GET", f"{TASKS}/{tid}/eventstream", headers={"Accept": "text/event-stream"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(
                f"GET /v2/tasks/{tid}/eventstream -> {resp.status} {resp.read(300)!r}"
            )
        ctype = resp.getheader("Content-Type", "")
        if "text/event-stream" not in ctype:
            raise RuntimeError(f"eventstream Content-Type {ctype!r}")
        buf = b""
        event, data = None, []
        while True:
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"no completion event for task {tid} after {timeout:.0f} s")
            chunk = resp.read1(65536)
            if not chunk:
                raise RuntimeError(f"eventstream of task {tid} ended without a completion event")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                line = line.rstrip(b"\r")
                if line == b"":  # end of one event block
                    if event == "completion":
                        t = time.perf_counter() - t0
                        try:
                            body = json.loads(b"\n".join(data)).get("body", {})
                        except ValueError:
                            body = {}
                        if isinstance(body, dict) and body.get("error"):
                            raise RuntimeError(
                                f"task {tid} completion with error: {str(body['error'])[:300]}"
                            )
                        return t
                    event, data = None, []
                elif line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    data.append(line[5:].lstrip())
    finally:
        conn.close()


# ----------------------------------------------------------------------------- processes / RSS
def tree_rss_kb(pid: int | None) -> dict | None:
    """RSS (KB, from ps) of pid plus all its descendants."""
    if not pid:
        return None
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid=,rss="], capture_output=True, text=True, check=False
    ).stdout
    kids: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for ln in out.splitlines():
        parts = ln.split()
        if len(parts) != 3:
            continue
        p, pp, r = (int(x) for x in parts)
        kids.setdefault(pp, []).append(p)
        rss[p] = r
    if pid not in rss:
        return None
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(kids.get(p, []))
    return {"total_kb": sum(rss[p] for p in seen), "processes": len(seen), "root_kb": rss[pid]}


def listener_pid(port: int) -> int | None:
    """PID owning the LISTEN socket on 127.0.0.1/0.0.0.0:port (topmost, if shared by a tree)."""
    inodes = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(f).read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            parts = ln.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    if not inodes:
        return None
    pids = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            for fd in (d / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    pids.add(int(d.name))
                    break
        except OSError:
            continue
    if not pids:
        return None

    def ppid(p: int) -> int:
        try:
            return int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return 0

    tops = [p for p in pids if ppid(p) not in pids]
    return min(tops or pids)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_of(base: str) -> int:
    return urllib.parse.urlparse(base).port or 80


class Server:
    """A server under test: base URL, pid for RSS, and how to stop it (if we started it)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.base = ""
        self.pid: int | None = None
        self.started_by_us = False
        self.notes: list[str] = []
        self.startup_s: float | None = None

    def start(self) -> None: ...

    def stop(self) -> None: ...


def cached_install(src: Path, what: str) -> Path:
    """node_modules (npm ci) or .venv (cookiecutter) for the reference, cached across runs.

    The cache key is the reference's package-lock.json, so a different reference version gets
    its own install. Lives in $XDG_CACHE_HOME (or ~/.cache)/scaffolder-bench/.
    """
    import hashlib

    lock = (src / "package-lock.json").read_bytes()
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scaffolder-bench"
    d = root / f"reference-{hashlib.sha256(lock).hexdigest()[:12]}"
    target = d / what
    if target.is_dir():
        return target
    d.mkdir(parents=True, exist_ok=True)
    if what == "node_modules":
        for f in ("package.json", "package-lock.json"):
            shutil.copy(src / f, d / f)
        log(f"[upstream] npm ci into {d} (once; about 1 min) ...")
        cmd = ["npm", "ci", "--no-audit", "--no-fund"]
        subprocess.run(cmd, cwd=d, check=True, capture_output=True, timeout=900)
    else:
        log(f"[upstream] cookiecutter venv in {d} (once) ...")
        subprocess.run([sys.executable, "-m", "venv", str(target)], check=True, timeout=300)
        pip = [str(target / "bin" / "pip"), "install", "-q", "cookiecutter==2.7.1"]
        subprocess.run(pip, check=True, capture_output=True, timeout=600)
    return target


class Upstream(Server):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__("upstream")
        self.args = args
        self.dir: Path | None = None
        self.tmp: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.logf: Any = None
        self.logdir: Path | None = None
        self.via_start_sh = False

    def start(self) -> None:
        a = self.args
        hello = "/api/catalog/entities/by-name/template/default/hello-template"
        if a.upstream_base:
            self.base = a.upstream_base.rstrip("/")
            self.pid = a.upstream_pid or listener_pid(port_of(self.base))
            self.notes.append("already running (--upstream-base): not freshly started")
            return
        default_base = f"http://127.0.0.1:{UPSTREAM_PORT}"
        busy = http_status(default_base, hello) is not None
        if busy and a.reuse_upstream:
            self.base = default_base
            self.pid = a.upstream_pid or listener_pid(UPSTREAM_PORT)
            self.notes.append(
                f"reused the server already listening on {UPSTREAM_PORT} (--reuse-upstream): "
                "not freshly started, not stopped; its RSS includes earlier tasks"
            )
            log(f"[upstream] NOTE: port {UPSTREAM_PORT} already serves the reference; reusing it")
            return
        src = Path(a.reference_dir).resolve()
        self.prepare(src)
        if busy:
            self.start_private(src)
        else:
            self.start_sh(src)

    def prepare(self, src: Path) -> None:
        """Use src in place, or copy it to a temp dir (node_modules and .venv symlinked)."""
        a = self.args
        if a.reference_inplace:
            self.dir = src
            return
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-upstream-"))
        self.dir = self.tmp / "reference"
        shutil.copytree(
            src,
            self.dir,
            symlinks=True,
            ignore=shutil.ignore_patterns("node_modules", "run", ".venv"),
        )
        for p in [self.dir, *self.dir.rglob("*")]:
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o200)
        nm = Path(a.node_modules) if a.node_modules else src / "node_modules"
        if not nm.is_dir():
            nm = cached_install(src, "node_modules")
        (self.dir / "node_modules").symlink_to(nm.resolve())
        venv = src / ".venv"
        if not venv.is_dir() and not shutil.which("cookiecutter"):
            venv = cached_install(src, ".venv")
        if venv.is_dir():
            (self.dir / ".venv").symlink_to(venv.resolve())

    def start_sh(self, src: Path) -> None:
        a = self.args
        assert self.dir is not None
        log(f"[upstream] starting {self.dir}/start.sh")
        t0 = time.perf_counter()
        r = subprocess.run(
            [str(self.dir / "start.sh")],
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=a.ready_timeout + 240,
            check=False,
            env={**os.environ, "READY_TIMEOUT": str(int(a.ready_timeout))},
        )
        self.startup_s = time.perf_counter() - t0
        pidf = self.dir / "run" / "backend.pid"
        self.via_start_sh = self.started_by_us = pidf.exists()
        if r.returncode != 0 or not pidf.exists():
            raise RuntimeError(
                f"upstream start.sh failed ({r.returncode}): {(r.stdout + r.stderr)[-2000:]}"
            )
        self.pid = int(pidf.read_text().strip())
        self.base = f"http://127.0.0.1:{UPSTREAM_PORT}"
        self.notes.append(f"freshly started from {src} (start.sh ready in {self.startup_s:.1f} s)")

    def start_private(self, src: Path) -> None:
        """Port 7007 is taken (e.g. by a shared instance): run a fresh copy on a free port.

        start.sh cannot do this (its readiness check is hard-wired to 7007), so this runs what it
        runs, `NODE_ENV=production node src/index.js`, with Backstage's standard APP_CONFIG_*
        environment overrides for backend.listen.port and backend.baseUrl. No file is changed.
        """
        a = self.args
        assert self.dir is not None
        port = a.upstream_port or free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "NODE_ENV": os.environ.get("NODE_ENV", "production"),
            "APP_CONFIG_backend_listen_port": str(port),
            "APP_CONFIG_backend_baseUrl": self.base,
        }
        venv = self.dir / ".venv" / "bin"
        if venv.is_dir():
            env["PATH"] = f"{venv}:{env.get('PATH', '')}"
        self.logdir = Path(tempfile.mkdtemp(prefix="bench-upstream-log-"))
        self.logf = open(self.logdir / "backend.log", "wb")  # noqa: SIM115
        log(f"[upstream] {UPSTREAM_PORT} is taken: starting a fresh private copy on port {port}")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            ["node", "src/index.js"],
            cwd=self.dir,
            env=env,
            stdout=self.logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started_by_us = True
        self.pid = self.proc.pid
        deadline = t0 + a.ready_timeout
        for t in ("hello-template", "cookie-template", "slow-template"):
            path = f"/api/catalog/entities/by-name/template/default/{t}"
            while http_status(self.base, path, timeout=1) != 200:
                if self.proc.poll() is not None or time.perf_counter() > deadline:
                    tail = (self.logdir / "backend.log").read_bytes()[-2000:]
                    raise RuntimeError(
                        f"private upstream on {port} not ready (exit {self.proc.poll()}):\n"
                        + tail.decode("utf-8", "replace")
                    )
                time.sleep(0.1)
        self.startup_s = time.perf_counter() - t0
        self.notes.append(
            f"port {UPSTREAM_PORT} was taken, so a fresh private copy of {src} ran on port {port} "
            "(node src/index.js with APP_CONFIG_backend_listen_port/baseUrl overrides); "
            f"3 templates in the catalog after {self.startup_s:.1f} s"
        )

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGTERM)  # the session we created for it
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
            self.proc = None
        if self.logf:
            self.logf.close()
            self.logf = None
        if self.logdir:
            shutil.rmtree(self.logdir, ignore_errors=True)
            self.logdir = None
        if self.via_start_sh and self.dir:
            subprocess.run(
                [str(self.dir / "stop.sh")],
                cwd=self.dir,
                capture_output=True,
                timeout=60,
                check=False,
            )
            self.via_start_sh = False
        self.started_by_us = False
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


class Ours(Server):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__("ours")
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.tmp: Path | None = None
        self.logf = None

    def start(self) -> None:
        a = self.args
        if a.ours_base:
            self.base = a.ours_base.rstrip("/")
            self.pid = a.ours_pid or listener_pid(port_of(self.base))
            self.notes.append("already running (--ours-base): not freshly started")
            return
        exe = Path(a.repo) / ".venv" / "bin" / "scaffolder"
        if not exe.exists():
            raise RuntimeError(f"{exe} not found (pip install -e . first)")
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-ours-"))
        port = free_port()
        (self.tmp / "work").mkdir()
        cfg = self.tmp / "app-config.yaml"
        # Optional (other benches): catalog_target, a glob of template files, and
        # extra_config(tmp), YAML appended to the config (top-level keys not written here).
        target = getattr(a, "catalog_target", None) or (
            Path(a.repo).resolve() / "tests/fixtures/templates/*/template.yaml"
        )
        extra = getattr(a, "extra_config", None)
        cfg.write_text(
            "backend:\n"
            f"  baseUrl: http://127.0.0.1:{port}\n"
            f"  listen: {{host: 127.0.0.1, port: {port}}}\n"
            f"  database: {{connection: 'sqlite:///{self.tmp}/db.sqlite'}}\n"
            f"  workingDirectory: {self.tmp}/work\n"
            "  auth: {dangerouslyDisableDefaultAuthPolicy: true}\n"
            "catalog:\n"
            "  locations:\n"
            f"    - {{type: file, target: '{target}'}}\n" + (extra(self.tmp) if extra else "")
        )
        cmd = [str(exe), "serve", "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)]
        log(f"[ours] starting: {shlex.join(cmd)}")
        self.logf = open(self.tmp / "server.log", "wb")  # noqa: SIM115
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, cwd=self.tmp, stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started_by_us = True
        self.pid = self.proc.pid
        self.base = f"http://127.0.0.1:{port}"
        deadline = t0 + a.ready_timeout
        while http_status(self.base, "/.backstage/health/v1/readiness", timeout=1) != 200:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"our server exited with {self.proc.returncode} before ready:"
                    f"\n{self.log_tail()}"
                )
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"our server not ready after {a.ready_timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        self.startup_s = time.perf_counter() - t0
        # like upstream's start.sh: also wait (briefly) for the template to be in the catalog
        kind_ns_name = a.template.replace(":", "/", 1).split("/")
        ent = "/api/catalog/entities/by-name/" + "/".join(kind_ns_name)
        t1 = time.perf_counter()
        while http_status(self.base, ent, timeout=1) != 200 and time.perf_counter() - t1 < 10:
            time.sleep(0.05)
        self.notes.append(
            f"freshly started on port {port}, readiness 200 after {self.startup_s:.2f} s"
        )

    def log_tail(self, n: int = 3000) -> str:
        if not self.tmp:
            return ""
        try:
            return (self.tmp / "server.log").read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # the session we created for it
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.logf:
            self.logf.close()
            self.logf = None
        if self.tmp and not self.args.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


# ------------------------------------------------------------------------------ measurements
def summary(xs: list[float]) -> dict:
    ms = [round(x * 1000, 1) for x in xs]
    return {
        "n": len(xs),
        "median_ms": round(statistics.median(xs) * 1000, 1),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "all_ms": ms,
    }


def cpu_snapshot(pid: int | None) -> tuple[float, float, float, float]:
    """(wall s, machine busy s, server tree s, this bench process s) from /proc and os.times."""
    hz = os.sysconf("SC_CLK_TCK")
    f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f[:8])
    busy = (user + nice + system + irq + softirq + steal) / hz
    srv = 0.0
    if pid:
        out = subprocess.run(
            ["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, check=False
        ).stdout
        kids: dict[int, list[int]] = {}
        for ln in out.splitlines():
            p, pp = (int(x) for x in ln.split())
            kids.setdefault(pp, []).append(p)
        todo = [pid]
        while todo:
            p = todo.pop()
            todo.extend(kids.get(p, []))
            try:
                st = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                srv += sum(int(x) for x in st[11:15]) / hz  # utime stime cutime cstime
            except (OSError, IndexError, ValueError):
                pass
    t = os.times()
    return time.perf_counter(), busy, srv, t.user + t.system


def cpu_delta(a0: tuple, a1: tuple) -> dict:
    """Average cores used during [a0, a1] by the server, the bench client and everything else."""
    wall = a1[0] - a0[0]
    busy, srv, me = (a1[i] - a0[i] for i in (1, 2, 3))
    return {
        "wall_s": round(wall, 2),
        "server_cores": round(srv / wall, 2),
        "bench_client_cores": round(me / wall, 2),
        "other_cores": round(max(busy - srv - me, 0) / wall, 2),
    }


def wait_quiet(srv: Server, a: argparse.Namespace) -> dict:
    """Wait (up to --quiet-wait s) until other processes use < --quiet-cores for 1 s."""
    t0 = time.perf_counter()
    while True:
        s0 = cpu_snapshot(srv.pid)
        time.sleep(1)
        d = cpu_delta(s0, cpu_snapshot(srv.pid))
        other = d["other_cores"] + d["server_cores"]  # the server should be idle too
        waited = time.perf_counter() - t0
        if other < a.quiet_cores or waited >= a.quiet_wait:
            if other >= a.quiet_cores:
                log(
                    f"[{srv.name}] machine still busy after {waited:.0f} s "
                    f"({other:.2f} cores used by others); measuring anyway"
                )
            return {"waited_s": round(waited, 1), "others_cores_at_start": round(other, 2)}


def measure(srv: Server, a: argparse.Namespace, values: dict) -> dict:
    poll = a.poll_ms / 1000
    res: dict = {"base": srv.base, "pid": srv.pid, "errors": []}
    time.sleep(a.settle)
    res["rss_idle_after_start"] = tree_rss_kb(srv.pid)
    res["quiet"] = wait_quiet(srv, a)
    c = Client(srv.base, timeout=a.task_timeout)
    cpu0 = cpu_snapshot(srv.pid)

    def phase(name: str, fn) -> None:
        try:
            fn()
        except Exception as e:  # record it, carry on with the next phase
            msg = f"{name}: {type(e).__name__}: {e}"
            res["errors"].append(msg)
            log(f"[{srv.name}] ERROR {msg}")

    def warm() -> None:
        res["warmup_ms"] = round(run_task(c, a.template, values, poll, a.task_timeout) * 1000, 1)
        log(f"[{srv.name}] warm-up task: {res['warmup_ms']} ms")

    def seq() -> None:
        xs = []
        for _ in range(a.runs):
            xs.append(run_task(c, a.template, values, poll, a.task_timeout))
        res["sequential"] = summary(xs)
        log(
            f"[{srv.name}] {a.runs} sequential: median {res['sequential']['median_ms']} ms "
            f"({res['sequential']['min_ms']}-{res['sequential']['max_ms']})"
        )
        res["rss_after_sequential"] = tree_rss_kb(srv.pid)

    def conc() -> None:
        walls, per_task = [], []
        for r in range(a.rounds):
            times: list[float | None] = [None] * a.concurrent
            errors: list[str] = []
            barrier = threading.Barrier(a.concurrent + 1)

            def worker(
                i: int,
                times: list = times,
                errors: list = errors,
                barrier: threading.Barrier = barrier,
            ) -> None:
                cl = Client(srv.base, timeout=a.task_timeout)
                try:
                    cl.call("GET", "/.backstage/health/v1/readiness")  # open the connection
                    barrier.wait()
                    times[i] = run_task(cl, a.template, values, poll, a.task_timeout)
                except Exception as e:
                    errors.append(f"{type(e).__name__}: {e}")
                finally:
                    cl.close()

            ths = [
                threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.concurrent)
            ]
            for t in ths:
                t.start()
            barrier.wait(timeout=30)
            t0 = time.perf_counter()
            for t in ths:
                t.join(a.task_timeout + 30)
            wall = time.perf_counter() - t0
            if errors or any(x is None for x in times):
                raise RuntimeError(f"round {r + 1}: {errors or 'a worker did not finish'}")
            walls.append(wall)
            per_task += [x for x in times if x is not None]
            log(
                f"[{srv.name}] concurrent round {r + 1}: {a.concurrent} tasks all done in "
                f"{wall * 1000:.1f} ms"
            )
        res["concurrent"] = {
            "tasks": a.concurrent,
            "all_done": summary(walls),
            "per_task": summary(per_task),
        }
        res["rss_after_concurrent"] = tree_rss_kb(srv.pid)

    def sse() -> None:
        xs = []
        for _ in range(a.sse_runs):
            xs.append(run_sse(c, srv.base, a.template, values, a.task_timeout))
        res["sse"] = summary(xs)
        log(
            f"[{srv.name}] {a.sse_runs} SSE POST->completion: median {res['sse']['median_ms']} ms"
            f" ({res['sse']['min_ms']}-{res['sse']['max_ms']})"
        )

    phase("warm-up", warm)
    phase("sequential", seq)
    phase("concurrent", conc)
    phase("sse", sse)
    c.close()
    res["cpu"] = cpu_delta(cpu0, cpu_snapshot(srv.pid))
    log(f"[{srv.name}] CPU during the runs (average cores): {res['cpu']}")
    time.sleep(a.settle)
    res["rss_idle_after_runs"] = tree_rss_kb(srv.pid)
    for k in ("rss_idle_after_start", "rss_idle_after_runs"):
        v = res[k]
        log(
            f"[{srv.name}] {k}: {v['total_kb'] if v else None} KB"
            + (f" ({v['processes']} processes)" if v else "")
        )
    return res


# ------------------------------------------------------------------------------- reporting
METRICS = [  # key, label, getter, target key
    ("warmup", "warm-up task (ms, 1 run)", lambda r: r.get("warmup_ms"), None),
    (
        "sequential",
        "sequential task (ms, median)",
        lambda r: r.get("sequential", {}).get("median_ms"),
        "sequential",
    ),
    (
        "concurrent",
        "N at once, all done (ms, median of rounds)",
        lambda r: r.get("concurrent", {}).get("all_done", {}).get("median_ms"),
        "concurrent",
    ),
    (
        "sse",
        "POST -> SSE completion (ms, median)",
        lambda r: r.get("sse", {}).get("median_ms"),
        "sse",
    ),
    (
        "rss_start",
        "idle RSS after start (KB, process tree)",
        lambda r: (r.get("rss_idle_after_start") or {}).get("total_kb"),
        "rss",
    ),
    (
        "rss_after",
        "idle RSS after the runs (KB, process tree)",
        lambda r: (r.get("rss_idle_after_runs") or {}).get("total_kb"),
        "rss",
    ),
]


def minmax(r: dict, key: str) -> str:
    s = {
        "sequential": r.get("sequential"),
        "sse": r.get("sse"),
        "concurrent": r.get("concurrent", {}).get("all_done"),
    }.get(key)
    return f" ({fmt(s['min_ms'])} to {fmt(s['max_ms'])})" if s else ""


def parse_targets(s: str) -> dict[str, float]:
    out = {}
    for part in filter(None, (p.strip() for p in s.split(","))):
        k, v = part.split("=")
        out[k.strip()] = float(v)
    return out


def compare(servers: dict, targets: dict[str, float], concurrent: int = 8) -> dict:
    out = {}
    up, ours = servers.get("upstream"), servers.get("ours")
    for key, label, get, tkey in METRICS:
        u = get(up) if up else None
        o = get(ours) if ours else None
        ratio = round(o / u, 3) if (u and o is not None) else None
        t = targets.get(tkey) if tkey else None
        ok = None if (ratio is None or t is None) else ratio <= t
        if key == "rss_after" and any(x and x.get("errors") for x in (up, ours)):
            ok = None  # "after the runs" means little if tasks failed
        out[key] = {
            "label": label.replace("N at once", f"{concurrent} at once"),
            "upstream": u,
            "ours": o,
            "ratio": ratio,
            "target": t,
            "pass": ok,
        }
    return out


def cmd_version(cmd: list[str]) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
        return (r.stdout or r.stderr).strip().splitlines()[0] if r.returncode == 0 else None
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


def machine(a: argparse.Namespace) -> dict:
    cpu = None
    try:
        m = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = m.group(1).strip() if m else None
        mem = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
        mem_gib = round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None
    except OSError:
        mem_gib = None
    rev = cmd_version(["git", "-C", str(a.repo), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(a.repo), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "mem_gib": mem_gib,
        "kernel": platform.release(),
        "python_bench": platform.python_version(),
        "python_ours": (
            cmd_version([str(Path(a.repo) / ".venv/bin/python"), "--version"]) or ""
        ).replace("Python ", "")
        or None,
        "node": cmd_version(["node", "--version"]),
        "repo_commit": (rev + ("+dirty-src" if dirty else "")) if rev else None,
    }


def fmt(v: object, ratio: bool = False) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}" if ratio else f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def markdown(doc: dict) -> str:
    m, cmp_, srv = doc["machine"], doc["comparison"], doc["servers"]
    lines = [
        f"## {doc['template']}" + (f" ({doc['label']})" if doc.get("label") else ""),
        "",
        f"- date: {doc['date']} (run took {doc['duration_s']} s)",
        f"- machine: {m['nproc']} cores ({m['cpu']}), {m['mem_gib']} GiB, kernel {m['kernel']}; "
        f"node {m['node']}; python {m['python_ours']} (ours), {m['python_bench']} (bench client); "
        f"repo {m['repo_commit']}",
        f"- command: `{doc['command']}`",
        f"- values: `{json.dumps(doc['values'])}`; {doc['params']['runs']} sequential, "
        f"{doc['params']['rounds']}x{doc['params']['concurrent']} concurrent, "
        f"{doc['params']['sse_runs']} SSE runs, poll {doc['params']['poll_ms']} ms",
        "",
        "| measurement | upstream | ours | ours/upstream | target | result |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, c in cmp_.items():
        u_mm = minmax(srv.get("upstream", {}), key)
        o_mm = minmax(srv.get("ours", {}), key)
        res = "" if c["pass"] is None else ("PASS" if c["pass"] else "FAIL")
        lines.append(
            f"| {c['label']} | {fmt(c['upstream'])}{u_mm} | {fmt(c['ours'])}{o_mm} | "
            f"{fmt(c['ratio'], True)} | {'≤ ' + format(c['target'], 'g') if c['target'] else ''} | "
            f"{res} |"
        )
    lines.append("")
    for name, s in srv.items():
        for n in s.get("notes", []):
            lines.append(f"- {name}: {n}")
        cpu, q = s.get("cpu"), s.get("quiet")
        if cpu and q:
            lines.append(
                f"- {name}: average cores used during its runs: server {cpu['server_cores']}, "
                f"bench client {cpu['bench_client_cores']}, **other processes "
                f"{cpu['other_cores']}** (waited {q['waited_s']} s for a quiet machine; "
                f"{q['others_cores_at_start']} cores busy when it started)"
            )
        for e in s.get("errors", []):
            lines.append(f"- **{name} ERROR**: {e}")
    for n in doc.get("notes", []):
        lines.append(f"- {n}")
    lines.append(f"- raw figures: `bench/results/{doc['file']}`")
    return "\n".join(lines) + "\n"


def write_latest(doc: dict) -> Path:
    path = RESULTS / "latest.md"
    head = (
        "# Benchmark results: ours vs upstream Backstage (latest run per template)\n\n"
        "Written by `bench/bench_tasks.py`; see `bench/README.md` for what is measured. "
        "Ratios are ours/upstream of the medians (lower is better for ours).\n\n"
    )
    body = markdown(doc)
    name = doc["template"] + (f" {doc['label']}" if doc.get("label") else "")
    begin, end = f"<!-- BEGIN {name} -->\n", f"<!-- END {name} -->\n"
    text = path.read_text() if path.exists() else head
    block = begin + body + end
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------- main
def rel(p: str) -> str:
    try:
        return (
            os.path.relpath(os.path.abspath(p), REPO)
            if os.path.abspath(p).startswith(str(REPO) + os.sep)
            else p
        )
    except ValueError:
        return p


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--template", default="template:default/hello-template")
    ap.add_argument(
        "--values",
        help="JSON object of template values (default: per template, "
        "as upstream's bench.py/README)",
    )
    ap.add_argument("--upstream-base", help="use this already running upstream (not stopped)")
    ap.add_argument("--upstream-pid", type=int, help="pid for upstream RSS (default: listener)")
    ap.add_argument(
        "--reuse-upstream",
        action="store_true",
        help=f"if something already serves the reference on {UPSTREAM_PORT}, measure it instead "
        "of starting a fresh private copy on another port",
    )
    ap.add_argument("--upstream-port", type=int, help="port for the private copy (default: free)")
    ap.add_argument(
        "--reference-dir",
        default=str(DEFAULT_REFERENCE),
        help="upstream reference folder (copied to a temp dir unless --reference-inplace)",
    )
    ap.add_argument(
        "--reference-inplace",
        action="store_true",
        help="run start.sh/stop.sh in --reference-dir itself (a writable copy)",
    )
    ap.add_argument(
        "--node-modules",
        help="existing node_modules to symlink into the temp copy "
        "(default: the reference dir's, if any; else npm ci)",
    )
    ap.add_argument("--ours-base", help="use this already running server of ours (not stopped)")
    ap.add_argument("--ours-pid", type=int, help="pid for our RSS (default: listener)")
    ap.add_argument("--repo", default=str(REPO), help="our repo (uses <repo>/.venv/bin/scaffolder)")
    ap.add_argument("--only", choices=["upstream", "ours"], help="measure one server only")
    ap.add_argument("--order", default="upstream,ours")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--concurrent", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sse-runs", type=int, default=10)
    ap.add_argument("--poll-ms", type=float, default=5)
    ap.add_argument(
        "--settle", type=float, default=2.0, help="seconds idle before each RSS sample (default 2)"
    )
    ap.add_argument("--task-timeout", type=float, default=60)
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=60,
        help="wait up to this many s for other load to drop before each server",
    )
    ap.add_argument(
        "--quiet-cores",
        type=float,
        default=0.25,
        help="'quiet' = other processes use fewer cores than this (1 s sample)",
    )
    ap.add_argument("--ready-timeout", type=float, default=90)
    ap.add_argument("--targets", default=DEFAULT_TARGETS)
    ap.add_argument("--keep-tmp", action="store_true", help="keep our server's temp dir + log")
    ap.add_argument(
        "--label",
        help="suffix for the results file and its own section in latest.md (e.g. poll20)",
    )
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    a = ap.parse_args()

    values = json.loads(a.values) if a.values else DEFAULT_VALUES.get(a.template)
    if not isinstance(values, dict):
        ap.error(f"no default values for {a.template}; pass --values")
    if a.label and not re.fullmatch(r"[A-Za-z0-9_.-]+", a.label):
        ap.error("--label may only use letters, digits, '_', '.' and '-'")
    targets = parse_targets(a.targets)
    order = [s.strip() for s in a.order.split(",") if s.strip()]
    if a.only:
        order = [a.only]
    t_start = time.perf_counter()
    started = _dt.datetime.now().astimezone()
    servers: dict[str, dict] = {}
    failed = False
    for name in order:
        srv: Server = Upstream(a) if name == "upstream" else Ours(a)
        try:
            try:
                srv.start()
                log(f"[{name}] base {srv.base} pid {srv.pid}")
                res = measure(srv, a, values)
            except Exception as e:
                res = {"base": srv.base, "pid": srv.pid, "errors": [f"start: {e}"]}
                log(f"[{name}] ERROR start: {e}")
            if name == "ours" and res["errors"] and isinstance(srv, Ours):
                tail = srv.log_tail(2000)
                if tail:
                    res["server_log_tail"] = tail
                    log(f"[ours] server log tail:\n{tail}")
        finally:
            srv.stop()
        res["notes"] = srv.notes
        res["startup_s"] = round(srv.startup_s, 2) if srv.startup_s else None
        servers[name] = res
        failed = failed or bool(res["errors"])

    cmp_ = compare(servers, targets, a.concurrent)
    log(f"\n{'measurement':<46} {'upstream':>14} {'ours':>14} {'ratio':>8} {'target':>8}")
    for c in cmp_.values():
        res_s = "" if c["pass"] is None else ("PASS" if c["pass"] else "FAIL")
        tgt = "<= " + format(c["target"], "g") if c["target"] else ""
        log(
            f"{c['label']:<46} {fmt(c['upstream']):>14} {fmt(c['ours']):>14} "
            f"{fmt(c['ratio'], True):>8} {tgt:>8} {res_s}"
        )

    tname = a.template.rsplit("/", 1)[-1]
    fname = f"{started.date().isoformat()}-{tname}" + (f"-{a.label}" if a.label else "") + ".json"
    doc = {
        "date": started.isoformat(timespec="seconds"),
        "template": a.template,
        "label": a.label,
        "values": values,
        "file": fname,
        "command": shlex.join([rel(sys.executable), rel(sys.argv[0]), *sys.argv[1:]]),
        "params": {
            k: getattr(a, k)
            for k in (
                "runs",
                "concurrent",
                "rounds",
                "sse_runs",
                "poll_ms",
                "settle",
                "task_timeout",
            )
        },
        "targets": targets,
        "machine": machine(a),
        "servers": servers,
        "comparison": cmp_,
        "duration_s": round(time.perf_counter() - t_start, 1),
        "notes": [
            "Servers are measured one after the other (order: "
            + ",".join(order)
            + "); RSS is the sum over the server's process tree (ps -o rss)."
        ],
    }
    if not a.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / fname).write_text(json.dumps(doc, indent=2) + "\n")
        md = write_latest(doc)
        log(f"\nwrote {RESULTS / fname} and {md}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
