"""The local runtime: agents follow the log from tracked positions, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from commands.memory_store import InMemoryEventStore
from commands.unit_of_work import Trace, execute, load_job
from domain.envelope import Context
from domain.job import CancelJob, JobCancelled, JobRequested, RequestJob, RetryJob
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


def test_a_refused_reaction_fails_its_job_and_the_agent_moves_on(tmp_path: Path) -> None:
    def react(envelope: Any, store: Any, bench: Any) -> list[Any]:
        job_id = envelope.event.job_id
        if job_id == "a":  # retrying a running job is an invalid transition
            return [RetryJob(job_id)]
        return [Trace(job_id, "picky", "thought", "handled"), CancelJob(job_id, "handled")]

    agent = SimpleNamespace(NAME="picky", SUBSCRIBES=(JobRequested,), react=react)
    store = InMemoryEventStore()
    request(store, "a")
    request(store, "b")
    runtime = LocalRuntime(store, bench(tmp_path), agents=[agent])
    runtime.run_until_idle()  # returns: the refusal does not repeat pass after pass
    assert runtime.step() == 0
    a, b = load_job(store, "a"), load_job(store, "b")
    assert a is not None and a.status == "failed"
    assert "picky agent's reaction to JobRequested was refused" in (a.failure or "")
    assert "only failed or cancelled jobs can be retried" in (a.failure or "")
    assert b is not None and b.status == "cancelled" and b.failure == "handled"
    requested_b = next(e for e in store.read_all() if e.event_type == "JobRequested" and e.event.job_id == "b")
    assert store.tracking_position("picky") == requested_b.position


def test_an_event_whose_job_cannot_be_failed_is_skipped(tmp_path: Path) -> None:
    def react(envelope: Any, store: Any, bench: Any) -> list[Any]:
        return [RetryJob(envelope.event.job_id)]  # refused: the job is not failed

    agent = SimpleNamespace(NAME="lost", SUBSCRIBES=(JobRequested,), react=react)
    store = InMemoryEventStore()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    # the envelope names no job that exists as its correlation: even FailJob is refused
    execute(
        store,
        [(RequestJob("a", "p", "d.csv", None, "y", "auto", 60.0, 0, 1, 10), Context(at=at, correlation_id="ghost"))],
    )
    head = store.last_position()
    runtime = LocalRuntime(store, bench(tmp_path), agents=[agent])
    runtime.run_until_idle()
    assert runtime.step() == 0
    assert store.tracking_position("lost") == head
    job = load_job(store, "a")
    assert job is not None and job.status == "requested"
    assert [e.event_type for e in store.read_all(after=head) if e.event_type not in ("AgentTraced",)] == []


def test_a_crash_reason_with_control_characters_is_recorded_clean(tmp_path: Path) -> None:
    def react(envelope: Any, store: Any, bench: Any) -> list[Any]:
        raise KeyError("Sta\x00tus")

    agent = SimpleNamespace(NAME="nul", SUBSCRIBES=(JobRequested,), react=react)
    store = InMemoryEventStore()
    request(store)
    LocalRuntime(store, bench(tmp_path), agents=[agent]).run_until_idle()
    job = load_job(store, "j1")
    assert job is not None and job.status == "failed"
    assert "\x00" not in (job.failure or "") and "Sta" in (job.failure or "")


def test_the_evaluation_agent_clamps_any_budget_an_old_log_holds() -> None:
    from domain.validation import MAX_BUDGET_SECONDS
    from processors.agents.evaluation import FALLBACK_BUDGET_SECONDS, usable_budget

    assert usable_budget(float("inf")) == MAX_BUDGET_SECONDS == usable_budget(1e308)
    assert usable_budget(float("nan")) == FALLBACK_BUDGET_SECONDS
    assert usable_budget(-1e999) == usable_budget(0.0) == 1.0
    assert usable_budget(60.0) == 60.0
