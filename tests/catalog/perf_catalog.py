"""Quick timings of the embedded catalog on ~10 000 generated entities (run by hand).

    .venv/bin/python tests/catalog/perf_catalog.py [--entities 10000] [--dir /tmp/catperf]

Generates Groups, Users, Systems, Components and APIs in a few catalog files, ingests them
through a ``file`` location, refreshes once more (nothing changed), then times the hot reads
through the Flask test client: by-name, by-refs, a by-query page of 200, a cursor walk and
facets. Not collected by pytest (no ``test_`` prefix); numbers go to stdout.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import yaml

from scaffolder.app import create_app
from scaffolder.services import build_services
from scaffolder.settings import Settings, load_config


def generate(root: Path, count: int) -> None:
    groups = max(count // 100, 1)
    docs: list[dict[str, object]] = []
    for g in range(groups):
        docs.append(
            {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Group",
                "metadata": {"name": f"team-{g}"},
                "spec": {"type": "team", "children": []},
            }
        )
    per_group = count // groups - 1
    for i in range(groups * per_group):
        g = i % groups
        kind = ("Component", "API", "User", "System")[i % 4]
        spec: dict[str, object]
        if kind == "Component":
            spec = {
                "type": ("service", "website", "library")[i % 3],
                "lifecycle": ("production", "experimental")[i % 2],
                "owner": f"team-{g}",
                "system": f"system-{(i + 3) % 500}",
                "providesApis": [f"api-{i + 1}"],
                "dependsOn": [f"component:default/component-{(i + 4) % count}"],
            }
        elif kind == "API":
            spec = {
                "type": "openapi",
                "lifecycle": "production",
                "owner": f"team-{g}",
                "definition": "openapi: 3.0.0",
            }
        elif kind == "User":
            spec = {"memberOf": [f"team-{g}"], "profile": {"email": f"user{i}@example.com"}}
        else:
            spec = {"owner": f"team-{g}", "domain": "platform"}
        prefix = {"Component": "component", "API": "api", "User": "user", "System": "system"}[kind]
        docs.append(
            {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": kind,
                "metadata": {
                    "name": f"{prefix}-{i}",
                    "description": f"Generated {kind.lower()} number {i}",
                    "tags": ["generated", ("java", "python", "go")[i % 3]],
                    "annotations": {"example.com/index": str(i)},
                },
                "spec": spec,
            }
        )
    shard = 1000
    for n in range(0, len(docs), shard):
        (root / f"catalog-{n // shard:03d}.yaml").write_text(
            yaml.safe_dump_all(docs[n : n + shard])
        )


def timed(label: str, fn, repeat: int = 50) -> None:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    print(
        f"{label:<44} p50 {statistics.median(samples):7.2f} ms   p90 {samples[int(len(samples) * 0.9)]:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--dir", default="/tmp/catalog-perf")
    args = parser.parse_args()
    root = Path(args.dir)
    shutil.rmtree(root, ignore_errors=True)
    (root / "catalog").mkdir(parents=True)
    generate(root / "catalog", args.entities)
    config = root / "app-config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "backend": {
                    "database": {"connection": f"sqlite:///{root / 'db.sqlite'}"},
                    "workingDirectory": str(root / "work"),
                    "auth": {"dangerouslyDisableDefaultAuthPolicy": True},
                },
                "catalog": {"locations": [{"type": "file", "target": f"{root}/catalog/*.yaml"}]},
            }
        )
    )
    settings = Settings.from_config(load_config([config], environ={}))
    start = time.perf_counter()
    services = build_services(settings, with_worker=False)
    print(f"ingest (start, empty database)               {time.perf_counter() - start:7.2f} s")
    try:
        source = next(iter(services.catalog.store.source_keys()))
        start = time.perf_counter()
        services.catalog.refresh_source(source)
        print(f"refresh (nothing changed)                    {time.perf_counter() - start:7.2f} s")
        client = create_app(services=services).test_client()
        total = client.get("/api/catalog/entities/by-query?limit=0").json["totalItems"]
        print(f"entities in catalog                          {total}")
        timed(
            "GET by-name",
            lambda: client.get("/api/catalog/entities/by-name/component/default/component-4"),
        )
        refs = [f"component:default/component-{i * 4}" for i in range(100)]
        timed(
            "POST by-refs (100 refs)",
            lambda: client.post("/api/catalog/entities/by-refs", json={"entityRefs": refs}),
        )
        timed(
            "GET by-query page of 200 (no filter)",
            lambda: client.get("/api/catalog/entities/by-query?limit=200"),
            20,
        )
        timed(
            "POST by-query page of 200 kind=component",
            lambda: client.post(
                "/api/catalog/entities/by-query",
                json={"query": {"kind": "component"}, "limit": 200},
            ),
            20,
        )
        timed(
            "POST by-query 200, order by name, exclude total",
            lambda: client.post(
                "/api/catalog/entities/by-query",
                json={
                    "query": {"kind": "component", "spec.lifecycle": "production"},
                    "limit": 200,
                    "orderBy": [{"field": "metadata.name", "order": "asc"}],
                    "totalItems": "exclude",
                },
            ),
            20,
        )
        first = client.get("/api/catalog/entities/by-query?limit=200&filter=kind=component").json
        cursor = first["pageInfo"]["nextCursor"]
        timed(
            "GET by-query next page (cursor)",
            lambda: client.get(f"/api/catalog/entities/by-query?cursor={cursor}"),
            20,
        )
        timed(
            "GET entity-facets kind, spec.type, tags",
            lambda: client.get(
                "/api/catalog/entity-facets?facet=kind&facet=spec.type&facet=metadata.tags"
            ),
            20,
        )
        timed(
            "GET entity-facets spec.type filter=kind=component",
            lambda: client.get("/api/catalog/entity-facets?facet=spec.type&filter=kind=component"),
            20,
        )
        timed(
            "GET /entities (all, streamed)",
            lambda: client.get("/api/catalog/entities").get_data(),
            3,
        )
    finally:
        services.close()


if __name__ == "__main__":
    main()
