"""What a person did outside the API, as audit entries derived from the log.

The gateway writes one audit row per API request itself (`gateway/dependencies.py`). A person
at the command line (`afep features approve`, `afep jobs resume --retry`, `afep webhooks add`…)
appends the same events as actor `user:<login>` with no request to audit, so the ClickHouse
events projection derives their rows from the log (`projections/clickhouse.py`): one per event,
with the action, resource and new state the API would record. Events of API callers (`key:<id>`,
a token's subject) and of agents derive nothing, so no API action is audited twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain import feature, job, webhook
from domain.envelope import LOCAL_USER, Envelope


@dataclass(frozen=True)
class UserAction:
    action: str
    resource_type: str
    resource_id: str
    new_state: str


ACTIONS: dict[type, Callable[[Any], UserAction]] = {
    job.JobRequested: lambda e: UserAction("job.create", "job", e.job_id, "requested"),
    job.JobCancelled: lambda e: UserAction("job.cancel", "job", e.job_id, "cancelled"),
    job.JobRetried: lambda e: UserAction("job.retry", "job", e.job_id, "requested"),
    feature.FeatureApproved: lambda e: UserAction("feature.approve", "feature", e.feature_id, "approved"),
    feature.FeatureDeprecated: lambda e: UserAction("feature.deprecate", "feature", e.feature_id, "deprecated"),
    feature.FeatureSyncRequested: lambda e: UserAction("feature.sync", "feature", e.feature_id, ""),
    webhook.WebhookSubscribed: lambda e: UserAction(
        "webhook.create",
        "webhook",
        e.subscription_id,
        json.dumps({"events": list(e.events), "url": e.url}, sort_keys=True),
    ),
    webhook.WebhookUnsubscribed: lambda e: UserAction("webhook.delete", "webhook", e.subscription_id, ""),
    webhook.WebhookSecretRotated: lambda e: UserAction("webhook.rotate_secret", "webhook", e.subscription_id, ""),
}


def user_action(envelope: Envelope) -> UserAction | None:
    """The audited action of a person at the command line, or None for anything else."""
    derive = ACTIONS.get(type(envelope.event))
    if derive is None or not envelope.actor.startswith(LOCAL_USER):
        return None
    return derive(envelope.event)
