"""ClickHouse through chdb: the events projection is idempotent and rebuildable; audit is append-only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commands.recorder_store import SqliteEventStore
from commands.unit_of_work import Trace, execute
from domain import job
from domain.envelope import Context
from projections.clickhouse import (
    AUDIT_COLUMNS,
    AuditRecord,
    ClickHouse,
    ClickHouseAuditLog,
    ClickHouseEventsProjection,
    job_events,
)

pytestmark = pytest.mark.clickhouse
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)  # inside the 90-day TTL


@pytest.fixture
def clickhouse(tmp_path: Path) -> Iterator[ClickHouse]:
    ch = ClickHouse(url=None, path=tmp_path / "clickhouse")
    yield ch
    ch.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteEventStore]:
    store = SqliteEventStore(tmp_path / "events.db")
    yield store
    store.close()


def request(store: SqliteEventStore, job_id: str, tenant: str = "acme") -> None:
    [requested] = execute(
        store,
        [
            (
                job.RequestJob(job_id, "p1", "d.csv", None, "y", "auto", 1.0, 0, 1, 1),
                Context(at=T0, actor="alice", tenant_id=tenant),
            )
        ],
    )
    agent = Context(at=T0 + timedelta(seconds=1), actor="schema", tenant_id="default", causation_id=requested.event_id)
    execute(store, [(Trace(job_id, "schema", "thought", "hmm"), agent)])


def test_events_copied_once_with_the_jobs_tenant_and_project(clickhouse: ClickHouse, store: SqliteEventStore) -> None:
    request(store, "j1")
    request(store, "j2", tenant="other")
    projection = ClickHouseEventsProjection(clickhouse, store, batch_size=1)
    assert projection.catch_up() == 4
    rows = job_events(clickhouse, "acme", "j1")
    assert [(r["event_type"], r["tenant_id"], r["project_id"]) for r in rows] == [
        ("JobRequested", "acme", "p1"),
        ("AgentTraced", "acme", "p1"),
    ]
    assert rows[1]["agent_type"] == "schema" and rows[1]["event_subtype"] == "thought"
    assert job_events(clickhouse, "acme", "j2") == []


def test_replayed_batches_do_not_duplicate(clickhouse: ClickHouse, store: SqliteEventStore) -> None:
    request(store, "j1")
    projection = ClickHouseEventsProjection(clickhouse, store)
    projection.catch_up()
    # a crash after the insert but before the checkpoint: the same batch is written again
    clickhouse.command("ALTER TABLE projection_checkpoints DELETE WHERE 1 SETTINGS mutations_sync = 1")
    assert projection.position() == 0
    projection.catch_up()
    assert len(job_events(clickhouse, "acme", "j1")) == 2
    assert projection.rebuild() == 2
    assert len(job_events(clickhouse, "acme", "j1")) == 2


def test_audit_is_append_only_and_searchable(clickhouse: ClickHouse) -> None:
    audit = ClickHouseAuditLog(clickhouse)
    assert not hasattr(audit, "update") and not hasattr(audit, "delete")
    for i in range(3):
        audit.record(
            AuditRecord(
                "alice",
                "acme",
                "admin",
                "feature.approve",
                "feature",
                f"f{i}",
                "selected",
                "approved",
                "10.0.0.1",
                "pytest",
                200,
                T0 + timedelta(minutes=i),
            )
        )
    audit.record(AuditRecord("bob", "other", "admin", "job.create", "job", "j", "", "requested", "", "", 201, T0))
    page1 = audit.search("acme", action="feature.approve", limit=2)
    assert [r["resource_id"] for r in page1] == ["f2", "f1"]
    page2 = audit.search("acme", before=(page1[-1]["time"], page1[-1]["id"]), limit=2)
    assert [r["resource_id"] for r in page2] == ["f0"]
    assert (
        audit.search("acme", since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=2))[0]["resource_id"] == "f1"
    )
    assert [r["actor"] for r in audit.search("other")] == ["bob"]


def test_command_line_actions_are_audited_from_the_log_once(clickhouse: ClickHouse, store: SqliteEventStore) -> None:
    request(store, "j1")  # an API caller's job (the gateway audits it): nothing derived
    carol = Context(at=T0 + timedelta(minutes=1), actor="user:carol", tenant_id="acme", correlation_id="j2")
    execute(store, [(job.RequestJob("j2", "p1", "d.csv", None, "y", "auto", 1.0, 0, 1, 1), carol)])
    elsewhere = Context(at=T0 + timedelta(minutes=2), actor="user:carol", correlation_id="j2")  # tenant: the job's
    execute(store, [(job.CancelJob("j2", "wrong table"), elsewhere), (job.RetryJob("j2"), elsewhere)])
    execute(store, [(job.CancelJob("j1", "no"), Context(at=T0, actor="key:abc", tenant_id="acme"))])
    projection = ClickHouseEventsProjection(clickhouse, store)
    audit = ClickHouseAuditLog(clickhouse)

    def trail() -> list[tuple[str, str, str, str, str, datetime]]:
        return [
            (
                r["actor"],
                r["action"],
                r["resource_type"],
                r["resource_id"],
                r["new_state"],
                r["time"].replace(tzinfo=UTC),
            )
            for r in audit.search("acme")
        ]

    projection.catch_up()
    expected = [
        ("user:carol", "job.retry", "job", "j2", "requested", T0 + timedelta(minutes=2)),
        ("user:carol", "job.cancel", "job", "j2", "cancelled", T0 + timedelta(minutes=2)),
        ("user:carol", "job.create", "job", "j2", "requested", T0 + timedelta(minutes=1)),
    ]
    assert sorted(trail()) == sorted(expected)
    assert {r["id"] for r in audit.search("acme")} == {
        e.event_id for e in store.read_all(after=0, limit=100) if e.actor == "user:carol"
    }
    # replayed: a crash before the checkpoint moved, then a rebuild from zero; no second row
    clickhouse.command("ALTER TABLE projection_checkpoints DELETE WHERE 1 SETTINGS mutations_sync = 1")
    projection.catch_up()
    projection.rebuild()
    assert sorted(trail()) == sorted(expected)
    assert clickhouse.rows("SELECT count() AS n FROM audit")[0]["n"] == 3
    # two projectors racing on one batch may both insert a row: readers still see it once
    raced = clickhouse.rows("SELECT * FROM audit WHERE action = 'job.create'")
    clickhouse.insert("audit", [[row[c] for c in AUDIT_COLUMNS] for row in raced], AUDIT_COLUMNS)
    assert clickhouse.rows("SELECT count() AS n FROM audit")[0]["n"] == 4
    assert sorted(trail()) == sorted(expected)
