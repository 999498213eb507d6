"""Contract: the SQL projections behave the same on SQLite and PostgreSQL.

One abstract suite, one subclass per backend (pyeventsourcing style).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commands.recorder_store import SqliteEventStore
from commands.store import EventStore
from commands.unit_of_work import Progress, Trace, execute
from domain import feature, job
from domain.envelope import Context
from projections import agents, features, jobs, lineage
from projections.database import Database
from projections.projector import Projector, read_model_tables

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def ctx(step: int, actor: str = "system", tenant: str = "acme", causation: str | None = None) -> Context:
    return Context(at=T0 + timedelta(seconds=step), actor=actor, tenant_id=tenant, causation_id=causation)


def run_job(
    store: EventStore,
    job_id: str,
    *,
    tenant: str = "acme",
    project: str = "p1",
    names: tuple[str, ...] = ("ratio_a_b", "log_c"),
) -> None:
    """A job from request to approval, appended the way the agents and a human would."""
    request = job.RequestJob(job_id, project, "data.csv", None, "y", "auto", 60.0, 0, 1, 10)
    [requested] = execute(store, [(request, ctx(0, "alice", tenant))])
    cause = requested.event_id
    execute(
        store,
        [
            (Trace(job_id, "schema", "thought", "looking at columns", {"n": 3}), ctx(1, "schema", tenant, cause)),
            (
                job.RecordSchemaAnalysis(
                    job_id, 1, "/d.parquet", "sha", 100, 3, "classification", "auc", "1", "{}", (), ()
                ),
                ctx(2, "schema", tenant, cause),
            ),
        ],
    )
    execute(
        store,
        [
            (
                job.RecordDomainResearch(job_id, 1, ("finance",), "{}", ("https://ex.org/a",)),
                ctx(3, "research", tenant, cause),
            )
        ],
    )
    execute(store, [(job.StartRound(job_id, 1, "broad", 10), ctx(4, "planner", tenant, cause))])
    fids = []
    for i, name in enumerate(names):
        fid = f"{job_id}-f{i}"
        fids.append(fid)
        execute(
            store,
            [
                (
                    feature.ProposeFeature(
                        fid,
                        job_id,
                        1,
                        name,
                        "desc",
                        "why",
                        '{"op": "ratio"}',
                        ("a", "b"),
                        0.1,
                        "ideation",
                        ("https://ex.org/a",),
                    ),
                    ctx(5, "ideation", tenant, cause),
                ),
                (feature.RecordCode(fid, "code", "polars", "h", None, None, False), ctx(6, "codegen", tenant, cause)),
                (
                    feature.RecordExecution(fid, i == 0 or len(names) == 1, None, None, 3.0, None, 0.0, 10),
                    ctx(7, "sandbox", tenant, cause),
                ),
                (
                    Progress(job_id, "execution", "execution", i + 1, len(names), "executing"),
                    ctx(7, "sandbox", tenant, cause),
                ),
            ],
        )
    execute(
        store,
        [
            (
                feature.RecordEvaluation(fids[0], 1, "confirm", "auc", 0.01, 0.02, 0.01, 0.03, 0.01, 1, "ok"),
                ctx(8, "evaluator", tenant, cause),
            ),
            (feature.SelectFeature(fids[0], 1, "significant"), ctx(9, "evaluator", tenant, cause)),
        ],
    )
    if len(fids) > 1:
        execute(store, [(feature.RejectFeature(fids[1], "execution", "failed"), ctx(9, "evaluator", tenant, cause))])
    execute(store, [(job.CompleteJob(job_id, (fids[0],), "auc", 0.7, 0.72, "{}"), ctx(10, "planner", tenant, cause))])
    execute(store, [(feature.ApproveFeature(fids[0], "ship it"), ctx(11, "alice", tenant))])


def dump(db: Database) -> dict[str, list[dict[str, object]]]:
    with db.transaction(write=False) as tx:
        return {t: tx.all(f"SELECT * FROM {{{t}}} ORDER BY 1") for t in read_model_tables()}


class ProjectionContract:
    @pytest.fixture
    def db(self) -> Iterator[Database]:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EventStore]:
        store = SqliteEventStore(tmp_path / "events.db")
        yield store
        store.close()

    @pytest.fixture
    def projector(self, db: Database, store: EventStore) -> Projector:
        projector = Projector(db, store, batch_size=7)
        projector.create_tables()
        return projector

    def test_job_and_features_are_projected(self, projector: Projector, store: EventStore, db: Database) -> None:
        run_job(store, "j1")
        assert projector.catch_up() == store.last_position()
        row = jobs.get_job(db, "acme", "j1")
        assert row is not None
        assert (row["status"], row["stage"], row["n_proposed"], row["n_executed"], row["n_failed"]) == (
            "completed",
            "done",
            2,
            1,
            1,
        )
        assert (row["n_selected"], row["n_rejected"], row["final_score"], row["progress_done"]) == (1, 1, 0.72, 2)
        assert row["started_at"] and row["completed_at"] and row["requested_by"] == "alice"
        approved = features.get_feature(db, "acme", "j1-f0")
        assert approved is not None and approved["status"] == "approved" and approved["approved_by"] == "alice"
        assert approved["lift"] == 0.02 and approved["source_columns"] == ["a", "b"] and approved["exec_ok"] is True
        # the last evaluation stage each feature reached filters the list (the finalists: "select")
        reached = features.list_features(db, "acme", job_id="j1", eval_stage="confirm").items
        assert [f["id"] for f in reached] == ["j1-f0"]
        assert features.list_features(db, "acme", job_id="j1", eval_stage="select").items == []

    def test_tenant_scoping(self, projector: Projector, store: EventStore, db: Database) -> None:
        run_job(store, "j1")
        projector.catch_up()
        assert jobs.get_job(db, "other", "j1") is None
        assert features.get_feature(db, "other", "j1-f0") is None
        assert jobs.list_jobs(db, "other").items == []

    def test_versions_increase_across_jobs(self, projector: Projector, store: EventStore, db: Database) -> None:
        run_job(store, "j1", names=("ratio_a_b",))
        run_job(store, "j2", names=("ratio_a_b",))
        run_job(store, "j3", project="p2", names=("ratio_a_b",))
        projector.catch_up()
        versions = {f["job_id"]: f["version"] for f in features.list_features(db, "acme", name="ratio_a_b").items}
        assert versions == {"j1": 1, "j2": 2, "j3": 1}

    def test_pagination_walks_every_job_once(self, projector: Projector, store: EventStore, db: Database) -> None:
        for i in range(5):
            execute(store, [(job.RequestJob(f"j{i}", "p1", "d.csv", None, "y", "auto", 1.0, 0, 1, 1), ctx(i))])
        projector.catch_up()
        seen, cursor = [], None
        while True:
            page = jobs.list_jobs(db, "acme", cursor=cursor, limit=2)
            seen += [r["id"] for r in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == ["j4", "j3", "j2", "j1", "j0"]

    def test_replaying_a_batch_is_a_no_op(self, projector: Projector, store: EventStore, db: Database) -> None:
        run_job(store, "j1")
        projector.catch_up()
        before = dump(db)
        assert projector.apply_batch(store.read_all(after=0, limit=10_000)) == 0
        assert dump(db) == before

    def test_rebuild_equals_live_tables(self, projector: Projector, store: EventStore, db: Database) -> None:
        run_job(store, "j1")
        projector.catch_up()
        run_job(store, "j2")
        projector.catch_up()
        live = dump(db)
        assert projector.rebuild() == store.last_position()
        assert dump(db) == live

    def test_agent_executions_traces_and_lineage(self, projector: Projector, store: EventStore, db: Database) -> None:
        run_job(store, "j1")
        projector.catch_up()
        executions = agents.list_executions(db, "acme", "j1").items
        by_agent = {e["agent_type"]: e for e in executions}
        assert by_agent["schema"]["status"] == "completed" and by_agent["schema"]["n_traces"] == 1
        assert "SchemaAnalyzed" in by_agent["schema"]["output"]
        traces = agents.list_traces(db, "acme", "j1").items
        assert [(t["trace_type"], t["content"]) for t in traces] == [("thought", {"n": 3})]
        graph = lineage.feature_lineage(db, "acme", "j1-f0")
        kinds = {(e["src_type"], e["dst_type"], e["relation"]) for e in graph["edges"]}
        assert {
            ("column", "feature", "derived_from"),
            ("feature", "domain_source", "cites"),
            ("feature", "job", "part_of"),
            ("feature", "agent_execution", "produced_by"),
        } <= kinds
        assert lineage.feature_lineage(db, "other", "j1-f0") == {"nodes": [], "edges": []}


class TestWithSQLite(ProjectionContract):
    @pytest.fixture
    def db(self, tmp_path: Path) -> Iterator[Database]:
        db = Database(tmp_path / "readmodels.db")
        yield db
        db.close()


@pytest.mark.postgres
class TestWithPostgres(ProjectionContract):
    @pytest.fixture
    def db(self) -> Iterator[Database]:
        db = Database(PG_URL, prefix=f"t{uuid.uuid4().hex[:10]}_")
        yield db
        db.run_script([f"DROP TABLE IF EXISTS {{{t}}}" for t in (*read_model_tables(), "projection_checkpoints")])
        db.close()
