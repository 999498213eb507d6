"""Every event type in one registry: the log's vocabulary."""

from __future__ import annotations

from domain import activity, feature, job

JOB_EVENTS: tuple[type, ...] = (
    job.JobRequested,
    job.SchemaAnalyzed,
    job.DomainResearched,
    job.RoundStarted,
    job.StageCompleted,
    job.RoundCompleted,
    job.JobCompleted,
    job.JobFailed,
    job.JobCancelled,
    job.JobRetried,
    job.ExperimentTracked,
)
FEATURE_EVENTS: tuple[type, ...] = (
    feature.FeatureProposed,
    feature.CodeGenerated,
    feature.CodeExecuted,
    feature.FeatureEvaluated,
    feature.FeatureSelected,
    feature.FeatureRejected,
    feature.FeatureApproved,
    feature.FeatureDeprecated,
    feature.FeatureRegistered,
    feature.FeatureMaterialized,
    feature.FeatureRunTracked,
)
ACTIVITY_EVENTS: tuple[type, ...] = (activity.AgentTraced, activity.ProgressReported)

ALL_EVENTS: tuple[type, ...] = JOB_EVENTS + FEATURE_EVENTS + ACTIVITY_EVENTS
EVENT_TYPES: dict[str, type] = {cls.__name__: cls for cls in ALL_EVENTS}
