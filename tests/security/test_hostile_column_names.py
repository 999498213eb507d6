"""Every hostile column name, through a whole job over HTTP: a name stays data, end to end.

One job per backend runs on a Parquet table whose columns carry the hostile names of
`tests/hostile.py` (Parquet keeps every name byte for byte). Then, per name: the schema
agent saw exactly that name, every feature built on it ran AFEP's own generated code
(which passes the sandbox policy) and computed, and the name survives the read models
unchanged. Names that cannot be stored (a NUL byte, over 1 kB) are refused with a 422
before anything reaches the log. (One server at a time: chdb serves one data folder per process.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from processors.codegen import is_generated
from processors.sources import column_problem
from sandbox.policy import check_code
from tests.hostile import HOSTILE_NAMES, name_id

pytestmark = [pytest.mark.clickhouse, pytest.mark.slow]

ACCEPTED = [(i, n) for i, n in enumerate(HOSTILE_NAMES) if column_problem([n]) is None]
REFUSED = [(i, n) for i, n in enumerate(HOSTILE_NAMES) if column_problem([n]) is not None]


def _table(path: Path) -> None:
    """Each hostile column a number; the target depends on three of them."""
    rng = np.random.default_rng(7)
    n = 600
    columns = {name: rng.normal(0, 1, n) + 3 for _, name in ACCEPTED}
    a, b, c = (columns[ACCEPTED[k][1]] for k in (0, 2, 4))
    logit = 3 * (a / b - 1) + 1.5 * c - 4.5
    columns["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    pl.DataFrame(columns).write_parquet(path)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def finished_job(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Runs the job once per backend; yields its history, features and schema profile."""
    from tests.security.conftest import hostile_api

    tmp = tmp_path_factory.mktemp(f"hostile-names-{request.param}")
    with hostile_api(request.param, tmp, agents=True) as api:
        alice = api.client("alice", "data_scientist")
        api.project(alice, "p1")
        area = api.settings.uploads_dir / "alice"
        area.mkdir(parents=True)
        _table(area / "hostile.parquet")
        body = {"project_id": "p1", "source": "upload://hostile.parquet", "target": "y", "max_candidates": 200}
        created = alice.post("/jobs", json={**body, "budget_seconds": 120})
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        row = api.wait_job(alice, job_id, timeout=300)
        history = alice.get(f"/jobs/{job_id}/history").json()["timeline"]
        features = alice.get("/features", params={"job_id": job_id, "limit": 500}).json()["items"]
        [analysed] = [e for e in history if e["event_type"] == "SchemaAnalyzed"]
        profile = json.loads(analysed["data"]["profile_json"])
        yield {"row": row, "features": features, "profile": profile, "api": api, "client": alice}


def _profiled_names(profile: Any) -> list[str]:
    columns = profile["columns"] if isinstance(profile, dict) else profile
    return [c["name"] for c in columns]


def test_the_job_over_hostile_names_completes_with_every_candidate_computed(finished_job: dict[str, Any]) -> None:
    row, features = finished_job["row"], finished_job["features"]
    assert row["status"] == "completed", row.get("failure")
    assert row["n_executed"] > 0 and row["n_failed"] == 0, row
    assert all(f["eval_stage"] for f in features if f["exec_ok"]), "every computed candidate was evaluated"
    used = {c for f in features for c in f["source_columns"]}
    missing = [name for _, name in ACCEPTED if name not in used]
    assert len(missing) <= len(ACCEPTED) // 10, f"no feature built on {missing!r}"


@pytest.mark.parametrize(("i", "name"), ACCEPTED, ids=[name_id(i, n) for i, n in ACCEPTED])
def test_a_hostile_name_stays_data_end_to_end(finished_job: dict[str, Any], i: int, name: str) -> None:
    assert name in _profiled_names(finished_job["profile"]), "the schema agent saw the name byte for byte"
    for feature in (f for f in finished_job["features"] if name in f["source_columns"]):
        assert feature["code"] is not None, feature["name"]
        assert check_code(feature["code"]) == [], feature["name"]
        assert is_generated(json.dumps(feature["spec"]), feature["code"]), "AFEP's own code, regenerated from the spec"
        assert feature["exec_ok"], (feature["name"], feature["exec_violation"])
        assert name not in feature["name"] or name.isidentifier(), "feature names are built from a safe alphabet"


@pytest.mark.parametrize(("i", "name"), REFUSED, ids=[name_id(i, n) for i, n in REFUSED])
def test_a_name_that_cannot_be_stored_is_a_422_before_the_log(finished_job: dict[str, Any], i: int, name: str) -> None:
    api, alice = finished_job["api"], finished_job["client"]
    pl.DataFrame({name: [1.0, 2.0], "y": [0, 1]}).write_parquet(api.settings.uploads_dir / "alice" / f"bad{i}.parquet")
    head = api.store.last_position()
    r = alice.post("/jobs", json={"project_id": "p1", "source": f"upload://bad{i}.parquet", "target": "y"})
    assert r.status_code == 422, r.text
    assert "rename the column" in r.json()["detail"] or "shorten it" in r.json()["detail"]
    # nothing of the refused request reached the log (the finished job's tracking agent may still
    # be recording its MLflow runs meanwhile, so the log's head itself can move)
    assert api.store.read_all(after=head, limit=10_000, types=("JobRequested",)) == []
