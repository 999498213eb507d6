"""API benchmark: ``.venv/bin/python -m bench.api``.

Starts the API in a real uvicorn server (a subprocess on 127.0.0.1, over a
temporary data dir, no agent runtime) and measures:

(a) append-to-delivery latency of the SSE job feed with 50 concurrent
    subscribers: this process appends agent traces straight to the same SQLite
    event store with `execute()`, as an agent would, stamping each append, and
    every subscriber stamps each delivery;
(b) requests/s of POST /api/v1/jobs and GET /api/v1/features, a fixed number of
    requests at a fixed concurrency.

Writes bench/results/api.json and docs/benchmarks-api.md, prints the table.
Loopback only; every loop is bounded; the server is stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "api.json"
DOC = ROOT / "docs" / "benchmarks-api.md"
HOST = "127.0.0.1"
TENANT = "bench"
PROJECT = "p1"
JOB = "j-sse"
SEED_DELIVERY_P99_MS = 100.0


@dataclass(frozen=True)
class Plan:
    subscribers: int = 50
    events: int = 300
    event_interval_s: float = 0.02
    requests: int = 500
    concurrency: int = 8
    features: int = 60
    page_limit: int = 50


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of `values` (p in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def serve(data_dir: Path, port: int) -> None:
    """The server side (run in the subprocess): the API over `data_dir`, nothing else."""
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import Settings

    uvicorn.run(create_app(Settings(data_dir=data_dir)), host=HOST, port=port, log_level="warning")


def prepare(data_dir: Path) -> str:
    """An enterprise tenant (10,000 requests/hour, so the rate limit stays out of the numbers), a project, a key."""
    from gateway.auth import create_api_key, readmodel_db
    from gateway.settings import Settings
    from processors.sources import tenant_folder
    from projections import directory

    settings = Settings(data_dir=data_dir)
    db = readmodel_db(settings)
    try:
        directory.create_tables(db)
        now = datetime.now(UTC)
        directory.create_tenant(db, TENANT, "Bench", TENANT, "enterprise", now)
        directory.create_project(db, TENANT, PROJECT, "Bench", "", None, now)
        # the jobs' source: a table in the tenant's upload area, as POST /uploads would leave it
        area = settings.uploads_dir / tenant_folder(TENANT)
        area.mkdir(parents=True, exist_ok=True)
        (area / "data.csv").write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(100)))
        return create_api_key(settings, TENANT, "admin", db=db)
    finally:
        db.close()


def start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.api", "--serve", str(data_dir), "--port", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API server exited with {process.returncode}; see {log}:\n{log.read_text()}")
        try:
            if httpx.get(f"http://{HOST}:{port}/api/v1/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"the API server did not answer /health within 60 s; see {log}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # uvicorn shuts down gracefully on SIGTERM: the lifespan closes chdb
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def context(agent: str) -> Any:
    from domain.envelope import Context

    return Context(at=datetime.now(UTC), actor=agent, tenant_id=TENANT, causation_id="bench")


async def sse_latency(base: str, headers: dict[str, str], data_dir: Path, plan: Plan) -> dict[str, Any]:
    """50 subscribers on one job feed; this process appends traces and times each delivery."""
    from commands.recorder_store import SqliteEventStore
    from commands.unit_of_work import Trace, execute

    store = SqliteEventStore(data_dir / "events.db")
    sent: dict[str, float] = {}
    received: list[list[float]] = [[] for _ in range(plan.subscribers)]
    ready = [asyncio.Event() for _ in range(plan.subscribers)]
    lock = threading.Lock()

    def append(message: str) -> None:
        with lock:
            sent[message] = time.perf_counter()  # stamped just before the append: includes the SQLite commit
        execute(store, [(Trace(JOB, "bench", "thought", message), context("bench"))])

    async def subscribe(index: int, client: httpx.AsyncClient) -> None:
        url = f"{base}/jobs/{JOB}/events"
        params = {"event_types": "agent_trace"}
        async with client.stream("GET", url, params=params, headers=headers) as response:
            response.raise_for_status()
            count = 0
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                now = time.perf_counter()
                content = json.loads(line[5:])["trace"]["content"]
                if content == "warmup":
                    ready[index].set()
                    continue
                received[index].append(now - sent[content])
                count += 1
                if count == plan.events:
                    return

    limits = httpx.Limits(max_connections=plan.subscribers + 8, max_keepalive_connections=plan.subscribers + 8)
    timeout = httpx.Timeout(10.0, read=60.0)
    try:
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
            tasks = [asyncio.create_task(subscribe(i, client)) for i in range(plan.subscribers)]
            await asyncio.to_thread(append, "warmup")
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), timeout=60)
            started = time.perf_counter()
            for i in range(plan.events):
                await asyncio.to_thread(append, f"m{i}")
                await asyncio.sleep(plan.event_interval_s)
            try:
                await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
            except TimeoutError:
                counts = sorted(len(r) for r in received)
                raise RuntimeError(f"not every subscriber got all {plan.events} events in 120 s: {counts}") from None
            elapsed = time.perf_counter() - started
    finally:
        store.close()
    pooled = [latency * 1000 for per_subscriber in received for latency in per_subscriber]
    # the latency of an event to its *last* subscriber, i.e. until everyone has it
    per_event_max = [max(received[s][i] for s in range(plan.subscribers)) * 1000 for i in range(plan.events)]
    return {
        "subscribers": plan.subscribers,
        "events": plan.events,
        "deliveries": len(pooled),
        "append_rate_per_s": round(plan.events / elapsed, 1),
        "p50_ms": round(percentile(pooled, 50), 1),
        "p95_ms": round(percentile(pooled, 95), 1),
        "p99_ms": round(percentile(pooled, 99), 1),
        "max_ms": round(max(pooled), 1),
        "last_subscriber_p50_ms": round(percentile(per_event_max, 50), 1),
        "last_subscriber_p99_ms": round(percentile(per_event_max, 99), 1),
    }


async def throughput(
    name: str, plan: Plan, call: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]], expect: int
) -> dict[str, Any]:
    """`plan.requests` calls spread over `plan.concurrency` workers; requests/s over the wall time."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = iter(range(plan.requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for index in next_index:  # shared iterator: each request is made once, by whichever worker is free
            begun = time.perf_counter()
            response = await call(client, index)
            latencies.append((time.perf_counter() - begun) * 1000)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    limits = httpx.Limits(max_connections=plan.concurrency, max_keepalive_connections=plan.concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(plan.concurrency)))
        elapsed = time.perf_counter() - started
    if set(statuses) != {expect}:
        raise RuntimeError(f"{name}: expected only HTTP {expect}, got {statuses}")
    return {
        "requests": plan.requests,
        "concurrency": plan.concurrency,
        "requests_per_s": round(plan.requests / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
    }


def seed_features(data_dir: Path, count: int) -> None:
    """Selected features for GET /features to list, appended as the agents would."""
    from commands.recorder_store import SqliteEventStore
    from commands.unit_of_work import execute
    from domain import feature

    store = SqliteEventStore(data_dir / "events.db")
    at = context("evaluator")
    try:
        for i in range(count):
            f = f"f{i}"
            execute(
                store,
                [
                    (feature.ProposeFeature(f, JOB, 1, f"ratio_{i}", "a/b", "why", "{}", ("a", "b"), 0.1, "x", ()), at),
                    (feature.RecordCode(f, "code", "polars", "h", None, None, False), at),
                    (feature.RecordExecution(f, True, None, None, 1.0, None, 0.0, 5), at),
                    (feature.RecordEvaluation(f, 1, "confirm", "auc", 0.1, 0.02, 0.01, 0.03, 0.01, 1, "ok"), at),
                    (feature.SelectFeature(f, 1, "significant"), at),
                ],
            )
    finally:
        store.close()


async def measure(base: str, headers: dict[str, str], data_dir: Path, plan: Plan) -> dict[str, Any]:
    job_body = {"project_id": PROJECT, "source": "data.csv", "target": "y", "job_id": JOB}
    async with httpx.AsyncClient(timeout=30.0) as client:
        r = await client.post(f"{base}/jobs", json=job_body, headers=headers)
        if r.status_code != 201:
            raise RuntimeError(f"creating the SSE job failed: {r.status_code} {r.text}")
    sse = await sse_latency(base, headers, data_dir, plan)

    body = {"project_id": PROJECT, "source": "data.csv", "target": "y"}

    async def create_job(client: httpx.AsyncClient, _: int) -> httpx.Response:
        return await client.post(f"{base}/jobs", json=body, headers=headers)

    create = await throughput("POST /jobs", plan, create_job, 201)

    await asyncio.to_thread(seed_features, data_dir, plan.features)
    async with httpx.AsyncClient(timeout=30.0) as client:
        for _ in range(100):  # bounded wait for the projector to catch up
            page = (await client.get(f"{base}/features", params={"limit": 1000}, headers=headers)).json()
            if len(page.get("items", [])) >= plan.features:
                break
            await asyncio.sleep(0.1)

    async def list_features(client: httpx.AsyncClient, _: int) -> httpx.Response:
        return await client.get(f"{base}/features", params={"limit": plan.page_limit}, headers=headers)

    listing = await throughput("GET /features", plan, list_features, 200)
    listing["page_size"] = plan.page_limit
    return {"sse": sse, "create_job": create, "list_features": listing}


def table(results: dict[str, Any]) -> str:
    sse, create, listing = results["sse"], results["create_job"], results["list_features"]
    verdict = "meets" if sse["p99_ms"] < SEED_DELIVERY_P99_MS else "misses"
    lines = [
        "| measurement | setting | result |",
        "|---|---|---|",
        f"| SSE append → delivery | {sse['subscribers']} subscribers, {sse['events']} events "
        f"at {sse['append_rate_per_s']}/s, {sse['deliveries']} deliveries "
        f"| p50 {sse['p50_ms']} ms, p95 {sse['p95_ms']} ms, **p99 {sse['p99_ms']} ms**, max {sse['max_ms']} ms |",
        f"| SSE append → last subscriber | same; per event, the slowest of the {sse['subscribers']} "
        f"| p50 {sse['last_subscriber_p50_ms']} ms, p99 {sse['last_subscriber_p99_ms']} ms |",
        f"| POST /api/v1/jobs | {create['requests']} requests, concurrency {create['concurrency']} "
        f"| **{create['requests_per_s']} req/s** (p50 {create['p50_ms']} ms, p99 {create['p99_ms']} ms) |",
        f"| GET /api/v1/features | {listing['requests']} requests, concurrency {listing['concurrency']}, "
        f"page of {listing['page_size']} "
        f"| **{listing['requests_per_s']} req/s** (p50 {listing['p50_ms']} ms, p99 {listing['p99_ms']} ms) |",
        "",
        f"Seed target: SSE delivery p99 < {SEED_DELIVERY_P99_MS:.0f} ms — this run {verdict} it.",
    ]
    return "\n".join(lines)


def document(results: dict[str, Any], markdown: str) -> str:
    env = results["environment"]
    return "\n".join(
        [
            "# API benchmark",
            "",
            "Generated by `.venv/bin/python -m bench.api` (raw numbers: `bench/results/api.json`).",
            "",
            f"Run {results['finished_at']} on {env['cpus']} CPU cores ({env['platform']}, Python {env['python']}); "
            f"1-minute load average {env['load_average_before']:.2f} before and {env['load_average_after']:.2f} after "
            "(a load above the core count means other work competed with the run). The clients below run on the "
            "same cores as the server, so this is a pessimistic sample, not a capacity figure.",
            "",
            "Setup: one uvicorn worker (`create_app`, SQLite event store and read models, chdb for the audit log "
            "and the events table, no agent runtime) in a subprocess on 127.0.0.1; the load generator (httpx, "
            "asyncio) and the event appender share the same two cores. SSE latency is from just before the "
            "`execute()` that appends an agent trace to the event store file to the moment a subscriber has "
            "parsed the `data:` line; the server notices appends by polling the log head every 20 ms. "
            "Every request carries an Admin API key; the tenant is on the enterprise tier so the rate limit "
            "does not interfere.",
            "",
            markdown,
            "",
        ]
    )


def run(plan: Plan) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="afep-bench-api-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        key = prepare(data_dir)
        port = free_port()
        process = start_server(data_dir, port, Path(tmp) / "server.log")
        try:
            base = f"http://{HOST}:{port}/api/v1"
            results = asyncio.run(measure(base, {"Authorization": f"Bearer {key}"}, data_dir, plan))
        except Exception:
            print(f"the server's log:\n{(Path(tmp) / 'server.log').read_text()[-4000:]}", file=sys.stderr)
            raise
        finally:
            stop_server(process)
    results["plan"] = plan.__dict__
    results["environment"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }
    results["seed_target"] = {"sse_delivery_p99_ms": SEED_DELIVERY_P99_MS}
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the server subprocess
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--subscribers", type=int, default=Plan.subscribers)
    parser.add_argument("--events", type=int, default=Plan.events)
    parser.add_argument("--requests", type=int, default=Plan.requests)
    parser.add_argument("--concurrency", type=int, default=Plan.concurrency)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0
    plan = Plan(subscribers=args.subscribers, events=args.events, requests=args.requests, concurrency=args.concurrency)
    results = run(plan)
    markdown = table(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    DOC.write_text(document(results, markdown))
    print(markdown)
    env = results["environment"]
    print(f"\n(1-minute load average {env['load_average_before']:.2f} before, {env['load_average_after']:.2f} after)")
    print(f"wrote {RESULTS.relative_to(ROOT)} and {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
