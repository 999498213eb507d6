"""`afep features sync`: an approval whose materialization failed (the Redis online store was
down) is retried once the cause is fixed, and the feature is then served online.

A real job (LightGBM) on the generated customers table, a real Feast repository, the real Redis
(the tests' own database, cleaned afterwards). The failure is real too: the first approval
points the online store at a port where nothing listens.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands.unit_of_work import load_feature
from domain.feature import feature_stream
from gateway.settings import Settings
from tests.integration.test_feature_store import ENV, REDIS_DB, SECRET, afep, reachable
from tests.tables import customers

pytestmark = [pytest.mark.feast, pytest.mark.slow]

GOOD = f"redis://127.0.0.1:6379/{REDIS_DB}"
DOWN = f"redis://127.0.0.1:1/{REDIS_DB}"  # nothing listens on port 1


def test_a_failed_materialization_is_served_after_a_sync(tmp_path: Path) -> None:
    if not reachable(6379):
        pytest.skip("Redis is not running at 127.0.0.1:6379; start redis-server to test the production store")
    from gateway.runtime_wiring import build_store, feature_store_config
    from processors.featurestore.repository import Repository

    state = tmp_path / "state"
    env = {**ENV, "AFEP_FEAST_ONLINE_STORE": "redis"}

    def cli(*args: str, redis: str) -> tuple[int, str]:
        done = afep(*args, "--data-dir", str(state), env={**env, "AFEP_REDIS_URL": redis}, cwd=tmp_path)
        return done.returncode, done.stdout + done.stderr

    frame = customers()
    frame.write_csv(tmp_path / "customers.csv")
    code, out = cli(
        *("run", "customers.csv", "--target", "Churn", "--entity", "customer_id", "--seed", "0"),
        *("--out", "out", "--quiet"),
        redis=GOOD,
    )
    assert code == 0, out
    feature_id = json.loads((tmp_path / "out" / "features.json").read_text())[0]["feature_id"]

    # not a sync before approval: nothing of it is in the feature store yet
    code, out = cli("features", "sync", feature_id, redis=GOOD)
    assert code == 2 and "only approved or deprecated features" in out, out

    code, out = cli("features", "approve", feature_id, redis=DOWN)
    assert code == 2, out
    assert "not served online" in out and f"afep features sync {feature_id}" in out, out
    # approving again does not hide that: it says so, and why, with the same exit code
    code, out = cli("features", "approve", feature_id, redis=DOWN)
    assert code == 2 and "already approved" in out and "not served online" in out, out

    settings = Settings(data_dir=state, secret_key=SECRET, feast_online_store="redis", redis_url=GOOD)
    repo = Repository(feature_store_config(settings), "default", "default")
    try:
        code, out = cli("features", "sync", feature_id, "--reason", "redis is back", redis=GOOD)
        assert code == 0, out
        assert "registered in Feast view customers_features v2" in out and "online:" in out, out

        store = build_store(settings)
        try:
            feature = load_feature(store, feature_id)
            assert feature is not None and feature.materialization is not None
            assert (feature.materialization.version, feature.materialization.status) == (2, "complete")
            stream = [e.event_type for e in store.read_stream(feature_stream(feature_id))]
            assert stream[-4:] == [
                "FeatureMaterialized",
                "FeatureSyncRequested",
                "FeatureRegistered",
                "FeatureMaterialized",
            ]
            requested = [e for e in store.read_all(after=0, limit=100_000, types=("FeatureSyncRequested",))]
            assert [e.event.reason for e in requested] == ["redis is back"]
        finally:
            store.close()
        name = json.loads((tmp_path / "out" / "features.json").read_text())[0]["name"]
        served = repo.online("customers_features", [name], [{"customer_id": frame["customer_id"][0]}])
        assert served[name][0] is not None

        # a second sync finds everything in order and says so, recording nothing new but the request
        code, out = cli("features", "sync", feature_id, redis=GOOD)
        assert code == 0 and "in line with the log" in out, out
    finally:
        try:
            repo.feature_store().teardown()
        except Exception as error:  # best effort: the keys live in the tests' own database
            print(f"could not tear down the Redis online store: {error}")
