"""A tenant's CSV header carries code: it stays a column name, and nothing leaks.

Column names reach generated feature code only as string literals; the sandbox
refuses file readers and SQL, and its run processes see an empty root. Here a
header breaks out of a docstring (`\"\"\"`) and tries to read another tenant's
training rows (a parquet file in the data dir) and /etc/passwd.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from processors.codegen import HEADER
from sandbox.policy import check_code

pytestmark = pytest.mark.clickhouse

MARKER = "OTHER-TENANT-ROW-5f1e2d"


def _payloads(parquet: Path) -> dict[str, str]:
    """Hostile column names, each a docstring breakout followed by a reader."""
    sql = f"SELECT * FROM read_parquet('{parquet}')"
    return {
        "amount": f'amount"""\nimport polars as pl\nraise ValueError(str(pl.sql("{sql}").collect()))\n"""',
        "debt": "debt'''\nraise ValueError(open('/etc/passwd').read())\n'''",
        "income": f'income"""\nimport polars as pl\nLEAK = pl.read_parquet(\'{parquet}\')\n#',
        "region": '"""; import os; os.system("cat /etc/passwd") #',
    }


def _table(path: Path, names: dict[str, str]) -> None:
    rng = np.random.default_rng(3)
    n = 400
    income = rng.lognormal(8, 0.4, n)
    debt = income * rng.uniform(0.1, 1.0, n)
    amount = income * rng.uniform(0.5, 2.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-8 * (debt / income - 0.55)))).astype(int)
    region = rng.choice(["north", "south", "east"], n)
    pl.DataFrame(
        {names["amount"]: amount, names["debt"]: debt, names["income"]: income, names["region"]: region, "y": y}
    ).write_csv(path)


def _leaks(text: str) -> list[str]:
    passwd = [line for line in Path("/etc/passwd").read_text().splitlines() if len(line) >= 12]
    return [needle for needle in (MARKER, *passwd) if needle in text]


def test_a_code_carrying_header_runs_no_code(hostile: Any, tmp_path: Path) -> None:
    other = tmp_path / "afep" / "datasets" / "bob" / "train.parquet"  # another tenant's training rows
    other.parent.mkdir(parents=True)
    pl.DataFrame({"secret": [MARKER] * 5}).write_parquet(other)
    roots = tmp_path / "sources"
    (roots / "alice").mkdir(parents=True)
    csv = roots / "alice" / "hostile.csv"
    names = _payloads(other)
    _table(csv, names)
    # the payloads survive the CSV round trip (quotes may come back doubled, still breaking out)
    assert all('"""' in c or "'''" in c for c in pl.read_csv(csv).columns if c != "y")

    with hostile(agents=True, source_roots=str(roots / "{tenant}")) as api:
        alice = api.client("alice", "data_scientist")
        api.project(alice, "p1")
        body = {"project_id": "p1", "source": str(csv), "target": "y", "budget_seconds": 60, "max_candidates": 40}
        created = alice.post("/jobs", json=body)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        row = api.wait_job(alice, job_id, timeout=240)
        assert row["status"] in ("completed", "failed"), row
        history = alice.get(f"/jobs/{job_id}/history", params={"include_activity": "true"})
        executions = alice.get(f"/jobs/{job_id}/executions", params={"limit": 500})
        features = alice.get("/features", params={"job_id": job_id, "limit": 500})
        for response in (history, executions, features):
            assert response.status_code == 200, response.text
        everything = json.dumps([row, history.json(), executions.json(), features.json()])
        assert _leaks(everything) == []
        if row["status"] == "completed":
            ran = [
                f
                for f in features.json()["items"]
                if f.get("exec_ok") and any('"""' in c or "'''" in c for c in f.get("source_columns") or ())
            ]
            assert ran, "no feature of the hostile columns ran: the test proves nothing"
            for feature in features.json()["items"]:  # the names are in the code only as literals
                if feature.get("code"):
                    assert feature["code"].startswith(HEADER) and check_code(feature["code"]) == [], feature["code"]
