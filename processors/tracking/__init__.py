"""Experiment tracking: a completed job as an MLflow experiment run with one child run per confirmed candidate.

- `specs.py`: the runs a job becomes (experiment per tenant and project, parent run,
  child runs of the confirmed candidates, their params and metrics); pure.
- `charts.py`: the feature-importance PNG (matplotlib, Agg canvas).
- `mlflow_tracker.py`: `MlflowTracker` writes a plan idempotently (runs found by tag).

`track_job` is what the tracking agent (`processors/agents/tracking.py`) calls.
`mlflow` and matplotlib are imported only when a job is tracked, never when this
package is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from commands.store import EventStore
from commands.unit_of_work import load_job
from domain.activity import activity_stream
from domain.feature import Feature
from domain.job import Job, JobCompleted, job_stream
from processors.export import job_features, selected_records
from processors.tracking.specs import JobPlan, experiment_name, job_step, plan_job

if TYPE_CHECKING:
    from processors.tracking.mlflow_tracker import MlflowTracker, Tracked

__all__ = ["JobPlan", "experiment_name", "plan", "track_job"]


def plan(store: EventStore, job: Job, features: list[Feature], tenant_id: str) -> JobPlan | None:
    """The runs of `job` (with `features`, all of its features); None unless it is completed."""
    if job.status != "completed":
        return None
    stream = store.read_stream(job_stream(job.job_id))
    completed = next((e.event for e in reversed(stream) if isinstance(e.event, JobCompleted)), None)
    if completed is None:
        return None
    traces = [e.event for e in store.read_stream(activity_stream(job.job_id, "evaluation"))]
    return plan_job(job, completed, features, tenant_id=tenant_id, learning_rate=job_step(traces))


def track_job(store: EventStore, job_id: str, tenant_id: str, tracker: MlflowTracker) -> Tracked | None:
    """Log the completed job `job_id` to `tracker`; None if it is not completed."""
    job = load_job(store, job_id)
    if job is None:
        return None
    features = job_features(store, job)
    runs = plan(store, job, features, tenant_id)
    if runs is None:
        return None
    return tracker.log_job(runs, selected_records(job, features))
