"""What a hostile tenant learns from errors and job output: no 500 for a NUL, no server paths.

Over real HTTP on both backends: a NUL or control character in a path or query is a
400 problem+json (PostgreSQL cannot store NUL; it used to be a 500), an unreadable
upload fails its job with a reason naming the upload, not its server path, and a
successful job's row, history, traces, executions, features and SSE feed never
show the data dir.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from processors.sources.policy import tenant_folder

pytestmark = pytest.mark.clickhouse

NUL_REQUESTS = [
    ("GET", "/jobs/%00"),
    ("GET", "/jobs/a%00b/history"),
    ("GET", "/features/%00"),
    ("GET", "/jobs?status=%00"),
    ("GET", "/jobs?project_id=%00"),
    ("GET", "/features?job_id=%00"),
    ("GET", "/projects/%00/events"),
    ("GET", "/tenants/%00"),
    ("DELETE", "/connections/%00"),
    ("DELETE", "/keys/%00"),
    ("GET", "/projects/%00"),
    ("GET", "/jobs/a%01b"),
    ("GET", "/jobs?status=a%0Ab"),
    ("GET", "/jobs?status=%ED%A0%80"),  # an encoded lone surrogate
    ("GET", "/jobs/%FF"),  # not UTF-8
]


def test_control_characters_in_path_or_query_are_refused(hostile: Callable[..., Any]) -> None:
    with hostile(agents=False) as api:
        mallory = api.client("mallory", "admin")
        for method, path in NUL_REQUESTS:
            r = mallory.request(method, path)
            assert r.status_code == 400, (path, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json"), path
            body = r.json()
            assert set(body) >= {"type", "title", "status", "detail", "instance"}, body
            assert body["status"] == 400 and ("control character" in body["detail"] or "UTF-8" in body["detail"])
        assert mallory.get("/jobs/caf%C3%A9").status_code == 404  # clean UTF-8 still reaches the route
        if api.backend == "postgres":  # behind the edge check, a NUL parameter is still no 500
            from projections.database import Database, UnstorableText

            db = Database(api.settings.database_url)
            try:
                with pytest.raises(UnstorableText), db.transaction(write=False) as tx:
                    tx.all("SELECT ?::text AS v", ["a\x00b"])
            finally:
                db.close()


def _forms(api: Any) -> list[str]:
    data_dir = api.settings.data_dir
    return sorted({str(data_dir.resolve()), os.path.realpath(data_dir), str(data_dir.absolute())})


def _assert_clean(text: str, forms: list[str], where: str) -> None:
    for form in forms:
        assert form not in text, f"{where} shows the data dir {form}: {text[:2000]}"
        assert form.replace("/", "\\/") not in text, f"{where} shows the data dir (escaped): {text[:2000]}"


def _sse(client: httpx.Client, job_id: str) -> str:
    lines: list[str] = []
    with client.stream("GET", f"/jobs/{job_id}/events", timeout=120) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            lines.append(line)
            if line.startswith("event: end"):
                break
    return "\n".join(lines)


def test_job_output_never_shows_server_paths(hostile: Callable[..., Any]) -> None:
    from ops.demo_data import synthetic_credit

    with hostile(agents=True) as api:
        forms = _forms(api)
        mallory = api.client("mallory", "admin")
        api.project(mallory)

        junk = b"PAR1" + random.Random(15).randbytes(4096) + b"PAR1"  # passes the upload's magic check
        r = mallory.post("/uploads", files={"file": ("bad.parquet", junk, "application/octet-stream")})
        assert r.status_code == 422 and "no columns to read" in r.json()["detail"], r.text  # its footer is junk
        # a file that went bad in the upload area after it was uploaded: the job fails, and says so without paths
        area = api.settings.data_dir / "uploads" / tenant_folder("mallory")
        area.mkdir(parents=True, exist_ok=True)
        (area / "bad.parquet").write_bytes(junk)
        r = mallory.post("/jobs", json={"project_id": "p1", "source": "upload://bad.parquet", "target": "y"})
        assert r.status_code in (200, 201), r.text
        bad = api.wait_job(mallory, r.json()["id"])
        assert bad["status"] == "failed", bad
        reason = str(bad["failure"])
        assert "not a readable CSV or Parquet file" in reason and "bad.parquet" in reason, bad
        assert "uploads/" not in reason and str(api.settings.data_dir) not in reason, reason
        _assert_clean(str(bad), forms, "failed job")
        history = mallory.get(f"/jobs/{bad['id']}/history", params={"include_activity": "true"})
        _assert_clean(history.text, forms, "failed job history")
        _assert_clean(_sse(mallory, bad["id"]), forms, "failed job SSE")

        buffer = io.BytesIO()
        synthetic_credit(n=400).write_csv(buffer)
        r = mallory.post("/uploads", files={"file": ("credit.csv", buffer.getvalue(), "text/csv")})
        assert r.status_code == 201, r.text
        body = {
            "project_id": "p1",
            "source": "upload://credit.csv",
            "target": "Status",
            "max_candidates": 20,
            "budget_seconds": 60,
        }
        r = mallory.post("/jobs", json=body)
        assert r.status_code in (200, 201), r.text
        job_id = r.json()["id"]
        row = api.wait_job(mallory, job_id, timeout=300)
        assert row["status"] == "completed", row

        reads = {
            "job": mallory.get(f"/jobs/{job_id}"),
            "history": mallory.get(f"/jobs/{job_id}/history", params={"include_activity": "true"}),
            "traces": mallory.get(f"/jobs/{job_id}/traces", params={"limit": 500}),
            "executions": mallory.get(f"/jobs/{job_id}/executions", params={"limit": 500}),
            "features": mallory.get("/features", params={"job_id": job_id, "limit": 500}),
        }
        for where, response in reads.items():
            assert response.status_code == 200, (where, response.text)
            _assert_clean(response.text, forms, where)
        history_text = reads["history"].text
        assert "snapshot" in history_text and ".parquet" in history_text  # the snapshot is there, by name only
        for feature in reads["features"].json()["items"][:5]:
            lineage = mallory.get(f"/features/{feature['id']}/lineage")
            _assert_clean(lineage.text, forms, "lineage")
        _assert_clean(_sse(mallory, job_id), forms, "SSE feed")
