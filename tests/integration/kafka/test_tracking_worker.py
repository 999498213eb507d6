"""The tracking agent as a faust worker of its own (`afep worker --agents experiments`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from commands.unit_of_work import load_job
from tests.integration.kafka.conftest import SPLIT
from tests.integration.kafka.test_distributed import request_job, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_a_worker_running_the_tracking_agent_logs_the_job_to_mlflow(cluster: Any, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from tests.tables import customers

    table = tmp_path / "customers.csv"
    customers().write_csv(table)
    cluster.start_all(workers=(*SPLIT, "experiments"))
    store = cluster.open_store()
    try:
        job_id = request_job(store, table)

        def tracked() -> bool:
            job = load_job(store, job_id)
            return job is not None and job.experiment is not None

        wait_until(tracked, "the job's ExperimentTracked", cluster)
        job = load_job(store, job_id)
        assert job is not None and job.status == "completed" and job.experiment is not None
        runs = [e for e in store.read_all(limit=100_000) if e.event_type == "FeatureRunTracked"]
        assert len(runs) == job.experiment.feature_runs >= 1
        assert all(e.actor == "agent:experiments" and e.event.parent_run_id == job.experiment.run_id for e in runs)
    finally:
        store.close()
    client = MlflowClient(f"sqlite:///{cluster.data_dir / 'mlflow' / 'mlflow.db'}")
    parent = client.get_run(job.experiment.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["afep.job_id"] == job_id
    children = client.search_runs([job.experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.info.run_id for c in children) == sorted(e.event.run_id for e in runs)
