"""The local runtime: agents follow the log from tracked positions, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from commands.memory_store import InMemoryEventStore
from commands.unit_of_work import Trace, execute, load_job
from domain.envelope import Context
from domain.job import CancelJob, JobCancelled, JobRequested, RequestJob
from processors.runtime import LocalRuntime
from processors.workbench import Workbench


def bench(tmp_path: Path) -> Workbench:
    return Workbench(
        datasets_dir=tmp_path / "d", artifacts_dir=tmp_path / "a", clock=lambda: datetime(2026, 1, 1, tzinfo=UTC)
    )


def request(store: InMemoryEventStore, job_id: str = "j1") -> None:
    command = RequestJob(job_id, "p", "d.csv", None, "y", "auto", 60.0, 0, 3, 10)
    execute(store, [(command, Context(at=datetime(2026, 1, 1, tzinfo=UTC), tenant_id="t9", correlation_id=job_id))])


def test_each_event_is_handled_once_and_commands_carry_causation(tmp_path: Path) -> None:
    seen: list[str] = []

    def react(envelope: Any, store: Any, bench: Any) -> list[Any]:
        seen.append(envelope.event.job_id)
        return [Trace(envelope.event.job_id, "echo", "thought", "saw it"), CancelJob(envelope.event.job_id, "test")]

    agent = SimpleNamespace(NAME="echo", SUBSCRIBES=(JobRequested,), react=react)
    store = InMemoryEventStore()
    request(store)
    runtime = LocalRuntime(store, bench(tmp_path), agents=[agent])
    runtime.run_until_idle()
    runtime.run_until_idle()
    assert seen == ["j1"]
    requested, cancelled = store.read_stream("job-j1")
    assert isinstance(cancelled.event, JobCancelled)
    assert cancelled.causation_id == requested.event_id and cancelled.actor == "agent:echo"
    assert cancelled.tenant_id == "t9" and cancelled.correlation_id == "j1"
    assert store.tracking_position("echo") == store.read_all()[0].position


def test_a_crashing_agent_fails_the_job_not_the_runtime(tmp_path: Path) -> None:
    def react(envelope: Any, store: Any, bench: Any) -> list[Any]:
        raise RuntimeError("boom")

    agent = SimpleNamespace(NAME="broken", SUBSCRIBES=(JobRequested,), react=react)
    store = InMemoryEventStore()
    request(store)
    LocalRuntime(store, bench(tmp_path), agents=[agent]).run_until_idle()
    job = load_job(store, "j1")
    assert job is not None and job.status == "failed" and "broken agent crashed" in (job.failure or "")
    traces = [e for e in store.read_all() if e.event_type == "AgentTraced"]
    assert "RuntimeError: boom" in traces[0].event.message


def test_interim_commits_survive_a_crash_and_are_not_redone(tmp_path: Path) -> None:
    calls = {"n": 0}

    def react(envelope: Any, store: Any, bench: Any) -> list[Any]:
        calls["n"] += 1
        bench.emit([Trace("j1", "slow", "thought", f"chunk of attempt {calls['n']}")])
        if calls["n"] == 1:
            raise KeyboardInterrupt  # the process dies mid-reaction
        return []

    agent = SimpleNamespace(NAME="slow", SUBSCRIBES=(JobRequested,), react=react)
    store = InMemoryEventStore()
    request(store)
    runtime = LocalRuntime(store, bench(tmp_path), agents=[agent])
    try:
        runtime.run_until_idle()
    except KeyboardInterrupt:
        pass
    assert store.tracking_position("slow") == 0  # the reaction did not commit its position
    LocalRuntime(store, bench(tmp_path), agents=[agent]).run_until_idle()
    messages = [e.event.message for e in store.read_all() if e.event_type == "AgentTraced"]
    assert messages == ["chunk of attempt 1", "chunk of attempt 2"]
    assert store.tracking_position("slow") > 0


def test_background_work_is_stopped_and_joined_and_its_failure_only_logged(tmp_path: Path, caplog: Any) -> None:
    import threading

    bench = Workbench(tmp_path / "datasets", tmp_path / "artifacts")
    started, seen_stop = threading.Event(), []

    def patient(stop: threading.Event) -> None:
        started.set()
        seen_stop.append(stop.wait(timeout=30))

    bench.in_background("job-1", patient)
    assert started.wait(timeout=5)
    bench.wait_for("job-1")  # sets stop, then joins: returns at once, not after 30 s
    assert seen_stop == [True]
    bench.wait_for("job-1")  # nothing left under that key

    def broken(stop: threading.Event) -> None:
        raise RuntimeError("boom")

    bench.in_background("job-2", broken)
    bench.wait_for("job-2")
    assert "background work 'job-2' failed" in caplog.text
