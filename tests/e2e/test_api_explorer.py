"""Explorer: read-only SQL over CSV and SQLite connections, schema and profile."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.auth import create_api_key
from gateway.settings import Settings

pytestmark = pytest.mark.clickhouse


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], Path]]:
    settings = Settings(
        data_dir=tmp_path / "afep",
        secret_key="test-secret-key-please-change-it!",
        source_roots=str(tmp_path),  # the operator lets this tenant read the test's files
        explorer_max_bytes=100_000,
    )
    with TestClient(create_app(settings)) as client:
        headers = {"X-API-Key": create_api_key(settings, "acme", "data_scientist")}
        yield client, headers, tmp_path


def connect(client: TestClient, headers: dict[str, str], uri: str) -> str:
    r = client.post("/api/v1/connections", json={"name": "src", "uri": uri}, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_csv_query_limits_and_rejections(client: tuple[TestClient, dict[str, str], Path]) -> None:
    http, headers, tmp = client
    csv = tmp / "loans.csv"
    csv.write_text("id,income,debt\n" + "".join(f"{i},{1000 + i},{i * 2}\n" for i in range(50)))
    conn = connect(http, headers, str(csv))
    r = http.post(
        "/api/v1/explorer/query",
        json={"connection_id": conn, "sql": "SELECT id, debt FROM data ORDER BY id", "max_rows": 10},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"] == ["id", "debt"] and len(body["rows"]) == 10 and body["truncated"] is True
    for sql, needle in (
        ("DELETE FROM data", "only SELECT"),
        ("SELECT 1; SELECT 2", "exactly one"),
        ("SELECT * FROM read_csv('/etc/passwd')", "not allowed"),
        ("CREATE TABLE x AS SELECT 1", "only SELECT"),
    ):
        bad = http.post("/api/v1/explorer/query", json={"connection_id": conn, "sql": sql}, headers=headers)
        assert bad.status_code == 422 and needle in bad.json()["detail"], (sql, bad.text)
    profile = http.post(
        "/api/v1/explorer/profile", json={"connection_id": conn, "columns": ["income"]}, headers=headers
    ).json()
    assert profile["n_rows"] == 50 and profile["columns"][0]["min"] == 1000 and profile["columns"][0]["distinct"] == 50


def test_sqlite_connection_is_read_only(client: tuple[TestClient, dict[str, str], Path]) -> None:
    http, headers, tmp = client
    db = tmp / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, amount REAL)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(i, i * 1.5) for i in range(5)])
    conn_id = connect(http, headers, f"sqlite:///{db}")
    schema = http.get(f"/api/v1/explorer/schema/{conn_id}", headers=headers).json()
    assert schema["tables"]["orders"][0] == {"name": "id", "type": "INTEGER"}
    r = http.post(
        "/api/v1/explorer/query",
        json={"connection_id": conn_id, "sql": "SELECT sum(amount) AS s FROM orders"},
        headers=headers,
    )
    assert r.json()["rows"] == [[15.0]]
    viewer = {"X-API-Key": create_api_key(Settings(data_dir=tmp / "afep"), "acme", "viewer")}
    assert (
        http.post(
            "/api/v1/explorer/query", json={"connection_id": conn_id, "sql": "SELECT 1"}, headers=viewer
        ).status_code
        == 403
    )


def test_upload_then_explore_with_limits(client: tuple[TestClient, dict[str, str], Path]) -> None:
    http, headers, _ = client
    body = "id,note\n" + "".join(f"{i},{'x' * 50}\n" for i in range(5000))
    r = http.post("/api/v1/uploads", files={"file": ("../../My Loans!.csv", body, "text/csv")}, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "upload://My Loans_.csv"
    assert [u["name"] for u in http.get("/api/v1/uploads", headers=headers).json()["items"]] == ["My Loans_.csv"]
    conn = connect(http, headers, r.json()["source"])

    def ask(sql: str, **extra: object) -> Any:
        return http.post("/api/v1/explorer/query", json={"connection_id": conn, "sql": sql, **extra}, headers=headers)

    assert ask("SELECT count(*) AS n FROM data").json()["rows"] == [[5000]]
    big = ask("SELECT * FROM data", max_rows=10_000).json()
    assert big["truncated"] is True and 0 < len(big["rows"]) < 5000
    assert sum(len(str(v)) for row in big["rows"] for v in row) <= 100_000
    bomb = ask("SELECT repeat('x', 20000000) AS s FROM data LIMIT 3").json()
    assert bomb["truncated"] is True and bomb["rows"] == []
    deep = ask("SELECT " + "(" * 5000 + "1" + ")" * 5000)
    assert deep.status_code == 422 and "nested" in deep.json()["detail"]
    started = time.monotonic()
    slow = ask("SELECT count(*) FROM data a, data b, data c, data d", timeout_seconds=1)
    assert slow.status_code == 408, slow.text
    assert time.monotonic() - started < 15
    assert http.delete("/api/v1/uploads/My Loans_.csv", headers=headers).status_code == 204
    assert http.get("/api/v1/uploads", headers=headers).json()["items"] == []
