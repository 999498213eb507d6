"""A whole job on the distributed runtime: relay, two faust workers and the projector on Tansu.

It selects what the embedded runtime selects on the same table and seed, its SSE feed
completes, its trace spans both workers, and faults (a worker or the relay SIGKILLed,
the broker restarted empty, a batch delivered twice) end in the same completed job
without duplicates, with read models equal to a rebuild.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from commands.recorder_store import SqliteEventStore
from commands.store import EventStore
from commands.unit_of_work import execute, load_job
from domain.envelope import Context
from domain.job import RequestJob
from projections.database import Database
from projections.projector import NAME as READMODELS
from projections.projector import Projector, read_model_tables
from tests.tables import customers

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]
JOB = {"budget": 600.0, "seed": 0, "max_rounds": 1, "max_candidates": 12}  # a budget that never binds
TARGET = "Churn"  # of tests/tables.py's customers: two ratios confirm there with the user's model


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    customers().write_csv(path)
    return path


def request_job(store: EventStore, table: Path) -> str:
    job_id = str(uuid.uuid4())
    command = RequestJob(
        job_id, "default", str(table), None, TARGET, "auto", JOB["budget"], JOB["seed"], JOB["max_rounds"],
        JOB["max_candidates"],
    )  # fmt: skip
    execute(store, [(command, Context(at=datetime.now(UTC), actor="user:test", correlation_id=job_id))])
    return job_id


def wait_until(done: Callable[[], bool], what: str, cluster: Any, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        for name, proc in cluster.procs.items():
            assert proc.poll() is None, f"{name} exited with {proc.returncode} waiting for {what}\n{cluster.logs()}"
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{cluster.logs()}")


def terminal(store: EventStore, job_id: str) -> bool:
    job = load_job(store, job_id)
    return job is not None and job.terminal


def types_so_far(store: EventStore) -> set[str]:
    return {e.event_type for e in store.read_all(limit=100_000)}


def outcome(store: EventStore, job_id: str) -> dict[str, Any]:
    """What a job selected and the scores it reported, by feature name (ids differ between runs)."""
    log = [e for e in store.read_all(limit=100_000) if e.correlation_id == job_id]
    names = {e.event.feature_id: e.event.name for e in log if e.event_type == "FeatureProposed"}
    evaluated = {
        names[e.event.feature_id]: (e.event.lift, e.event.ci_low, e.event.ci_high, e.event.p_value)
        for e in log
        if e.event_type == "FeatureEvaluated"
    }
    done = next(e.event for e in log if e.event_type == "JobCompleted")
    return {
        "selected": sorted(names[f] for f in done.selected_ids),
        "scores": (done.metric, done.baseline_score, done.final_score),
        "evaluated": evaluated,
    }


def assert_no_duplicates(store: EventStore) -> None:
    log = store.read_all(limit=100_000)
    for topic in ("FeatureProposed", "CodeExecuted", "FeatureSelected", "JobCompleted"):
        streams = Counter(e.stream_id for e in log if e.event_type == topic)
        assert all(n == 1 for n in streams.values()), f"duplicate {topic}: {streams.most_common(3)}"


def assert_projections_equal_a_rebuild(store: EventStore, data_dir: Path, cluster: Any) -> None:
    """The projector's read models (SQLite under data_dir, or the cluster's PostgreSQL) equal a replay."""
    url = cluster.database_url
    live = Database(url or data_dir / "readmodels.db")
    head = store.last_position()

    def caught_up() -> bool:
        with live.transaction(write=False) as tx:
            stored = tx.scalar("SELECT position FROM {projection_checkpoints} WHERE name = ?", (READMODELS,))
        return int(stored or 0) >= head

    wait_until(caught_up, "the projector to reach the head of the log", cluster, timeout=180)
    rebuilt = Database(url, prefix="rebuilt_") if url else Database(data_dir / "rebuilt.db")
    projector = Projector(rebuilt, store)
    projector.create_tables()
    projector.rebuild()
    try:
        for name in read_model_tables():
            sql = f"SELECT * FROM {{{name}}} ORDER BY 1, 2"
            with live.transaction(write=False) as a, rebuilt.transaction(write=False) as b:
                assert a.all(sql) == b.all(sql), f"read model {name} differs from a rebuild"
    finally:
        live.close()
        rebuilt.close()


def embedded_outcome(table: Path, tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    data_dir = tmp_path / "embedded"
    args = ["--budget", str(JOB["budget"]), "--seed", str(JOB["seed"]), "--max-rounds", str(JOB["max_rounds"])]
    args += ["--max-candidates", str(JOB["max_candidates"]), "--quiet", "--out", str(tmp_path / "embedded-out")]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "run",
            str(table),
            "--target",
            TARGET,
            *args,
            "--data-dir",
            str(data_dir),
        ],
        cwd=REPO,
        env={**env, "AFEP_RUNTIME": "embedded"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    store = SqliteEventStore(data_dir / "events.db")
    try:
        job_id = json.loads((tmp_path / "embedded-out" / "result.json").read_text())["job_id"]
        return outcome(store, job_id)
    finally:
        store.close()


def test_a_job_through_kafka_selects_what_the_embedded_runtime_selects(
    cluster: Any, table: Path, tmp_path: Path, serve: Any
) -> None:
    from gateway.app import create_app
    from gateway.auth import create_api_key
    from gateway.settings import Settings

    cluster.start_all()
    expected = embedded_outcome(table, tmp_path, cluster.env)  # meanwhile the consumer groups form

    settings = Settings(
        data_dir=cluster.data_dir,
        secret_key="test-secret-key-please-change-it!",
        runtime="kafka",
        source_roots=str(table.parent),
    )  # the API records commands; the workers run the agents
    store = SqliteEventStore(settings.event_db_path)
    feed: list[str] = []
    with serve(create_app(settings, store=store)) as url:
        headers = {"Authorization": f"Bearer {create_api_key(settings, 'acme', 'admin')}"}
        assert httpx.post(f"{url}/projects", json={"name": "p", "id": "p1"}, headers=headers).status_code == 201
        body = {"project_id": "p1", "source": str(table), "target": TARGET, "budget_seconds": JOB["budget"]}
        body |= {"seed": JOB["seed"], "max_rounds": JOB["max_rounds"], "max_candidates": JOB["max_candidates"]}
        job_id = body["job_id"] = str(uuid.uuid4())
        created = httpx.post(f"{url}/jobs", json=body, headers=headers)
        assert created.status_code == 201, created.text

        def follow() -> None:
            with httpx.stream("GET", f"{url}/jobs/{job_id}/events", headers=headers, timeout=60) as response:
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        feed.append(line.removeprefix("event:").strip())
                        if feed[-1] in ("job_completed", "job_failed"):
                            return

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        wait_until(lambda: terminal(store, job_id), "the job to finish", cluster)
        reader.join(timeout=60)
    assert feed and feed[0] == "job_requested" and feed[-1] == "job_completed", feed[-5:]

    got = outcome(store, job_id)
    assert got["selected"] == expected["selected"] and got["selected"]
    assert got["scores"] == expected["scores"]
    assert got["evaluated"] == expected["evaluated"]
    assert_no_duplicates(store)
    assert_projections_equal_a_rebuild(store, cluster.data_dir, cluster)

    trace = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "jobs", "trace", job_id],
        cwd=REPO,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert trace.returncode == 0, trace.stderr
    assert "spans in 2 processes" in trace.stdout.splitlines()[0], trace.stdout[:2000]
    assert "schema JobRequested" in trace.stdout and "evaluation StageCompleted" in trace.stdout
    store.close()


def redeliver(store: SqliteEventStore, bootstrap: str) -> int:
    """Publish everything in the log again, as a relay that lost its position would."""
    from kafka import KafkaProducer

    from schemas.wire import to_record

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, batch_size=0, acks="all", max_in_flight_requests_per_connection=1
    )
    try:
        log = store.read_all(limit=100_000)
        for envelope in log:
            record = to_record(envelope)
            producer.send(record.topic, key=record.key, value=record.value, headers=record.headers)
        producer.flush()
        return len(log)
    finally:
        producer.close()


def kill_and_restart_the_relay(cluster: Any, store: SqliteEventStore) -> None:
    cluster.kill("relay")
    cluster.start("relay", "relay")


def deliver_a_batch_twice(cluster: Any, store: SqliteEventStore) -> None:
    """The whole log so far, once more."""
    assert redeliver(store, cluster.broker.bootstrap) > 0


def kill_and_restart_a_worker(cluster: Any, store: SqliteEventStore) -> None:
    """The worker running codegen, execution and evaluation."""
    cluster.kill("worker1")
    cluster.start("worker1", "worker", "--agents", "codegen,execution,evaluation", "--instance", "worker1")


def restart_the_broker(cluster: Any, store: SqliteEventStore) -> None:
    """Its memory storage is lost: the relay replays the log from the store."""
    cluster.broker.restart()


FAULTS = [  # (the event the job has reached when the fault strikes, the fault)
    pytest.param("SchemaAnalyzed", kill_and_restart_the_relay, id="relay-sigkilled"),
    pytest.param("DomainResearched", deliver_a_batch_twice, id="batch-delivered-twice"),
    pytest.param("CodeGenerated", kill_and_restart_a_worker, id="worker-sigkilled"),
    pytest.param("CodeExecuted", restart_the_broker, id="broker-restarted-empty"),
]


@pytest.mark.parametrize(("reached", "fault"), FAULTS)
def test_a_fault_mid_job_ends_in_one_completed_job_without_duplicates(
    cluster: Any, table: Path, reached: str, fault: Callable[[Any, SqliteEventStore], None]
) -> None:
    cluster.start_all()
    store = SqliteEventStore(cluster.data_dir / "events.db")
    job_id = request_job(store, table)

    wait_until(lambda: reached in types_so_far(store) or terminal(store, job_id), reached, cluster)
    assert not terminal(store, job_id), f"the job finished before the fault at {reached}; make it bigger"
    fault(cluster, store)

    wait_until(lambda: terminal(store, job_id), "the job to finish after the fault", cluster)
    job = load_job(store, job_id)
    assert job is not None and job.status == "completed", (job, cluster.logs())
    assert job.selected_ids
    assert_no_duplicates(store)
    assert_projections_equal_a_rebuild(store, cluster.data_dir, cluster)
    store.close()


def test_workers_with_the_same_agents_share_the_partitions(cluster: Any, table: Path) -> None:
    from kafka.partitioner.default import DefaultPartitioner

    from processors.kafka.tracing import traces_dir

    everything = "schema,research,planner,evaluation,ideation,codegen,execution"
    cluster.start_all(workers=(everything, everything))
    store = SqliteEventStore(cluster.data_dir / "events.db")
    partitions, by_partition = list(range(4)), {}
    while len(by_partition) < 4:  # one job on each partition: each worker gets some
        candidate = str(uuid.uuid4())
        by_partition.setdefault(DefaultPartitioner()(candidate.encode(), partitions, partitions), candidate)
    jobs = []
    for job_id in by_partition.values():
        command = RequestJob(job_id, "default", str(table), None, TARGET, "auto", JOB["budget"], 0, 1, 4)
        execute(store, [(command, Context(at=datetime.now(UTC), actor="user:test", correlation_id=job_id))])
        jobs.append(job_id)
    wait_until(lambda: all(terminal(store, j) for j in jobs), "four jobs to finish", cluster)
    assert all(load_job(store, j).status == "completed" for j in jobs)  # type: ignore[union-attr]
    assert_no_duplicates(store)
    workers = {p.name.split("-")[-1] for p in traces_dir(cluster.data_dir).glob("afep-worker-*.jsonl")}
    assert len(workers) == 2, f"spans from worker processes {workers}: the partitions were not shared"
    store.close()


@pytest.mark.postgres
def test_a_job_through_kafka_on_postgresql_completes_without_duplicates(postgres_cluster: Any, table: Path) -> None:
    """`AFEP_DATABASE_URL` set: every process shares the PostgreSQL event store and read models."""
    cluster = postgres_cluster
    cluster.start_all()
    store = cluster.open_store()
    try:
        job_id = request_job(store, table)
        wait_until(lambda: terminal(store, job_id), "the job to finish on PostgreSQL", cluster)
        job = load_job(store, job_id)
        assert job is not None and job.status == "completed", (job, cluster.logs())
        assert job.selected_ids
        assert_no_duplicates(store)
        assert_projections_equal_a_rebuild(store, cluster.data_dir, cluster)
        live = Database(cluster.database_url)
        try:
            with live.transaction(write=False) as tx:
                assert tx.scalar("SELECT status FROM {jobs} WHERE id = ?", (job_id,)) == "completed"
        finally:
            live.close()
        assert not (cluster.data_dir / "events.db").exists(), "a process used the SQLite store, not PostgreSQL"
    finally:
        store.close()
