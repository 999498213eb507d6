"""Every event type in one registry: the log's vocabulary."""

from __future__ import annotations

from domain import activity, feature, job, webhook

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
    feature.FeatureSyncRequested,
    feature.FeatureRegistered,
    feature.FeatureMaterialized,
    feature.FeatureRunTracked,
)
ACTIVITY_EVENTS: tuple[type, ...] = (activity.AgentTraced, activity.ProgressReported)
WEBHOOK_SUBSCRIPTION_EVENTS: tuple[type, ...] = (
    webhook.WebhookSubscribed,
    webhook.WebhookUnsubscribed,
    webhook.WebhookSecretRotated,
)
WEBHOOK_DELIVERY_EVENTS: tuple[type, ...] = (
    webhook.WebhookQueued,
    webhook.WebhookAttemptStarted,
    webhook.WebhookAttemptFailed,
    webhook.WebhookDelivered,
    webhook.WebhookAbandoned,
)
WEBHOOK_EVENTS: tuple[type, ...] = WEBHOOK_SUBSCRIPTION_EVENTS + WEBHOOK_DELIVERY_EVENTS

ALL_EVENTS: tuple[type, ...] = JOB_EVENTS + FEATURE_EVENTS + ACTIVITY_EVENTS + WEBHOOK_EVENTS
EVENT_TYPES: dict[str, type] = {cls.__name__: cls for cls in ALL_EVENTS}
