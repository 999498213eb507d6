"""Distributed runtime benchmark: ``.venv/bin/python -m bench.kafka``.

In one run, on a Tansu broker (memory storage) on a loopback port:
(a) relay throughput: a SQLite store of N events (agent traces over many jobs) published
    to Kafka from position 0, in events/s;
(b) end-to-end job time on the same table and seed, embedded (`afep run`) against the
    Kafka runtime (relay, two workers with split agent sets, projector, already joined),
    timed from the recorded JobRequested to JobCompleted, plus the Kafka processes' start.

Writes bench/results/kafka.json and docs/benchmarks-kafka.md, prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "kafka.json"
DOC = ROOT / "docs" / "benchmarks-kafka.md"
SPLIT = ("schema,research,planner,ideation", "codegen,execution,evaluation")


def relay_throughput(work: Path, events: int) -> dict[str, Any]:
    from commands.recorder_store import SqliteEventStore
    from commands.unit_of_work import Trace, execute
    from domain.envelope import Context
    from ops.tansu import Tansu
    from processors.kafka.broker import KafkaConfig
    from processors.kafka.relay import Relay

    store = SqliteEventStore(work / "relay" / "events.db")
    at = datetime.now(UTC)
    for start in range(0, events, 500):
        job = f"job-{start // 500}"
        ctx = Context(at=at, actor="agent:bench", correlation_id=job)
        execute(
            store, [(Trace(job, "bench", "thought", f"trace {i}", {"i": i}), ctx) for i in range(start, start + 500)]
        )
    broker = Tansu(work)
    broker.start()
    try:
        relay = Relay(store, KafkaConfig(broker.bootstrap, partitions=4))
        relay.connect()
        started = time.perf_counter()
        while relay.publish_once():
            pass
        seconds = time.perf_counter() - started
        relay.close()
    finally:
        broker.stop()
        store.close()
    return {"events": events, "seconds": round(seconds, 2), "events_per_second": round(events / seconds)}


def job_times(work: Path, rows: int, seed: int, budget: float, candidates: int) -> dict[str, Any]:
    from commands.recorder_store import SqliteEventStore
    from commands.unit_of_work import execute, load_job
    from domain.envelope import Context
    from domain.job import RequestJob
    from ops.demo_data import synthetic_credit
    from ops.tansu import Tansu

    table = work / "credit.csv"
    synthetic_credit(rows, seed=0).write_csv(table)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AFEP_", "OTEL_"))}
    env |= {"OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    args = ["--budget", str(budget), "--seed", str(seed), "--max-rounds", "1", "--max-candidates", str(candidates)]
    started = time.perf_counter()
    embedded = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", str(table), "--target", "Status", *args, "--quiet"]
        + ["--out", str(work / "embedded-out"), "--data-dir", str(work / "embedded")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    embedded_wall = time.perf_counter() - started
    if embedded.returncode:
        raise RuntimeError(embedded.stdout + embedded.stderr)
    embedded_result = json.loads((work / "embedded-out" / "result.json").read_text())

    broker = Tansu(work)
    broker.start()
    data_dir = work / "kafka"
    env |= {"AFEP_DATA_DIR": str(data_dir), "AFEP_RUNTIME": "kafka", "AFEP_KAFKA_BOOTSTRAP": broker.bootstrap}
    procs: list[subprocess.Popen[bytes]] = []
    log = (work / "kafka.log").open("ab")

    def start(*cli: str) -> None:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", *cli],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    store = SqliteEventStore(data_dir / "events.db")
    try:
        started = time.perf_counter()
        start("relay")
        for i, agents in enumerate(SPLIT):
            start("worker", "--agents", agents, "--instance", f"bench{i}")
        start("projector", "--instance", "bench-projector")
        warm = _wait_for_a_job(store, "warm-up", table, seed, budget, 1)  # the groups form on this one
        startup = time.perf_counter() - started
        job_id = str(uuid.uuid4())
        command = RequestJob(job_id, "default", str(table), None, "Status", "auto", budget, seed, 1, candidates)
        execute(store, [(command, Context(at=datetime.now(UTC), actor="user:bench", correlation_id=job_id))])
        started = time.perf_counter()
        while (job := load_job(store, job_id)) is None or not job.terminal:
            if time.perf_counter() - started > 1800:
                raise RuntimeError("the Kafka-runtime job did not finish in 30 min")
            time.sleep(0.05)
        kafka_seconds = time.perf_counter() - started
        if job.status != "completed":
            raise RuntimeError(f"the Kafka-runtime job ended {job.status}: {job.failure}")
        kafka_selected = len(job.selected_ids)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        broker.stop()
        store.close()
        log.close()
    requested = embedded_result["wall_seconds"]
    return {
        "table": f"synthetic credit, {rows} rows",
        "seed": seed,
        "max_candidates": candidates,
        "embedded_job_seconds": round(requested, 2),
        "embedded_process_seconds": round(embedded_wall, 2),
        "kafka_job_seconds": round(kafka_seconds, 2),
        "kafka_startup_seconds": round(startup, 2),
        "kafka_warmup_job": warm,
        "selected": {"embedded": embedded_result["counts"]["selected"], "kafka": kafka_selected},
    }


def _wait_for_a_job(store: Any, name: str, table: Path, seed: int, budget: float, candidates: int) -> str:
    from commands.unit_of_work import execute, load_job
    from domain.envelope import Context
    from domain.job import RequestJob

    job_id = str(uuid.uuid4())
    command = RequestJob(job_id, name, str(table), None, "Status", "auto", budget, seed, 1, candidates)
    execute(store, [(command, Context(at=datetime.now(UTC), actor="user:bench", correlation_id=job_id))])
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        job = load_job(store, job_id)
        if job is not None and job.terminal:
            return str(job.status)
        time.sleep(0.2)
    raise RuntimeError("the warm-up job did not finish in 15 min")


def render(result: dict[str, Any]) -> str:
    relay, jobs = result["relay"], result["jobs"]
    return "\n".join(
        [
            "# Distributed runtime (Kafka) benchmark",
            "",
            f"`python -m bench.kafka`, {result['when']}, {result['machine']}. Broker: Tansu (memory storage) on loopback.",
            "",
            "| measure | value |",
            "| --- | --- |",
            f"| relay throughput (store -> Kafka, {relay['events']} events, acks=all, one request in flight) "
            f"| {relay['events_per_second']:,} events/s |",
            f"| job time, embedded runtime ({jobs['table']}, seed {jobs['seed']}, {jobs['max_candidates']} candidates) "
            f"| {jobs['embedded_job_seconds']} s |",
            f"| job time, Kafka runtime (relay + 2 workers + projector, groups joined) | {jobs['kafka_job_seconds']} s |",
            f"| Kafka runtime start to first completed job (consumer groups joining) | {jobs['kafka_startup_seconds']} s |",
            "",
            "Job times run from the recorded JobRequested to JobCompleted; the embedded time is "
            "`afep run`'s wall_seconds (a fresh process), the Kafka workers were warmed by a one-candidate job. "
            "Same table and seed, run one after the other; this machine's speed drifts, so compare "
            "numbers from one run only.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=600.0)
    parser.add_argument("--candidates", type=int, default=40)
    parser.add_argument("--render-only", action="store_true", help="rewrite the doc from bench/results/kafka.json")
    args = parser.parse_args()
    if args.render_only:
        DOC.write_text(render(json.loads(RESULTS.read_text())))
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory(prefix="afep-bench-kafka-") as tmp:
        work = Path(tmp)
        result = {
            "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "relay": relay_throughput(work, args.events),
            "jobs": job_times(work, args.rows, args.seed, args.budget, args.candidates),
        }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    DOC.write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
