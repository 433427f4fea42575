#!/usr/bin/env python3
"""Compare our embedded catalog with upstream Backstage's catalog on 10,000 entities.

  .venv/bin/python bench/bench_catalog.py [--entities 10000] [--files 100] [--seed 7]
      [--order upstream,ours] [--only upstream|ours] [--lookups 500] [--repeats 30]
      [--ingest-timeout 900] [--reference-dir DIR] [--node-modules DIR] [--no-write]
      [--install-only]

One run, same machine, same files. The script generates ``--entities`` entities (groups with
parents, users with memberships, systems, APIs, components that own, provide, consume and
depend) as multi-document catalog files (JSON documents, which are YAML) under a temp
directory, with a root ``Location`` listing them, and serves them on a loopback
``http.server`` port. Then, for each server in turn (each freshly started on a free port,
measured alone, stopped before the next one starts):

* **upstream**: a private copy of the reference backend (``/work/shared/backstage/reference``,
  Backstage's catalog 4.0.5 on in-memory SQLite), ``node src/index.js`` with
  ``APP_CONFIG_*`` overrides for its port and a ``backend.reading.allow`` holding the file
  server. ``node_modules`` come from the reference or bench_tasks.py's cache (``npm ci`` once);
* **ours**: ``scaffolder serve`` with SQLite in a temp directory, the same allow-list;

it registers the root over ``POST /api/catalog/locations`` (``type: url``) and measures:

* **ingestion**: from that POST until ``GET /entities/by-query`` with the bench's label
  filter counts every entity (polled every 0.2 s);
* then, once the server is idle: **by-name** (``--lookups`` random entities, one after the
  other on a keep-alive connection: p50 and p99), a **by-query page** of 200 components with
  a filter, ordered by name (``--repeats`` times), **entity-facets** (types, tags and
  lifecycles of components) and **by-refs** (100 refs, two of them missing).

Answers are checked to be the same on both servers (totals, facets, which refs are missing).
Ratios are ours/upstream; the targets: ingestion, the by-query page and by-name p99 at most
0.5, by-name p50, facets and by-refs at most 1. Results go to ``bench/results/<date>-catalog
.json`` and the ``catalog`` section of ``bench/results/latest.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import http.client
import http.server
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_tasks as bt  # noqa: E402 - the sibling script's process and machine helpers

REPO = HERE.parent
RESULTS = HERE / "results"
CATALOG = "/api/catalog"
LABEL_FILTER = "metadata.labels.bench=catalog"
TARGETS = {
    "ingest_s": 0.5,
    "by_query_p50_ms": 0.5,
    "by_name_p99_ms": 0.5,
    "by_name_p50_ms": 1.0,
    "facets_p50_ms": 1.0,
    "by_refs_p50_ms": 1.0,
}
QUERY_PAGE = (
    f"{CATALOG}/entities/by-query?filter=kind=component,spec.lifecycle=production"
    "&limit=200&orderField=metadata.name,asc"
)
FACETS = (
    f"{CATALOG}/entity-facets?facet=spec.type&facet=metadata.tags&facet=spec.lifecycle"
    "&filter=kind=component"
)
log = bt.log


# ------------------------------------------------------------------------------- the entities
def generate(root: Path, count: int, files: int, seed: int) -> list[str]:
    """Write ``count`` entities in ``files`` files plus ``catalog-root.yaml``; their refs."""
    rng = random.Random(seed)
    n_groups = max(count // 100, 2)
    n_users = count // 5
    n_systems = max(count // 50, 1)
    n_apis = count // 5
    n_components = count - n_groups - n_users - n_systems - n_apis
    tags = [f"tag-{i:02d}" for i in range(30)]
    groups = [f"team-{i:03d}" for i in range(n_groups)]
    systems = [f"system-{i:03d}" for i in range(n_systems)]
    apis = [f"api-{i:05d}" for i in range(n_apis)]
    components = [f"svc-{i:05d}" for i in range(n_components)]

    def entity(kind: str, name: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
        metadata = {"name": name, "labels": {"bench": "catalog"}, **meta}
        return {"apiVersion": "backstage.io/v1alpha1", "kind": kind, "metadata": metadata,
                "spec": spec}  # fmt: skip

    docs: list[dict[str, Any]] = []
    for i, name in enumerate(groups):
        spec: dict[str, Any] = {"type": "team", "children": [], "profile": {"displayName": name}}
        if i >= 10:
            spec["parent"] = groups[(i - 10) // 9]
        docs.append(entity("Group", name, spec, description=f"Team {i}"))
    for i in range(n_users):
        member = rng.sample(groups, 2 if i % 3 == 0 else 1)
        profile = {"displayName": f"User {i}", "email": f"user-{i:05d}@example.com"}
        docs.append(entity("User", f"user-{i:05d}", {"profile": profile, "memberOf": member}))
    for name in systems:
        docs.append(entity("System", name, {"owner": f"group:{rng.choice(groups)}"}))
    for i, name in enumerate(apis):
        definition = f"openapi: 3.0.0\ninfo: {{title: {name}, version: '1'}}\npaths: {{}}\n"
        spec = {
            "type": rng.choice(["openapi", "grpc", "asyncapi"]),
            "lifecycle": rng.choice(["production", "experimental", "deprecated"]),
            "owner": f"group:{rng.choice(groups)}",
            "system": rng.choice(systems),
            "definition": definition,
        }
        docs.append(entity("API", name, spec, description=f"API {i}"))
    for i, name in enumerate(components):
        spec = {
            "type": rng.choice(["service", "service", "website", "library"]),
            "lifecycle": rng.choice(["production", "production", "experimental", "deprecated"]),
            "owner": f"group:{rng.choice(groups)}",
            "system": rng.choice(systems),
            "providesApis": [apis[i]] if i < n_apis else [],
            "consumesApis": rng.sample(apis, 2),
            "dependsOn": [f"component:{rng.choice(components)}"],
        }
        annotations = {"github.com/project-slug": f"acme/{name}"}
        docs.append(
            entity("Component", name, spec, tags=rng.sample(tags, 2), annotations=annotations)
        )
    rng.shuffle(docs)
    (root / "entities").mkdir(parents=True)
    targets = []
    per_file = math.ceil(len(docs) / files)
    for f in range(files):
        part = docs[f * per_file : (f + 1) * per_file]
        if not part:
            break
        name = f"entities/part-{f:03d}.yaml"
        (root / name).write_text("\n---\n".join(json.dumps(d) for d in part) + "\n")
        targets.append(f"./{name}")
    location = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Location",
        "metadata": {"name": "bench-root"},
        "spec": {"targets": targets},
    }
    (root / "catalog-root.yaml").write_text(json.dumps(location) + "\n")
    return [f"{d['kind'].lower()}:default/{d['metadata']['name']}" for d in docs]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


# -------------------------------------------------------------------------------------- HTTP
class Client:
    """One keep-alive connection; ``call`` returns (status, body bytes, seconds)."""

    def __init__(self, base: str, timeout: float = 120) -> None:
        self.base = base
        self.timeout = timeout
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        u = base_parts(self.base)
        return http.client.HTTPConnection(u[0], u[1], timeout=self.timeout)

    def call(self, method: str, path: str, body: object = None) -> tuple[int, bytes, float]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in range(2):
            try:
                t0 = time.perf_counter()
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
                return response.status, raw, time.perf_counter() - t0
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = self._connect()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: object = None) -> Any:
        status, raw, _ = self.call(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path} -> {status} {raw[:300]!r}")
        return json.loads(raw or b"null")

    def close(self) -> None:
        self.conn.close()


def base_parts(base: str) -> tuple[str, int]:
    host, _, port = base.removeprefix("http://").partition(":")
    return host, int(port or 80)


def percentile(xs: list[float], p: float) -> float:
    """Nearest-rank percentile, in ms."""
    ordered = sorted(xs)
    return round(ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)] * 1000, 2)


def stats(xs: list[float]) -> dict[str, Any]:
    return {
        "n": len(xs),
        "p50_ms": percentile(xs, 50),
        "p90_ms": percentile(xs, 90),
        "p99_ms": percentile(xs, 99),
        "mean_ms": round(statistics.fmean(xs) * 1000, 2),
        "max_ms": round(max(xs) * 1000, 2),
    }


# ----------------------------------------------------------------------------------- servers
class Server:
    """A server under test that this script started (and stops)."""

    name = ""

    def __init__(self, args: argparse.Namespace, files_host: str) -> None:
        self.args = args
        self.files_host = files_host
        self.base = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-catalog-{self.name}-"))
        self.startup_s: float | None = None
        self.notes: list[str] = []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None: ...

    def _spawn(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.logf = (self.tmp / "server.log").open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=self.logf, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def _wait(self, path: str, t0: float) -> None:
        deadline = t0 + self.args.ready_timeout
        while bt.http_status(self.base, path, timeout=1) != 200:
            assert self.proc is not None
            if self.proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        self.startup_s = time.perf_counter() - t0

    def log_tail(self) -> str:
        try:
            return (self.tmp / "server.log").read_bytes()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # the session we created for it
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)


def node_modules(args: argparse.Namespace) -> Path:
    src = Path(args.reference_dir)
    if args.node_modules:
        return Path(args.node_modules)
    if (src / "node_modules").is_dir():
        return src / "node_modules"
    return bt.cached_install(src, "node_modules")


class Upstream(Server):
    name = "upstream"

    def start(self) -> None:
        src = Path(self.args.reference_dir).resolve()
        copy = self.tmp / "reference"
        shutil.copytree(
            src, copy, symlinks=True,
            ignore=shutil.ignore_patterns("node_modules", "run", ".venv"),
        )  # fmt: skip
        for p in [copy, *copy.rglob("*")]:
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o200)
        (copy / "node_modules").symlink_to(node_modules(self.args).resolve())
        port = bt.free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "NODE_ENV": "production",
            "BACKSTAGE_REF_NO_COOKIECUTTER": "1",
            "APP_CONFIG_backend_listen_port": str(port),
            "APP_CONFIG_backend_baseUrl": self.base,
            "APP_CONFIG_backend_reading_allow": json.dumps([{"host": self.files_host}]),
        }
        log(f"[upstream] starting a private copy of {src} on port {port}")
        t0 = time.perf_counter()
        self._spawn(["node", "src/index.js"], copy, env)
        self._wait(f"{CATALOG}/entities/by-name/template/default/hello-template", t0)
        self.notes.append(
            f"a fresh private copy of {src} on port {port} (node src/index.js, APP_CONFIG_* "
            f"overrides for the port and backend.reading.allow); ready in {self.startup_s:.1f} s"
        )


class Ours(Server):
    name = "ours"

    def start(self) -> None:
        exe = REPO / ".venv" / "bin" / "scaffolder"
        port = bt.free_port()
        self.base = f"http://127.0.0.1:{port}"
        (self.tmp / "work").mkdir()
        templates = REPO / "tests" / "fixtures" / "templates" / "*" / "template.yaml"
        config = {
            "backend": {
                "baseUrl": self.base,
                "listen": {"host": "127.0.0.1", "port": port},
                "database": {"connection": f"sqlite:///{self.tmp}/db.sqlite"},
                "workingDirectory": str(self.tmp / "work"),
                "auth": {"dangerouslyDisableDefaultAuthPolicy": True},
                "reading": {"allow": [{"host": self.files_host}]},
            },
            "catalog": {"locations": [{"type": "file", "target": str(templates)}]},
        }
        (self.tmp / "app-config.yaml").write_text(json.dumps(config))
        cmd = [str(exe), "serve", "--config", str(self.tmp / "app-config.yaml")]
        log(f"[ours] starting scaffolder serve on port {port}")
        t0 = time.perf_counter()
        self._spawn([*cmd, "--host", "127.0.0.1", "--port", str(port)], self.tmp, dict(os.environ))
        self._wait(f"{CATALOG}/entities/by-name/template/default/hello-template", t0)
        self.notes.append(
            f"freshly started on port {port} (scaffolder serve, SQLite file); "
            f"ready in {self.startup_s:.1f} s"
        )


# --------------------------------------------------------------------------------- measuring
def count(client: Client) -> int:
    body = client.json("GET", f"{CATALOG}/entities/by-query?filter={LABEL_FILTER}&limit=1")
    return int(body["totalItems"])


def wait_idle(srv: Server, limit: float) -> dict[str, Any]:
    """Wait (up to ``limit`` s) until the server and the rest of the machine are quiet."""
    t0 = time.perf_counter()
    while True:
        s0 = bt.cpu_snapshot(srv.pid)
        time.sleep(1)
        d = bt.cpu_delta(s0, bt.cpu_snapshot(srv.pid))
        waited = time.perf_counter() - t0
        if (d["server_cores"] < 0.05 and d["other_cores"] < 0.3) or waited >= limit:
            return {"waited_s": round(waited, 1), **d}


def measure(srv: Server, args: argparse.Namespace, root_url: str, refs: list[str]) -> dict:
    rng = random.Random(args.seed + 1)
    lookups = rng.sample(refs, min(args.lookups, len(refs)))
    by_refs = [*rng.sample(refs, 98), "component:default/missing-1", "api:default/missing-2"]
    client = Client(srv.base)
    res: dict[str, Any] = {"base": srv.base, "startup_s": srv.startup_s}
    try:
        res["idle_before"] = wait_idle(srv, 30)
        c0 = bt.cpu_snapshot(srv.pid)
        t0 = time.perf_counter()
        status, raw, _ = client.call(
            "POST", f"{CATALOG}/locations", {"type": "url", "target": root_url}
        )
        res["post_locations"] = {"status": status, "s": round(time.perf_counter() - t0, 3)}
        if status != 201:
            raise RuntimeError(f"POST /locations -> {status} {raw[:300]!r}")
        seen = 0
        while (seen := count(client)) < len(refs):
            if time.perf_counter() - t0 > args.ingest_timeout:
                raise RuntimeError(f"only {seen} of {len(refs)} entities after the timeout")
            time.sleep(0.2)
        res["ingest_s"] = round(time.perf_counter() - t0, 2)
        res["ingest_cpu"] = bt.cpu_delta(c0, bt.cpu_snapshot(srv.pid))
        log(f"[{srv.name}] {seen} entities queryable after {res['ingest_s']} s")
        res["rss_after_ingest"] = bt.tree_rss_kb(srv.pid)
        res["idle_after_ingest"] = wait_idle(srv, args.settle_timeout)

        # The reads take seconds; a burst of other work on this shared machine during them
        # moves the figures. Repeat them (at most --read-attempts times) while other processes
        # used more than --quiet-cores, and keep the quietest attempt.
        attempts = []
        for _ in range(args.read_attempts):
            attempts.append(reads(client, srv, args, lookups, by_refs))
            if attempts[-1]["reads_cpu"]["other_cores"] <= args.quiet_cores:
                break
            wait_idle(srv, args.settle_timeout)
        res.update(min(attempts, key=lambda a: a["reads_cpu"]["other_cores"]))
        res["read_attempts_other_cores"] = [a["reads_cpu"]["other_cores"] for a in attempts]
        res["rss_after_reads"] = bt.tree_rss_kb(srv.pid)
    finally:
        client.close()
    return res


def reads(
    client: Client, srv: Server, args: argparse.Namespace, lookups: list[str], by_refs: list[str]
) -> dict[str, Any]:
    """One attempt at the read measurements, and the cores used meanwhile."""
    res: dict[str, Any] = {}
    c1 = bt.cpu_snapshot(srv.pid)
    for ref in lookups[:20]:  # warm-up, not counted
        client.call("GET", by_name_path(ref))
    times = []
    for ref in lookups:
        status, raw, took = client.call("GET", by_name_path(ref))
        if status != 200:
            raise RuntimeError(f"by-name {ref} -> {status} {raw[:200]!r}")
        times.append(took)
    res["by_name"] = stats(times)
    first = client.json("GET", QUERY_PAGE)
    res["by_query_check"] = {"items": len(first["items"]), "totalItems": first["totalItems"]}
    res["by_query"] = stats(repeat(client, "GET", QUERY_PAGE, None, args.repeats))
    res["facets_check"] = client.json("GET", FACETS)
    res["facets"] = stats(repeat(client, "GET", FACETS, None, args.repeats))
    items = client.json("POST", f"{CATALOG}/entities/by-refs", {"entityRefs": by_refs})
    res["by_refs_check"] = [i is None for i in items["items"]]
    body = {"entityRefs": by_refs}
    res["by_refs"] = stats(
        repeat(client, "POST", f"{CATALOG}/entities/by-refs", body, args.repeats)
    )
    res["reads_cpu"] = bt.cpu_delta(c1, bt.cpu_snapshot(srv.pid))
    return res


def by_name_path(ref: str) -> str:
    kind, rest = ref.split(":", 1)
    namespace, name = rest.split("/", 1)
    return f"{CATALOG}/entities/by-name/{kind}/{namespace}/{name}"


def repeat(client: Client, method: str, path: str, body: object, n: int) -> list[float]:
    client.call(method, path, body)  # warm-up
    times = []
    for _ in range(n):
        status, raw, took = client.call(method, path, body)
        if status != 200:
            raise RuntimeError(f"{method} {path} -> {status} {raw[:200]!r}")
        times.append(took)
    return times


def figures(res: dict[str, Any]) -> dict[str, float | None]:
    def get(*keys: str) -> float | None:
        value: Any = res
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return float(value)

    return {
        "ingest_s": get("ingest_s"),
        "by_name_p50_ms": get("by_name", "p50_ms"),
        "by_name_p99_ms": get("by_name", "p99_ms"),
        "by_query_p50_ms": get("by_query", "p50_ms"),
        "facets_p50_ms": get("facets", "p50_ms"),
        "by_refs_p50_ms": get("by_refs", "p50_ms"),
    }


def compare(results: dict[str, dict]) -> dict[str, dict[str, Any]]:
    ours = figures(results.get("ours", {}))
    theirs = figures(results.get("upstream", {}))
    out = {}
    for key, target in TARGETS.items():
        a, b = ours[key], theirs[key]
        ratio = round(a / b, 3) if a is not None and b else None
        out[key] = {
            "upstream": b,
            "ours": a,
            "ratio": ratio,
            "target": target,
            "pass": None if ratio is None else ratio <= target,
        }
    return out


def consistency(results: dict[str, dict]) -> list[str]:
    """Where the two catalogs answered differently (they should not)."""
    if "ours" not in results or "upstream" not in results:
        return []
    problems = []
    for key in ("by_query_check", "facets_check", "by_refs_check"):
        if results["ours"].get(key) != results["upstream"].get(key):
            problems.append(key)
    return problems


# ---------------------------------------------------------------------------------- reporting
LABELS = {
    "ingest_s": "ingestion: POST /locations until all queryable (s)",
    "by_name_p50_ms": "GET /entities/by-name, p50 (ms)",
    "by_name_p99_ms": "GET /entities/by-name, p99 (ms)",
    "by_query_p50_ms": "GET /entities/by-query, page of 200 with a filter, p50 (ms)",
    "facets_p50_ms": "GET /entity-facets (3 facets, filtered), p50 (ms)",
    "by_refs_p50_ms": "POST /entities/by-refs (100 refs), p50 (ms)",
}


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "## catalog: 10,000 entities"
        if doc["entities"] == 10000
        else f"## catalog: {doc['entities']} entities",
        "",
        f"- date: {doc['date']} (run took {doc['run_s']:.0f} s)",
        f"- machine: {doc['machine']['nproc']} cores ({doc['machine']['cpu']}); node "
        f"{doc['machine']['node']}; repo {doc['machine']['repo_commit']}",
        f"- command: `{doc['command']}`",
        f"- data: {doc['entities']} entities in {doc['files']} files behind one root Location, "
        f"served over loopback HTTP; {doc['lookups']} by-name lookups, {doc['repeats']} runs of "
        "the others",
        "",
        "| measurement | upstream | ours | ours/upstream | target | result |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, row in doc["comparison"].items():
        result = "" if row["pass"] is None else ("PASS" if row["pass"] else "FAIL")
        lines.append(
            f"| {LABELS[key]} | {fmt(row['upstream'])} | {fmt(row['ours'])} | "
            f"{fmt(row['ratio'])} | ≤ {row['target']:g} | {result} |"
        )
    lines.append("")
    for name, res in doc["servers"].items():
        for note in res.get("notes", []):
            lines.append(f"- {name}: {note}")
        cpu = res.get("ingest_cpu")
        if cpu:
            lines.append(
                f"- {name}: cores used during ingestion: server {cpu['server_cores']}, bench "
                f"client and file server {cpu['bench_client_cores']}, **other processes "
                f"{cpu['other_cores']}**"
            )
        cpu = res.get("reads_cpu")
        if cpu:
            lines.append(
                f"- {name}: cores used during the reads: server {cpu['server_cores']}, **other "
                f"processes {cpu['other_cores']}** (attempts: "
                f"{', '.join(str(c) for c in res.get('read_attempts_other_cores', []))})"
            )
        rss = res.get("rss_after_reads") or {}
        if rss:
            lines.append(f"- {name}: RSS after the reads {rss.get('total_kb', 0):,} KB")
        if res.get("error"):
            lines.append(f"- {name}: **error**: {res['error']}")
    if doc["inconsistent"]:
        lines.append(f"- **the catalogs answered differently**: {', '.join(doc['inconsistent'])}")
    else:
        lines.append("- both catalogs gave the same totals, facets and by-refs answers")
    lines.append(f"- raw figures: `bench/results/{doc['file']}`")
    return "\n".join(lines) + "\n"


def fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
    return str(value)


def write_latest(doc: dict[str, Any]) -> Path:
    path = RESULTS / "latest.md"
    begin, end = "<!-- BEGIN catalog -->\n", "<!-- END catalog -->\n"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    block = begin + markdown(doc) + end
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entities", type=int, default=10000)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--order", default="upstream,ours")
    ap.add_argument("--only", choices=["upstream", "ours"])
    ap.add_argument("--lookups", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--read-attempts", type=int, default=3)
    ap.add_argument("--quiet-cores", type=float, default=0.25)
    ap.add_argument("--ingest-timeout", type=float, default=900)
    ap.add_argument("--settle-timeout", type=float, default=120)
    ap.add_argument("--ready-timeout", type=float, default=120)
    ap.add_argument("--reference-dir", default=str(bt.DEFAULT_REFERENCE))
    ap.add_argument("--node-modules")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--install-only", action="store_true", help="install node_modules, exit")
    args = ap.parse_args()
    args.repo = REPO
    if args.install_only:
        log(f"node_modules: {node_modules(args)}")
        return 0

    started = time.perf_counter()
    data = Path(tempfile.mkdtemp(prefix="bench-catalog-data-"))
    refs = generate(data, args.entities, args.files, args.seed)
    log(f"generated {len(refs)} entities in {args.files} files under {data}")
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(data)))
    threading.Thread(target=files.serve_forever, daemon=True).start()
    files_host = f"127.0.0.1:{files.server_address[1]}"
    root_url = f"http://{files_host}/catalog-root.yaml"

    order = [args.only] if args.only else args.order.split(",")
    results: dict[str, dict[str, Any]] = {}
    exit_code = 0
    try:
        for name in order:
            srv: Server = (Upstream if name == "upstream" else Ours)(args, files_host)
            try:
                srv.start()
                results[name] = measure(srv, args, root_url, refs)
            except Exception as exc:  # report it and go on with the other server
                log(f"[{name}] FAILED: {exc}\n{srv.log_tail()[-1500:]}")
                results[name] = {"error": str(exc)[:2000]}
                exit_code = 1
            finally:
                results[name]["notes"] = srv.notes
                srv.stop()
    finally:
        files.shutdown()
        files.server_close()
        shutil.rmtree(data, ignore_errors=True)

    today = _dt.date.today().isoformat()
    doc = {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "run_s": round(time.perf_counter() - started, 1),
        "command": " ".join([".venv/bin/python", "bench/bench_catalog.py", *sys.argv[1:]]),
        "machine": bt.machine(args),
        "entities": len(refs),
        "files": args.files,
        "lookups": args.lookups,
        "repeats": args.repeats,
        "servers": results,
        "comparison": compare(results),
        "inconsistent": consistency(results),
        "file": f"{today}-catalog.json",
    }
    for key, row in doc["comparison"].items():
        verdict = "" if row["pass"] is None else ("PASS" if row["pass"] else "FAIL")
        log(
            f"{LABELS[key]}: upstream {fmt(row['upstream'])}, ours {fmt(row['ours'])}, "
            f"ratio {fmt(row['ratio'])} (target ≤ {row['target']:g}) {verdict}"
        )
    if doc["inconsistent"]:
        log(f"the catalogs answered differently: {doc['inconsistent']}")
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / doc["file"]).write_text(json.dumps(doc, indent=2) + "\n")
        log(f"wrote bench/results/{doc['file']} and {write_latest(doc).relative_to(REPO)}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
