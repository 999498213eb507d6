"""Tracking agent: logs every completed job to the experiment tracker (MLflow).

On JobCompleted it writes the job's experiment run and one child run per confirmed
candidate (`processors/tracking`), then records where they are: FeatureRunTracked
per child run and ExperimentTracked for the job. The workbench says where MLflow
is (`tracking_uri`; None turns tracking off). MLflow is imported on the first job
this agent tracks, not before: imported in the background while a job runs, it made
the job itself slower by more than it saved (its thread holds the GIL that the
agents, waiting on fit workers and the sandbox, need back at once).

A tracker that fails (a server that does not answer, a deleted experiment) leaves
the job completed and untracked, with a decision trace that says why; it never
fails the job.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from commands.store import EventStore
from commands.unit_of_work import Trace, load_job
from domain.envelope import Envelope
from domain.feature import RecordFeatureRun
from domain.job import JobCompleted, RecordExperiment
from domain.validation import printable
from processors.workbench import Workbench

NAME = "experiments"
SUBSCRIBES = (JobCompleted,)
MAX_REASON = 2000
PAGE = 500
log = logging.getLogger(__name__)


def react(envelope: Envelope, store: EventStore, bench: Workbench) -> list[Any]:
    if bench.tracking_uri is None:
        return []
    job_id = envelope.event.job_id
    job = load_job(store, job_id)
    if job is None or job.status != "completed" or job.experiment is not None:
        return []
    from processors.tracking import experiment_name, track_job

    name = experiment_name(envelope.tenant_id, job.request.project_id)
    bench.emit(
        [Trace(job_id, NAME, "tool_call", f"log_job(MLflow experiment {name!r}: a run for the job and its candidates)")]
    )
    try:
        tracked = track_job(store, job_id, envelope.tenant_id, tracker(bench))
    except Exception as error:  # whatever the tracker raises, the job stays completed
        log.warning("tracking job %s in MLflow failed: %s: %s", job_id, type(error).__name__, error)
        log.debug("tracking job %s in MLflow failed", job_id, exc_info=True)
        reason = printable(f"not tracked in MLflow: {type(error).__name__}: {_scrubbed(error, bench)}", MAX_REASON)
        return [Trace(job_id, NAME, "decision", f"{reason}; the job's results are unchanged")]
    if tracked is None:
        return []
    runs = tracked.feature_runs
    return [
        Trace(
            job_id,
            NAME,
            "tool_result",
            f"MLflow experiment {tracked.experiment_id}: run {tracked.run_id} with {len(runs)} candidate runs",
            {"experiment_id": tracked.experiment_id, "run_id": tracked.run_id, "feature_runs": runs},
        ),
        *(RecordFeatureRun(fid, tracked.experiment_id, tracked.run_id, run_id) for fid, run_id in runs.items()),
        RecordExperiment(job_id, tracked.experiment_id, tracked.run_id, len(runs)),
    ]


def _scrubbed(error: Exception, bench: Workbench) -> str:
    """The error's text without the tracking URI's password (tenants read traces; MLflow errors quote URLs)."""
    password = urlsplit(bench.tracking_uri or "").password
    return str(error).replace(password, "***") if password else str(error)


def tracker(bench: Workbench) -> Any:
    """The workbench's MLflow tracker, opened on first use (MLflow's import is most of the cost)."""
    from processors.tracking.mlflow_tracker import MlflowTracker

    uri = bench.tracking_uri
    assert uri is not None
    return bench.memo(("tracker", uri), lambda: MlflowTracker(uri, bench.tracking_artifacts))


def settled(store: EventStore, bench: Workbench, job_id: str) -> bool:
    """True once this agent has nothing more to do for the job: tracking is off, the job is not
    completed, or the agent has handled its JobCompleted (tracked it, or traced why not)."""
    if bench.tracking_uri is None:
        return True
    job = load_job(store, job_id)
    if job is None or job.status != "completed" or job.experiment is not None:
        return True
    position = store.tracking_position(NAME)
    while True:  # the job's JobCompleted is still ahead of this agent's position?
        page = store.read_all(after=position, limit=PAGE, types=[JobCompleted.__name__])
        if any(e.event.job_id == job_id for e in page):
            return False
        if len(page) < PAGE:
            return True
        position = page[-1].position
