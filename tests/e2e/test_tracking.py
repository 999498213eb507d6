"""MLflow tracking end to end: `afep run` returns with the job's runs in MLflow, found by `mlflow.search_runs`.

A real job (real LightGBM, a small table, a fixed seed) on the embedded tracking store;
then redeliveries of its JobCompleted (to the agent, and to the tracker directly) that
must find the runs instead of making new ones, and the read side that shows them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tables import customers

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO)}
ENV.pop("MLFLOW_TRACKING_URI", None)
ENV.pop("AFEP_MLFLOW_TRACKING_URI", None)
ENV.pop("AFEP_TRACKING", None)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One `afep run` with tracking on (the default): its result, out dir, data dir and tracking URI."""
    work = tmp_path_factory.mktemp("tracked")
    data, out, data_dir = work / "customers.csv", work / "out", work / "state"
    customers().write_csv(data)
    command = [
        sys.executable, "-m", "gateway.cli", "run", str(data), "--target", "Churn", "--seed", "0",
        "--max-candidates", "30", "--budget", "60", "--out", str(out), "--data-dir", str(data_dir), "--quiet",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=work, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    import mlflow

    uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    before, before_env = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    yield {
        "result": json.loads((out / "result.json").read_text()),
        "out": out,
        "data_dir": data_dir,
        "uri": uri,
        "work": work,
    }
    mlflow.set_tracking_uri(before)
    # set_tracking_uri also exports MLFLOW_TRACKING_URI, which processes started later would inherit
    if before_env is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before_env


def runs(experiment_id: str, where: str) -> list[Any]:
    import mlflow

    found = mlflow.search_runs(experiment_ids=[experiment_id], filter_string=where, output_format="list")
    return list(found)


def test_afep_run_returns_with_a_parent_run_child_runs_metrics_and_the_png(job: dict[str, Any]) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    result, out = job["result"], job["out"]
    tracked = result["experiment"]
    assert tracked is not None and tracked["feature_runs"] >= 1, result
    experiment = mlflow.get_experiment_by_name("afep/default/default")
    assert experiment is not None and experiment.experiment_id == tracked["experiment_id"]
    assert Path(experiment.artifact_location.removeprefix("file://")).is_relative_to(job["data_dir"] / "mlflow")

    parents = runs(experiment.experiment_id, f"tags.`afep.job_id` = '{result['job_id']}' and tags.`afep.kind` = 'job'")
    assert [p.info.run_id for p in parents] == [tracked["run_id"]]
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.info.run_name == f"job_{result['job_id']}"
    assert parent.data.params["target"] == "Churn" and parent.data.params["seed"] == "0"
    assert parent.data.params["source"].endswith("customers.csv") and len(parent.data.params["dataset_sha256"]) == 64
    assert parent.data.metrics["baseline_score"] == pytest.approx(result["baseline_score"])
    assert parent.data.metrics["final_score"] == pytest.approx(result["final_score"])
    assert parent.data.metrics["selected"] == result["counts"]["selected"]

    children = runs(experiment.experiment_id, f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == tracked["feature_runs"] == parent.data.metrics["confirmed"]
    client = MlflowClient(job["uri"])
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["afep.job_id"] == result["job_id"]
        assert {"lift", "ci_low", "ci_high", "p_value"} <= set(child.data.metrics)
        assert child.data.metrics["ci_low"] <= child.data.metrics["lift"] <= child.data.metrics["ci_high"]
        assert len(child.data.params["code_hash"]) == 64 and json.loads(child.data.params["definition"])
        assert child.data.params["model"] == "lightgbm" and float(child.data.params["model.learning_rate"]) >= 0.1
        files = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert "feature_importance.png" in files and any(name.endswith(".py") for name in files), files
    png = Path(client.download_artifacts(children[0].info.run_id, "feature_importance.png", str(job["work"])))
    assert png.read_bytes().startswith(PNG)

    selected = [c for c in children if c.data.tags["afep.selected"] == "true"]
    assert len(selected) == result["counts"]["selected"]
    assert all(c.data.metrics["importance_rank"] >= 1 for c in selected)
    # the parent holds the job's features.json, the same file `afep run` wrote, with the child run ids
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"features.json", "feature_importance.png"}
    target = job["work"] / "parent-artifacts"
    target.mkdir(exist_ok=True)
    logged = json.loads(Path(client.download_artifacts(parent.info.run_id, "features.json", str(target))).read_text())
    assert logged == json.loads((out / "features.json").read_text())
    assert {r["mlflow_run_id"] for r in logged} == {c.info.run_id for c in selected}


def test_the_cli_and_the_api_show_the_runs(job: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from gateway.app import create_app
    from gateway.auth import create_api_key
    from gateway.settings import Settings

    result, tracked = job["result"], job["result"]["experiment"]
    shown = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "jobs", "show", result["job_id"], "--data-dir", str(job["data_dir"])],
        cwd=job["work"], env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert tracked["run_id"] in shown.stdout and '"experiment_id"' in shown.stdout

    settings = Settings(data_dir=job["data_dir"], secret_key="a-tracking-test-secret-long-enough!!")
    key = create_api_key(settings, "default", "viewer")
    features = json.loads((job["out"] / "features.json").read_text())
    with TestClient(create_app(settings)) as http:
        headers = {"Authorization": f"Bearer {key}"}
        row = http.get(f"/api/v1/jobs/{result['job_id']}", headers=headers)
        assert row.status_code == 200, row.text
        assert (row.json()["experiment_id"], row.json()["experiment_run_id"]) == (
            tracked["experiment_id"],
            tracked["run_id"],
        )
        assert row.json()["experiment_feature_runs"] == tracked["feature_runs"]
        feature = http.get(f"/api/v1/features/{features[0]['feature_id']}", headers=headers)
        assert feature.status_code == 200, feature.text
        assert feature.json()["evaluation"] == {
            "experiment_id": tracked["experiment_id"],
            "parent_run_id": tracked["run_id"],
            "run_id": features[0]["mlflow_run_id"],
        }


def untracked_copy(data_dir: Path) -> Any:
    """The job's log as it was before the tracking agent committed (a reaction lost with its process)."""
    from commands.memory_store import InMemoryEventStore
    from commands.recorder_store import SqliteEventStore

    store = SqliteEventStore(data_dir / "events.db")
    try:
        envelopes = store.read_all(limit=1_000_000)
    finally:
        store.close()
    copy = InMemoryEventStore()
    copy.append([e for e in envelopes if e.event_type not in ("ExperimentTracked", "FeatureRunTracked")])
    return copy


def test_a_redelivered_job_completed_finds_its_runs_and_makes_no_second_parent(job: dict[str, Any]) -> None:
    from commands.store import Tracking
    from commands.unit_of_work import load_job
    from domain.job import JobCompleted
    from processors.agents import tracking
    from processors.reaction import react
    from processors.workbench import Workbench

    result, tracked, data_dir = job["result"], job["result"]["experiment"], job["data_dir"]
    store = untracked_copy(data_dir)
    bench = Workbench(
        data_dir / "datasets", data_dir / "artifacts", tracking_uri=job["uri"],
        tracking_artifacts=data_dir / "mlflow" / "artifacts",
    )  # fmt: skip
    completed = next(e for e in store.read_all(limit=1_000_000) if isinstance(e.event, JobCompleted))
    first = tracking.react(completed, store, bench)
    second = tracking.react(completed, store, bench)  # delivered again before anything was committed
    recorded = [c for c in first if type(c).__name__ != "Trace"]
    assert recorded == [c for c in second if type(c).__name__ != "Trace"]
    experiment = recorded[-1]
    assert (experiment.experiment_id, experiment.run_id) == (tracked["experiment_id"], tracked["run_id"])
    assert experiment.feature_runs == tracked["feature_runs"] == len(recorded) - 1

    parents = runs(tracked["experiment_id"], f"tags.`afep.job_id` = '{result['job_id']}' and tags.`afep.kind` = 'job'")
    assert len(parents) == 1
    assert len(runs(tracked["experiment_id"], f"tags.mlflow.parentRunId = '{tracked['run_id']}'")) == len(recorded) - 1

    # as the runtimes deliver it: recorded once with the agent's position, then a no-op
    react(store, bench, tracking, completed, Tracking(tracking.NAME, completed.position))
    assert react(store, bench, tracking, completed, Tracking(tracking.NAME, completed.position)) == []
    state = load_job(store, result["job_id"])
    assert state is not None and state.experiment is not None and state.experiment.run_id == tracked["run_id"]
    assert tracking.settled(store, bench, result["job_id"])


def test_a_run_left_unfinished_is_completed_not_duplicated(job: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    from processors.tracking import track_job
    from processors.tracking.mlflow_tracker import MlflowTracker

    result, tracked = job["result"], job["result"]["experiment"]
    client = MlflowClient(job["uri"])
    children = runs(tracked["experiment_id"], f"tags.mlflow.parentRunId = '{tracked['run_id']}'")
    client.update_run(children[0].info.run_id, status="RUNNING")  # the process died while logging it
    store = untracked_copy(job["data_dir"])
    again = track_job(
        store, result["job_id"], "default", MlflowTracker(job["uri"], job["data_dir"] / "mlflow" / "artifacts")
    )
    assert again is not None and again.run_id == tracked["run_id"]
    assert sorted(again.feature_runs.values()) == sorted(c.info.run_id for c in children)
    assert client.get_run(children[0].info.run_id).info.status == "FINISHED"
    assert len(runs(tracked["experiment_id"], f"tags.`afep.job_id` = '{result['job_id']}'")) == 1 + len(children)


def test_a_tracker_that_fails_leaves_the_job_completed_with_a_trace(job: dict[str, Any], tmp_path: Path) -> None:
    from domain.job import JobCompleted
    from processors.agents import tracking
    from processors.workbench import Workbench

    (tmp_path / "file").write_text("not a folder")
    bench = Workbench(
        tmp_path / "d", tmp_path / "a", tracking_uri=f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}"
    )  # the store cannot be created under a file
    store = untracked_copy(job["data_dir"])
    completed = next(e for e in store.read_all(limit=1_000_000) if isinstance(e.event, JobCompleted))
    commands = tracking.react(completed, store, bench)
    assert [type(c).__name__ for c in commands] == ["Trace"]
    assert commands[0].kind == "decision" and "not tracked in MLflow" in commands[0].message
