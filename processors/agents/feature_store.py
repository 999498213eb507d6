"""Feature-store agent: registers approved features in Feast and serves them online.

On FeatureApproved, FeatureDeprecated and FeatureSyncRequested (`afep features sync`, a retry
once the cause of a failed registration or materialization is fixed) it reconciles the feature's view, one per
(tenant, project, source table), with the log: generates the project's Feast repository
under `<data dir>/feature_repo/`, applies the view's new version with `FeatureStore.apply`
and materializes its values into the online store, recording FeatureRegistered and
FeatureMaterialized (processors/featurestore/sync.py). Feast is imported here, inside the
reaction, never when the CLI or the API starts.
"""

from __future__ import annotations

from typing import Any

from commands.store import EventStore
from domain.envelope import Envelope
from domain.feature import FeatureApproved, FeatureDeprecated, FeatureSyncRequested
from processors.featurestore.config import FeatureStoreConfig
from processors.workbench import Workbench

NAME = "feature_store"
SUBSCRIBES = (FeatureApproved, FeatureDeprecated, FeatureSyncRequested)


def react(envelope: Envelope, store: EventStore, bench: Workbench) -> list[Any]:
    from processors.featurestore.sync import synchronize

    config = bench.feature_store or FeatureStoreConfig(root=bench.datasets_dir.parent / "feature_repo")
    requested = isinstance(envelope.event, FeatureSyncRequested)
    synchronize(store, bench, config, envelope.event.feature_id, requested=requested)  # records through bench.emit
    return []
