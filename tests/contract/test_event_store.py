"""One contract for every EventStore adapter: memory twin, SQLite, PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest

from commands.store import ConcurrencyConflict, Tracking
from commands.unit_of_work import UnitOfWork, event_id, execute, load_job
from domain.activity import AgentTraced
from domain.envelope import Context, Envelope
from domain.job import CancelJob, JobRequested, RequestJob


def envelope(stream: str, version: int, at: datetime, message: str = "m") -> Envelope:
    return Envelope(
        event=AgentTraced("job-1", "tester", "thought", message),
        stream_id=stream,
        version=version,
        event_id=event_id(stream, version),
        occurred_at=at,
        correlation_id="job-1",
        causation_id=None,
        actor="tester",
        tenant_id="t1",
    )


def test_append_and_read_stream(store, at) -> None:
    positions = store.append([envelope("s1", 1, at, "a"), envelope("s1", 2, at, "b"), envelope("s2", 1, at, "c")])
    assert positions == sorted(positions) and len(set(positions)) == 3
    read = store.read_stream("s1")
    assert [e.event.message for e in read] == ["a", "b"]
    assert [e.version for e in read] == [1, 2]
    assert read[0].occurred_at == at and read[0].tenant_id == "t1" and read[0].event_id == event_id("s1", 1)
    assert [e.event.message for e in store.read_stream("s1", after_version=1)] == ["b"]
    assert store.read_stream("nothing") == []


def test_optimistic_concurrency_conflict_records_nothing(store, at) -> None:
    store.append([envelope("s1", 1, at)])
    before = store.last_position()
    with pytest.raises(ConcurrencyConflict):
        store.append([envelope("s2", 1, at), envelope("s1", 1, at, "again")])
    assert store.last_position() == before
    assert store.read_stream("s2") == []


def test_read_all_in_order_from_a_position_with_type_filter(store, at) -> None:
    store.append([envelope("s1", v, at, f"m{v}") for v in range(1, 6)])
    everything = store.read_all()
    assert [e.event.message for e in everything] == [f"m{v}" for v in range(1, 6)]
    assert [e.position for e in everything] == sorted(e.position for e in everything)
    after = store.read_all(after=everything[1].position, limit=2)
    assert [e.event.message for e in after] == ["m3", "m4"]
    assert store.read_all(types=["JobRequested"]) == []
    assert len(store.read_all(types=["AgentTraced"])) == 5
    assert store.last_position() == everything[-1].position


def test_tracking_is_atomic_with_events(store, at) -> None:
    assert store.tracking_position("p") == 0
    store.append([envelope("s1", 1, at)], tracking=Tracking("p", 7))
    assert store.tracking_position("p") == 7
    with pytest.raises(ConcurrencyConflict):
        store.append([envelope("s1", 1, at)], tracking=Tracking("p", 9))
    assert store.tracking_position("p") == 7
    store.append([], tracking=Tracking("p", 11))
    assert store.tracking_position("p") == 11


def test_idempotent_retry_of_a_command(store, at) -> None:
    ctx = Context(at=at, actor="user:a", tenant_id="t1", correlation_id="j1")
    command = RequestJob("j1", "p", "data.csv", None, "y", "auto", 60.0, 0, 3, 100)
    first = execute(store, [(command, ctx)])
    again = execute(store, [(command, ctx)])
    assert [e.event_type for e in first] == ["JobRequested"] and again == []
    assert len(store.read_stream("job-j1")) == 1
    job = load_job(store, "j1")
    assert job is not None and job.status == "requested"
    assert isinstance(store.read_stream("job-j1")[0].event, JobRequested)


def test_concurrent_writer_conflicts_and_a_fresh_decision_wins(store, at) -> None:
    ctx = Context(at=at)
    execute(store, [(RequestJob("j2", "p", "d.csv", None, "y", "auto", 60.0, 0, 3, 100), ctx)])
    slow = UnitOfWork(store)
    slow.handle(CancelJob("j2", "slow writer"), ctx)  # decided on version 1
    execute(store, [(CancelJob("j2", "fast writer"), ctx)])  # appends version 2 first
    with pytest.raises(ConcurrencyConflict):
        slow.commit()
    assert execute(store, [(CancelJob("j2", "slow writer"), ctx)]) == []  # already cancelled: no-op
    assert [e.event.reason for e in store.read_stream("job-j2")[1:]] == ["fast writer"]


OPEN_AND_APPEND = """
import sys
from datetime import datetime
from commands.recorder_store import SqliteEventStore
from commands.unit_of_work import execute
from domain.envelope import Context
from domain.job import RequestJob
store = SqliteEventStore(sys.argv[1])
job = RequestJob(sys.argv[2], "p", "d.csv", None, "y", "auto", 60.0, 0, 1, 10)
execute(store, [(job, Context(at=datetime(2026, 1, 1)))])
store.close()
"""


def test_processes_opening_a_fresh_sqlite_store_at_once_all_get_it(tmp_path) -> None:
    """The relay, the workers and the projector start together on a fresh data dir."""
    import subprocess
    import sys

    from commands.recorder_store import SqliteEventStore
    from tests.conftest import REPO

    for round_ in range(4):
        path = str(tmp_path / f"events-{round_}.db")
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_AND_APPEND, path, f"j{i}"], cwd=REPO, stderr=subprocess.PIPE, text=True
            )
            for i in range(4)
        ]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
        store = SqliteEventStore(path)
        assert sorted(e.event.job_id for e in store.read_all()) == ["j0", "j1", "j2", "j3"]
        store.close()
