"""A whole job through the HTTP API with the agents running: connection -> job -> live feed -> approval."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.auth import create_api_key
from gateway.runtime_wiring import build_runtime, build_store
from gateway.settings import Settings
from tests.tables import customers

pytestmark = [pytest.mark.clickhouse, pytest.mark.slow]


@pytest.fixture
def api(tmp_path: Path, serve: Any) -> Iterator[tuple[str, Settings]]:
    settings = Settings(
        data_dir=tmp_path / "state", secret_key="an-e2e-secret-that-is-long-enough!", source_roots=str(tmp_path)
    )
    store = build_store(settings)
    runtime = build_runtime(settings, store)
    runtime.start(poll_seconds=0.1)
    with serve(create_app(settings, store=store, runtime=runtime)) as url:
        yield url, settings
    runtime.stop()
    store.close()


def test_job_over_http_streams_to_completion_and_a_feature_is_approved(api, tmp_path: Path) -> None:
    url, settings = api
    admin = {"Authorization": f"Bearer {create_api_key(settings, 'acme', 'admin')}"}
    scientist = {"Authorization": f"Bearer {create_api_key(settings, 'acme', 'data_scientist')}"}
    stranger = {"Authorization": f"Bearer {create_api_key(settings, 'globex', 'admin')}"}
    data = tmp_path / "customers.csv"
    customers().write_csv(data)  # features confirm there with the user's model (tests/tables.py)
    assert httpx.post(f"{url}/projects", json={"name": "risk", "id": "risk"}, headers=admin).status_code == 201
    created = httpx.post(
        f"{url}/connections", json={"name": "credit", "uri": str(data), "project_id": "risk"}, headers=scientist
    )
    assert created.status_code == 201, created.text
    job = httpx.post(
        f"{url}/jobs",
        json={"project_id": "risk", "connection_id": created.json()["id"], "target": "Churn", "budget_seconds": 60},
        headers=scientist,
    )
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]

    seen: list[str] = []
    with httpx.stream("GET", f"{url}/jobs/{job_id}/events", headers=scientist, timeout=180) as feed:
        for line in feed.iter_lines():
            if line.startswith("event:"):
                seen.append(line.partition(":")[2].strip())
                if seen[-1] in ("job_completed", "job_failed"):
                    break
    assert seen[-1] == "job_completed", seen[-20:]
    assert {"agent_trace", "progress", "schema_analyzed", "feature_proposed", "feature_selected"} <= set(seen)

    listed = httpx.get(f"{url}/features", params={"job_id": job_id, "status": "selected"}, headers=scientist)
    for _ in range(50):  # the read model follows the log asynchronously
        if listed.json()["items"]:
            break
        time.sleep(0.1)
        listed = httpx.get(f"{url}/features", params={"job_id": job_id, "status": "selected"}, headers=scientist)
    feature = listed.json()["items"][0]
    approve = f"{url}/features/{feature['id']}/approve"
    assert httpx.post(approve, json={}, headers=scientist).status_code == 403
    assert httpx.post(approve, json={}, headers=stranger).status_code == 404
    assert httpx.post(approve, json={}, headers=admin).status_code == 200
    lineage = httpx.get(f"{url}/features/{feature['id']}/lineage", headers=admin)
    assert lineage.status_code == 200
    assert any(column in json.dumps(lineage.json()) for column in feature["source_columns"])
    audit = httpx.get(f"{url}/audit", params={"action": "feature.approve"}, headers=admin)
    assert audit.status_code == 200 and any(r["resource_id"] == feature["id"] for r in audit.json()["items"])
