"""Experiment tracking without MLflow: the runs a completed job becomes, the chart, the agent's rules, the read side."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from commands.memory_store import InMemoryEventStore
from commands.unit_of_work import Trace, execute, load_feature, load_job
from domain import feature as f
from domain import job as j
from domain.envelope import Context
from processors.agents import tracking as agent
from processors.export import job_features
from processors.tracking import experiment_name, plan
from processors.tracking.charts import ImportanceChart
from processors.tracking.specs import MAX_PARAM, Bar, confirmed_evaluation, job_step
from processors.workbench import Workbench

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SOURCE = "postgresql://ana:hunter2@db.example:5432/shop?sslmode=require"
PNG = b"\x89PNG\r\n\x1a\n"


def ctx(job_id: str = "j1", tenant: str = "acme") -> Context:
    return Context(at=AT, tenant_id=tenant, correlation_id=job_id)


def feature_commands(fid: str, name: str, stage: str | None, *, ok: bool = True, **evaluation: Any) -> list[Any]:
    spec = json.dumps({"op": "ratio", "args": ["debt", "income"]})
    commands: list[Any] = [
        f.ProposeFeature(fid, "j1", 1, name, f"{name} described", "why", spec, ("debt", "income"), 0.5, "kb", ()),
        f.RecordCode(fid, f"def {name}(df):\n    return df", "polars", f"hash-{fid}", "SELECT 1", "duckdb", False),
        f.RecordExecution(fid, ok, None if ok else "boom", None, 2.0, "a.npy" if ok else None, 0.0, 10),
    ]
    if stage is not None:
        values = {"lift": None, "ci_low": None, "ci_high": None, "p_value": None, "importance_rank": None}
        values.update(evaluation)
        commands.append(f.RecordEvaluation(fid, 1, stage, "roc_auc", 0.02, reason="why", **values))
    return commands


SELECTED = {"lift": 0.01, "ci_low": 0.004, "ci_high": 0.016, "p_value": 0.001, "importance_rank": 2}


def completed_store(*, learning_rate: float = 0.15) -> InMemoryEventStore:
    """A job with a selected feature, a confirmed one, one dropped at screening and a failed one."""
    store = InMemoryEventStore()
    commands: list[Any] = [
        j.RequestJob("j1", "risk", SOURCE, "loans", "Status", "auto", 60.0, 7, 1, 20, "loan_id"),
        j.RecordSchemaAnalysis(
            "j1", 1, "/data/x.parquet", "sha-abc", 800, 9, "classification", "roc_auc", "1", "{}", (), ()
        ),
        j.RecordDomainResearch("j1", 1, ("credit",), "{}", ()),
        j.StartRound("j1", 1, "kb", 20),
        *feature_commands("f1", "debt_to_income", "select", **SELECTED),
        *feature_commands("f2", "age_bucket", "confirm", lift=-0.002, ci_low=-0.01, ci_high=0.006, p_value=0.6),
        *feature_commands("f3", "noise", "screen"),
        *feature_commands("f4", "broken", None, ok=False),
        j.CompleteStage("j1", 1, "ideation", ("f1", "f2", "f3", "f4"), 4, 0),
        Trace("j1", "evaluation", "tool_call", "evaluate_round(4 candidates, …)", {"learning_rate": learning_rate}),
        f.SelectFeature("f1", 1, "helps"),
        f.RejectFeature("f2", "evaluation", "no lift"),
        j.CompleteRound("j1", 1, "roc_auc", 0.80, 0.81, ("f1",), 3),
        j.CompleteJob(
            "j1", ("f1",), "roc_auc", 0.80, 0.81, json.dumps({"stop_reason": "done", "elapsed_seconds": 12.5})
        ),
    ]
    execute(store, [(c, ctx()) for c in commands])
    return store


def job_plan(store: InMemoryEventStore, tenant: str = "acme") -> Any:
    job = load_job(store, "j1")
    assert job is not None
    made = plan(store, job, job_features(store, job), tenant)
    assert made is not None
    return made


def test_confirmed_candidates_get_child_runs_the_selected_first() -> None:
    made = job_plan(completed_store())
    assert [fid for fid, _ in made.features] == ["f1", "f2"]  # f3 stopped at screening, f4 never ran
    assert [(b.feature_id, b.selected, b.importance_rank) for b in made.bars] == [("f1", True, 2), ("f2", False, None)]
    selected, confirmed = (spec for _, spec in made.features)
    assert selected.name == "feature_debt_to_income"
    assert selected.key == {"afep.kind": "feature", "afep.feature_id": "f1"}
    assert selected.tags["afep.job_id"] == "j1" and selected.tags["afep.selected"] == "true"
    assert selected.metrics == {
        "lift": 0.01, "ci_low": 0.004, "ci_high": 0.016, "p_value": 0.001, "importance_rank": 2.0, "screen_gain": 0.02
    }  # fmt: skip
    assert "importance_rank" not in confirmed.metrics and confirmed.tags["afep.selected"] == "false"
    assert confirmed.tags["afep.stage"] == "confirm"


def test_a_child_run_holds_the_definition_code_and_the_evaluations_model_settings() -> None:
    _, spec = job_plan(completed_store(learning_rate=0.15)).features[0]
    params = spec.params
    assert json.loads(params["definition"]) == {"op": "ratio", "args": ["debt", "income"]}
    assert params["code_hash"] == "hash-f1" and params["source_columns"] == "debt,income"
    assert params["model"] == "lightgbm" and params["model.objective"] == "binary"
    assert params["model.learning_rate"] == "0.15" and params["model.seed"] == "7"
    assert params["evaluation.confirm_splits"] == "20" and params["fitted"] == "false"
    assert "model.num_threads" not in params
    assert spec.texts == {
        "debt_to_income.py": "def debt_to_income(df):\n    return df\n",
        "debt_to_income.sql": "SELECT 1\n",
    }
    assert spec.highlight == "f1"


def test_the_parent_run_holds_the_job_without_credentials() -> None:
    made = job_plan(completed_store())
    parent = made.job
    assert parent.key == {"afep.kind": "job", "afep.job_id": "j1"} and parent.name == "job_j1"
    assert parent.params["source"] == "postgresql://ana@db.example:5432/shop"  # no password, no options
    assert "hunter2" not in json.dumps([parent.params, parent.tags])
    assert {k: parent.params[k] for k in ("target", "task", "seed", "metric", "budget_seconds", "dataset_sha256")} == {
        "target": "Status", "task": "classification", "seed": "7", "metric": "roc_auc", "budget_seconds": "60.0",
        "dataset_sha256": "sha-abc",
    }  # fmt: skip
    assert parent.params["entity"] == "loan_id" and parent.params["table"] == "loans"
    assert parent.metrics == {
        "baseline_score": 0.80, "final_score": 0.81, "proposed": 4.0, "executed": 3.0, "failed": 1.0,
        "selected": 1.0, "confirmed": 2.0, "rounds": 1.0, "elapsed_seconds": 12.5,
    }  # fmt: skip
    assert parent.tags["afep.tenant_id"] == "acme" and parent.tags["afep.stop_reason"] == "done"


def test_each_tenant_and_project_has_its_own_experiment() -> None:
    store = completed_store()
    assert job_plan(store, "acme").experiment == "afep/acme/risk" == experiment_name("acme", "risk")
    assert job_plan(store, "globex").experiment == "afep/globex/risk"
    assert job_plan(store, "globex").folder == ("globex", "risk")


def test_a_job_that_is_not_completed_has_no_plan() -> None:
    store = InMemoryEventStore()
    execute(store, [(j.RequestJob("j1", "p", "d.csv", None, "y", "auto", 60.0, 0, 1, 10), ctx())])
    job = load_job(store, "j1")
    assert job is not None and plan(store, job, [], "acme") is None


def test_the_jobs_step_comes_from_the_evaluations_tool_call() -> None:
    store = completed_store(learning_rate=0.25)
    traces = [e.event for e in store.read_all() if e.stream_id.startswith("trace-j1-evaluation")]
    assert job_step(traces) == 0.25
    assert job_step([]) == 0.1  # no evaluate_round call traced: the default step


def test_the_last_confirmed_evaluation_counts() -> None:
    feature = load_feature(completed_store(), "f3")
    assert feature is not None and confirmed_evaluation(feature) is None
    feature = load_feature(completed_store(), "f1")
    assert feature is not None and confirmed_evaluation(feature) is feature.evaluations[-1]


def test_long_params_are_cut_to_mlflows_limit() -> None:
    store = completed_store()
    long_spec = json.dumps({"op": "x" * 7000})
    execute(
        store,
        [(f.ProposeFeature("f9", "j1", 1, "long", "d", "r", long_spec, ("debt",), 0.1, "kb", ()), ctx())],
    )
    feature = load_feature(store, "f9")
    assert feature is not None
    from processors.tracking.specs import _params

    cut = _params({"definition": feature.proposal.spec_json, "flag": True, "none": None})
    assert len(cut["definition"]) == MAX_PARAM and cut["definition"].endswith("…")
    assert cut["flag"] == "true" and "none" not in cut


def test_the_chart_is_a_png_with_and_without_candidates(tmp_path: Path) -> None:
    bars = [
        Bar("f1", "debt_to_income", 0.01, 0.004, 0.016, 1, True),
        Bar("f2", "x" * 80, -0.002, -0.01, 0.006, None, False),
    ]
    chart = ImportanceChart(bars, "roc_auc")
    one = chart.save(tmp_path / "one.png", highlight="f1")
    two = chart.save(tmp_path / "two.png", highlight="f2")
    empty = ImportanceChart([], "rmse").save(tmp_path / "empty.png")
    for path in (one, two, empty):
        assert path.read_bytes().startswith(PNG)
    assert one.read_bytes() != two.read_bytes()  # each run's chart marks its own feature


# ------------------------------------------------------------------ the agent


def bench(tmp_path: Path, uri: str | None) -> Workbench:
    return Workbench(tmp_path / "d", tmp_path / "a", clock=lambda: AT, tracking_uri=uri)


def completed_envelope(store: InMemoryEventStore) -> Any:
    return next(e for e in store.read_all() if isinstance(e.event, j.JobCompleted))


def test_the_agent_does_nothing_when_tracking_is_off(tmp_path: Path) -> None:
    store = completed_store()
    off = bench(tmp_path, None)
    assert agent.react(completed_envelope(store), store, off) == []
    assert agent.settled(store, off, "j1")


def test_the_agent_waits_for_its_position_past_the_jobs_completion(tmp_path: Path) -> None:
    store = completed_store()
    on = bench(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not agent.settled(store, on, "j1")  # completed, not yet handled by the agent
    from commands.store import Tracking

    execute(store, [], tracking=Tracking(agent.NAME, completed_envelope(store).position))
    assert agent.settled(store, on, "j1")  # handled (tracked, or a trace says why not)
    assert agent.settled(store, on, "no-such-job")


def test_a_tracked_job_is_settled_and_not_tracked_again(tmp_path: Path) -> None:
    store = completed_store()
    execute(
        store,
        [
            (f.RecordFeatureRun("f1", "3", "parent0", "child1"), ctx()),
            (j.RecordExperiment("j1", "3", "parent0", 1), ctx()),
        ],
    )
    on = bench(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert agent.settled(store, on, "j1")
    assert agent.react(completed_envelope(store), store, on) == []  # never opens MLflow for it
    assert not (tmp_path / "mlflow.db").exists()


def test_a_tracking_failure_never_shows_the_servers_password(tmp_path: Path) -> None:
    from processors.agents.tracking import _scrubbed

    server = bench(tmp_path, "https://afep:s3cret-pw@mlflow.internal:5000")
    error = RuntimeError("API request to https://afep:s3cret-pw@mlflow.internal:5000/api/2.0/mlflow/runs failed")
    assert "s3cret-pw" not in _scrubbed(error, server) and "mlflow.internal" in _scrubbed(error, server)
    assert _scrubbed(error, bench(tmp_path, "sqlite:///x.db")) == str(error)


# ------------------------------------------------------------------ read side


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def readmodels(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    from projections.database import Database
    from projections.projector import read_model_tables
    from tests.conftest import POSTGRES_URL

    if request.param == "sqlite":
        db = Database(tmp_path / "readmodels.db")
        yield db
    else:
        db = Database(POSTGRES_URL, prefix=f"t{uuid.uuid4().hex[:10]}_")
        yield db
        db.run_script([f"DROP TABLE IF EXISTS {{{t}}}" for t in (*read_model_tables(), "projection_checkpoints")])
    db.close()


def test_the_read_models_show_the_runs_and_old_tables_get_the_columns(readmodels: Any) -> None:
    from projections import features, jobs
    from projections.features import get_feature
    from projections.jobs import get_job
    from projections.projector import Projector

    store = completed_store()
    execute(
        store,
        [
            (f.RecordFeatureRun("f1", "3", "parent0", "child1"), ctx()),
            (j.RecordExperiment("j1", "3", "parent0", 1), ctx()),
        ],
    )
    readmodels.run_script([*jobs.DDL, *features.DDL])  # the tables as the release before tracking made them
    with pytest.raises(Exception, match="experiment_run_id"), readmodels.transaction(write=False) as tx:
        tx.all("SELECT experiment_run_id FROM {jobs}")
    projector = Projector(readmodels, store)
    projector.create_tables()
    projector.create_tables()  # again: the columns are there, nothing is added twice
    projector.catch_up()
    row = get_feature(readmodels, "acme", "f1")
    assert row is not None and row["evaluation"] == {
        "experiment_id": "3",
        "parent_run_id": "parent0",
        "run_id": "child1",
    }
    assert "mlflow_run_id" not in row  # shown once, under `evaluation`
    other = get_feature(readmodels, "acme", "f2")
    assert other is not None and other["evaluation"] == {"experiment_id": None, "parent_run_id": None, "run_id": None}
    job = get_job(readmodels, "acme", "j1")
    assert job is not None
    assert (job["experiment_id"], job["experiment_run_id"], job["experiment_feature_runs"]) == ("3", "parent0", 1)
