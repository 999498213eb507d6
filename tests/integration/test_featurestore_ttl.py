"""The view's TTL on online reads: a value materialized longer ago than the TTL is not served.

Feast leaves the TTL to the online store and neither SQLite nor Redis applies it, so AFEP's
reader does. Each test runs the feature-store agent on a small job (the feature's code in the
sandbox, Feast apply and materialize) with a clock set back, then reads as the CLI and the API
do; once for the embedded store (SQLite) and once for the production one (Redis).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from commands.memory_store import InMemoryEventStore
from commands.store import Tracking
from commands.unit_of_work import execute, load_feature
from domain import feature as f
from domain.envelope import Context
from domain.job import RecordSchemaAnalysis, RequestJob
from processors import reaction
from processors.agents import feature_store
from processors.featurestore.config import FeatureStoreConfig
from processors.featurestore.online import read_online
from processors.featurestore.repository import Repository
from processors.featurestore.values import TIMESTAMP
from processors.sources import snapshot
from processors.workbench import Workbench
from tests.conftest import reachable

pytestmark = [pytest.mark.feast]

TTL = 3600
REDIS_DB = 15  # the tests' own Redis database (as tests/integration/test_feature_store.py)
CODE = "import polars as pl\n\ndef feature(df, ref):\n    return pl.col('debt') / pl.col('income')\n"
FRAME = pl.DataFrame(
    {"cid": [1, 2, 3, 4], "debt": [1.0, 2.0, 3.0, 4.0], "income": [2.0, 2.0, 5.0, 1.0], "y": [0, 1, 0, 1]}
)
EXPECTED = {"1": 0.5, "4": 4.0}  # debt / income of those keys; 9 is not a key of the table


@dataclass
class Served:
    store: InMemoryEventStore
    bench: Workbench
    config: FeatureStoreConfig
    tenant: str
    materialized_at: datetime


@pytest.fixture(params=["sqlite", "redis"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """Feature f (debt / income of job j, keyed by cid) approved and materialized two hours ago, TTL one hour."""
    if request.param == "redis" and not reachable(6379):
        pytest.skip("Redis is not running at 127.0.0.1:6379; start redis-server to test the production store")
    redis = {"online": "redis", "redis_url": f"redis://127.0.0.1:6379/{REDIS_DB}"} if request.param == "redis" else {}
    config = FeatureStoreConfig(root=tmp_path / "feature_repo", ttl_seconds=TTL, **redis)  # type: ignore[arg-type]
    materialized_at = datetime.now(UTC) - timedelta(hours=2)
    bench = Workbench(
        datasets_dir=tmp_path / "datasets",
        artifacts_dir=tmp_path / "artifacts",
        clock=lambda: materialized_at,
        feature_store=config,
    )
    store = InMemoryEventStore()
    tenant = f"ttl{uuid.uuid4().hex[:8]}"  # its own Feast project: its own keys in the shared Redis database
    path, digest = snapshot(FRAME, bench.datasets_dir)
    ctx = Context(at=materialized_at, actor="user:t", tenant_id=tenant, correlation_id="j")
    commands = (
        RequestJob("j", "risk", "upload://loans.csv", None, "y", "auto", 60.0, 0, 1, 10, "cid"),
        RecordSchemaAnalysis("j", 1, str(path), digest, 4, 4, "classification", "roc_auc", "1", "{}", (), ()),
        f.ProposeFeature("f", "j", 1, "dti", "debt / income", "why", "{}", ("debt", "income"), 0.8, "kb", ()),
        f.RecordCode("f", CODE, "polars", "h", None, None, False),
        f.RecordExecution("f", True, None, None, 3.0, "a.npy", 0.0, 10),
        f.RecordEvaluation("f", 1, "confirm", "roc_auc", 0.01, 0.004, 0.001, 0.007, 0.01, 1, "helps"),
        f.SelectFeature("f", 1, "helps"),
        f.ApproveFeature("f"),
    )
    execute(store, [(c, ctx) for c in commands])
    try:
        _react(store, bench, "FeatureApproved")
        feature = load_feature(store, "f")
        assert feature is not None and feature.materialization is not None, feature
        assert feature.materialization.status == "complete", feature.materialization.detail
        yield Served(store, bench, config, tenant, materialized_at)
    finally:
        bench.close()
        if request.param == "redis":
            Repository(config, tenant, "risk").feature_store().teardown()  # this project's keys in Redis


def _react(store: InMemoryEventStore, bench: Workbench, event_type: str) -> None:
    envelope = store.read_all(types=(event_type,))[-1]
    reaction.react(store, bench, feature_store, envelope, Tracking("feature_store", envelope.position))


def test_a_value_older_than_the_views_ttl_is_not_served_and_says_it_expired(served: Served) -> None:
    read = read_online(served.store, served.config, "f", ["1", "4", "9"])
    assert [v["value"] for v in read.values] == [None, None, None]
    expired, absent = read.values[:2], read.values[2]
    assert all(v["expired"] and 2 * 3600 <= v["age_seconds"] < 2 * 3600 + 300 for v in expired), read.values
    assert absent == {"entity": 9, "value": None}  # never there: missing, not expired
    body = read.as_dict()
    assert body["ttl_seconds"] == TTL and body["values"][0]["expired"] is True
    note = read.expired_note()
    assert note is not None and "value expired for 1, 4: materialized 2h ago" in note, note
    assert "TTL of 1h" in note and "`afep features sync f`" in note, note


def test_within_the_ttl_the_same_values_are_served(served: Served) -> None:
    read = read_online(served.store, served.config, "f", ["1", "4"], now=served.materialized_at + timedelta(minutes=59))
    assert {str(v["entity"]): v["value"] for v in read.values} == EXPECTED
    assert not any(v.get("expired") for v in read.values) and read.expired_note() is None


def test_a_sync_request_materializes_expired_values_again(served: Served) -> None:
    served.bench.clock = lambda: datetime.now(UTC)
    ctx = Context(at=datetime.now(UTC), actor="user:t", tenant_id=served.tenant, correlation_id="j")
    execute(served.store, [(f.SyncFeature("f", "expired"), ctx)])
    _react(served.store, served.bench, "FeatureSyncRequested")
    traces = [e.event.message for e in served.store.read_all(types=("AgentTraced",))]
    assert traces[-1] == "restored view loans_features v1 in Feast from the log", traces[-1]
    read = read_online(served.store, served.config, "f", ["1", "4"])
    assert {str(v["entity"]): v["value"] for v in read.values} == EXPECTED and read.expired_note() is None
    feature = load_feature(served.store, "f")
    assert feature is not None and feature.registration is not None and feature.registration.version == 1
    stamps = Repository(served.config, served.tenant, "risk").online("loans_features", ["dti"], [{"cid": 1}])[TIMESTAMP]
    assert stamps[0] is not None and datetime.now(UTC) - stamps[0] < timedelta(minutes=5)
