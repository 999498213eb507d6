"""Which domain events are webhook events, and the `data` each one's body carries.

    job.started         JobRequested, and JobRetried (the same job starting again: `attempt` > 1)
    job.completed       JobCompleted
    job.failed          JobFailed
    feature.generated   FeatureSelected: a job produced a feature that passed its significance
                        tests and now awaits a person's approval
    feature.approved    FeatureApproved (`approved_by` is the approving principal)
    feature.deprecated  FeatureDeprecated

`job.started` follows JobRequested rather than SchemaAnalyzed: a job whose source cannot be
read fails before any analysis, and its receivers should still see it start and fail.
`feast_feature_view` is the feature store's view when a FeatureRegistered event is already in
the log when the webhook is queued, else null: approval does not wait for the feature store.
Free text is cut to `MAX_TEXT` characters, and the server's data dir is never shown.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commands.store import EventStore
from commands.unit_of_work import load_feature
from domain import feature, job
from domain.envelope import Envelope
from domain.validation import printable

MAX_TEXT = 2000
MAX_IDS = 500  # selected_feature_ids lists at most this many (n_selected counts them all)
EVENT_NAMES: dict[type, str] = {
    job.JobRequested: "job.started",
    job.JobRetried: "job.started",
    job.JobCompleted: "job.completed",
    job.JobFailed: "job.failed",
    feature.FeatureSelected: "feature.generated",
    feature.FeatureApproved: "feature.approved",
    feature.FeatureDeprecated: "feature.deprecated",
}


@dataclass(frozen=True)
class Subject:
    """Whose event it is (the job's tenant and project) and what the body says about it."""

    tenant_id: str
    project_id: str
    data: dict[str, Any]


def webhook_event(envelope: Envelope) -> str | None:
    return EVENT_NAMES.get(type(envelope.event))


def describe(envelope: Envelope, store: EventStore, data_dir: Path | None = None) -> Subject | None:
    """The subject of a webhook event, or None when its job is not in the log."""
    e = envelope.event
    job_id = str(getattr(e, "job_id", ""))
    stream = store.read_stream(job.job_stream(job_id))
    if not stream:
        return None
    state: Any = None
    for recorded in stream:
        state = job.evolve(state, recorded.event)
    owner = stream[0].tenant_id  # the job's tenant, whoever recorded this event
    project = state.request.project_id
    base: dict[str, Any] = {"job_id": job_id, "project_id": project}
    match e:
        case job.JobRequested() | job.JobRetried():
            attempt = e.attempt if isinstance(e, job.JobRetried) else 1
            request = state.request
            data = {**base, "attempt": attempt, "target": request.target, "task": request.task}
            return Subject(owner, project, {**data, "started_by": envelope.actor})
        case job.JobCompleted():
            scores = {"baseline_score": _number(e.baseline_score), "final_score": _number(e.final_score)}
            selected = {"n_selected": len(e.selected_ids), "selected_feature_ids": list(e.selected_ids[:MAX_IDS])}
            return Subject(owner, project, {**base, "metric": e.metric, **scores, **selected})
        case job.JobFailed():
            reason = _text(_redact(e.reason, data_dir))
            return Subject(owner, project, {**base, "stage": e.stage, "reason": reason})
    return _feature_subject(envelope, store, owner, project, base)


def _feature_subject(
    envelope: Envelope, store: EventStore, owner: str, project: str, base: dict[str, Any]
) -> Subject | None:
    e = envelope.event
    state = load_feature(store, e.feature_id)
    if state is None:
        return None
    named = {"feature_id": e.feature_id, "feature_name": state.proposal.name, **base}
    registration = state.registration
    match e:
        case feature.FeatureSelected():
            scored = next((x for x in reversed(state.evaluations) if x.lift is not None), None)
            evaluation = {
                "metric": scored.metric if scored else None,
                "lift": _number(scored.lift) if scored else None,
                "ci_low": _number(scored.ci_low) if scored else None,
                "ci_high": _number(scored.ci_high) if scored else None,
                "p_value": _number(scored.p_value) if scored else None,
            }
            description = _text(state.proposal.description)
            return Subject(owner, project, {**named, "description": description, **evaluation})
        case feature.FeatureApproved():
            view = registration.feature_view if registration and registration.status == "registered" else None
            data = {**named, "approved_by": envelope.actor, "comment": _text(e.comment)}
            return Subject(owner, project, {**data, "feast_feature_view": view})
        case feature.FeatureDeprecated():
            data = {**named, "deprecated_by": envelope.actor, "reason": _text(e.reason)}
            return Subject(owner, project, {**data, "feast_feature_view": registration and registration.feature_view})
    return None


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _text(value: str) -> str:
    return printable(value, MAX_TEXT)


def _redact(text: str, data_dir: Path | None) -> str:
    """`text` without the data dir's absolute path (failure reasons may quote a snapshot's path)."""
    if data_dir is None:
        return text
    forms = {str(data_dir.absolute()), str(data_dir.resolve()), os.path.realpath(data_dir)}
    for form in sorted((f.rstrip("/") for f in forms if len(f.rstrip("/")) > 1), key=len, reverse=True):
        text = text.replace(form, "<data dir>")
    return text
