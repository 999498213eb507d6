"""The agents. Each module: NAME, SUBSCRIBES (the events it reacts to) and `react`.

Where an event is handled:
  JobRequested, JobRetried            -> schema
  SchemaAnalyzed                      -> research
  DomainResearched, RoundCompleted    -> planner
  RoundStarted                        -> ideation (and evaluation: round 1 fits its baseline
                                         in the background meanwhile)
  StageCompleted(ideation)            -> codegen
  StageCompleted(codegen)             -> execution
  StageCompleted(execution)           -> evaluation
  JobCompleted                        -> knowledge (accepted web research extends the knowledge base)
  JobCompleted                        -> experiments (tracking.py: MLflow runs)
  FeatureApproved, FeatureDeprecated,
  FeatureSyncRequested                -> feature_store (Feast: apply the view's new version, materialize;
                                         a sync request retries a failed one)
  JobRequested/Retried/Completed/Failed,
  FeatureSelected/Approved/Deprecated -> webhooks (queues deliveries; processors/webhooks sends them)
Where it is decided: domain/job.py, domain/feature.py and domain/webhook.py (`decide`).
Where it is projected: projections/ (one module per read model, listed in projections/projector.py).
"""

from __future__ import annotations

from processors.agents import (
    codegen,
    evaluation,
    execution,
    feature_store,
    ideation,
    knowledge,
    planner,
    research,
    schema,
    tracking,
    webhooks,
)

# The local runtime gives each agent its new events in this order, pass after pass:
# evaluation sees RoundStarted before ideation, so its background baseline fits start
# before the round's candidates are proposed, generated and executed.
# webhooks last: in the same pass it sees what the other agents recorded about an event (the
# feature store's view of an approved feature, when that agent registered it: feature_store
# comes before it for that).
AGENTS = (
    schema,
    research,
    planner,
    evaluation,
    ideation,
    codegen,
    execution,
    knowledge,
    tracking,
    feature_store,
    webhooks,
)
