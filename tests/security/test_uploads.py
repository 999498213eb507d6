"""Hostile uploads: databases dressed as CSV, overwrites, truncated bodies, a full disk.

Over real HTTP on both backends: content that is not what its name says is
refused (422), an existing upload is kept unless `?replace=true` (409), a body
without its closing boundary stores nothing (400), the tenant's quota holds
(413), and no sqlite:// or duckdb:// URI may open a file in an upload area.
"""

from __future__ import annotations

import io
import os
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

pytestmark = pytest.mark.clickhouse
NEUTRAL = "is not available to your tenant"
CSV = b"x,y\n1,0\n2,1\n3,0\n"


def _post(client: httpx.Client, name: str, body: bytes, **params: str) -> httpx.Response:
    return client.post("/uploads", params=params, files={"file": (name, body, "application/octet-stream")})


def _area(api: Any, tenant: str = "alice") -> Path:
    return Path(api.settings.uploads_dir) / tenant


def _stored(api: Any, tenant: str = "alice") -> list[str]:
    """Every file in the tenant's upload area, temporary ones included."""
    area = _area(api, tenant)
    return sorted(os.listdir(area)) if area.is_dir() else []


def _sqlite_file(path: Path) -> bytes:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER, y INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, i % 2) for i in range(10)])
    conn.close()
    return path.read_bytes()


def _duckdb_file(path: Path) -> bytes:
    import duckdb

    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE TABLE t AS SELECT range AS x, range % 2 AS y FROM range(10)")
        conn.execute("CREATE MACRO twice(a) AS a * 2")
    return path.read_bytes()


def test_content_that_is_not_what_its_name_says_is_refused(hostile: Any, tmp_path: Path) -> None:
    duck, lite = _duckdb_file(tmp_path / "db.duckdb"), _sqlite_file(tmp_path / "db.sqlite")
    assert duck[8:12] == b"DUCK" and lite.startswith(b"SQLite format 3\x00")
    parquet = io.BytesIO()
    pl.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]}).write_parquet(parquet)
    with hostile() as api:
        alice = api.client("alice", "data_scientist")
        cases = [
            ("x.csv", duck, "a database file"),
            ("x.tsv", lite, "a database file"),
            ("x.csv", b"x,y\n1,\x000\n", "not UTF-8 text"),
            ("x.csv", "x,y\n\xe9,0\n".encode("latin-1"), "not UTF-8 text"),
            ("x.parquet", os.urandom(4096), "not a Parquet file"),
            ("x.parquet", b"PAR1" + os.urandom(64), "not a Parquet file"),  # a head but no footer
            ("x.parquet", CSV, "not a Parquet file"),
        ]
        for name, body, why in cases:
            r = _post(alice, name, body)
            assert r.status_code == 422, (name, why, r.text)
            assert why in r.json()["detail"], r.text
        assert _stored(api) == []
        # what the names promise is taken: UTF-8 text with a BOM, real Parquet
        assert _post(alice, "bom.csv", b"\xef\xbb\xbf" + "x,é\n1,0\n".encode()).status_code == 201
        assert _post(alice, "real.parquet", parquet.getvalue()).status_code == 201
        assert _stored(api) == ["bom.csv", "real.parquet"]


def test_an_upload_is_not_overwritten_unless_replace_is_sent(hostile: Any) -> None:
    with hostile() as api:
        alice = api.client("alice", "data_scientist")
        assert _post(alice, "data.csv", CSV).status_code == 201
        again = _post(alice, "data.csv", b"x,y\n9,1\n")
        assert again.status_code == 409, again.text
        assert again.json()["detail"] == "upload data.csv exists; DELETE it first or send ?replace=true"
        assert (_area(api) / "data.csv").read_bytes() == CSV and _stored(api) == ["data.csv"]
        replaced = _post(alice, "data.csv", b"x,y\n9,1\n", replace="true")
        assert replaced.status_code == 201, replaced.text
        assert (_area(api) / "data.csv").read_bytes() == b"x,y\n9,1\n" and _stored(api) == ["data.csv"]
        # another tenant's file of the same name is another file
        bob = api.client("bob", "data_scientist")
        assert _post(bob, "data.csv", CSV).status_code == 201


def test_a_truncated_multipart_body_stores_nothing(hostile: Any) -> None:
    boundary = "afep-test-boundary"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="cut.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    complete = head + CSV + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    with hostile() as api:
        alice = api.client("alice", "data_scientist")
        for body in (head + CSV, head + CSV + f"\r\n--{boundary}\r\n".encode()):  # no closing boundary
            r = alice.post("/uploads", content=body, headers=headers)
            assert r.status_code == 400, r.text
            assert "closing boundary" in r.json()["detail"], r.text
            assert _stored(api) == []
            assert alice.get("/uploads").json()["items"] == []
        whole = alice.post("/uploads", content=complete, headers=headers)
        assert whole.status_code == 201, whole.text
        assert (_area(api) / "cut.csv").read_bytes() == CSV


def test_the_tenants_quota_holds(hostile: Any) -> None:
    body = b"x,y\n" + b"1,0\n" * 100  # 404 bytes
    with hostile(upload_quota_bytes=1000) as api:
        alice, bob = api.client("alice", "data_scientist"), api.client("bob", "data_scientist")
        assert _post(alice, "a.csv", body).status_code == 201
        assert _post(alice, "b.csv", body).status_code == 201
        full = _post(alice, "c.csv", body)
        assert full.status_code == 413, full.text
        assert "quota of 1000 bytes" in full.json()["detail"] and "DELETE" in full.json()["detail"]
        assert _stored(api) == ["a.csv", "b.csv"]
        assert _post(bob, "c.csv", body).status_code == 201  # one tenant's quota is not another's
        assert alice.delete("/uploads/a.csv").status_code == 204
        assert _post(alice, "c.csv", body).status_code == 201
        assert _stored(api) == ["b.csv", "c.csv"]


def test_database_uris_cannot_open_a_file_in_an_upload_area(hostile: Any, tmp_path: Path) -> None:
    with hostile() as api:
        alice = api.client("alice", "data_scientist")
        api.project(alice)
        assert _post(alice, "x.csv", CSV).status_code == 201
        # a database planted by other means (not an upload) is refused all the same
        _duckdb_file(_area(api) / "planted.csv")
        real = os.path.realpath(_area(api))
        for uri in (
            "sqlite:///x.csv",
            "duckdb:///x.csv",
            f"sqlite:///{real}/x.csv",
            f"duckdb:///{real}/planted.csv",
            "duckdb:///planted.csv",
        ):
            before = api.store.last_position()
            job = alice.post("/jobs", json={"project_id": "p1", "source": uri, "table": "t", "target": "y"})
            assert job.status_code == 422 and NEUTRAL in job.json()["detail"], (uri, job.text)
            assert api.store.last_position() == before
            conn = alice.post("/connections", json={"name": "db", "uri": uri})
            assert conn.status_code == 422 and NEUTRAL in conn.json()["detail"], (uri, conn.text)
        # the same file read as what it is still works
        ok = alice.post("/jobs", json={"project_id": "p1", "source": "upload://x.csv", "target": "y"})
        assert ok.status_code == 201, ok.text
