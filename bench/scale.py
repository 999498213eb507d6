"""Scale check: `afep run` with default settings on a 10,000-row x 25-column table.

    .venv/bin/python -m bench.scale            # writes bench/results/scale.json

The table is synthetic (no downloads): 18 numeric columns on different scales,
4 categoricals, 2 ids/dates-like integers and a binary target that depends on a
ratio, a difference and a group effect, so the agents have real work to do.
Wall time is measured as a user runs it: the CLI in a subprocess, start-up included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 60.0


def table(n: int = 10_000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {f"x{i:02d}": rng.lognormal(i % 5, 0.7, n) for i in range(18)}
    cols["region"] = rng.choice([f"r{i}" for i in range(12)], n)
    cols["segment"] = rng.choice(["a", "b", "c", "d"], n)
    cols["channel"] = rng.choice(["web", "shop", "phone"], n)
    cols["product"] = rng.choice([f"p{i}" for i in range(40)], n)
    cols["tenure_months"] = rng.integers(0, 240, n)
    cols["signup_year"] = rng.integers(2000, 2025, n)
    region_effect = {f"r{i}": e for i, e in enumerate(rng.normal(0, 0.8, 12))}
    logit = (
        2.5 * np.log(cols["x01"] / cols["x02"])
        + 0.8 * (cols["x05"] - cols["x10"]) / cols["x05"].std()
        + np.vectorize(region_effect.get)(cols["region"])
        - 0.005 * cols["tenure_months"]
    )
    cols["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pl.DataFrame(cols)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "table.parquet"
        frame = table()
        frame.write_parquet(data)
        command = [
            str(Path(sys.executable).parent / "afep"), "run", str(data), "--target", "churned",
            "--out", str(Path(tmp) / "out"), "--data-dir", str(Path(tmp) / "state"), "--quiet",
        ]  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
        wall = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"afep run failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        result = json.loads((Path(tmp) / "out" / "result.json").read_text())
    record = {
        "rows": frame.height,
        "columns": frame.width,
        "wall_seconds": round(wall, 2),
        "target_seconds": TARGET_SECONDS,
        "within_target": wall < TARGET_SECONDS,
        "selected": result["counts"]["selected"],
        "proposed": result["counts"]["proposed"],
        "baseline_score": result["baseline_score"],
        "final_score": result["final_score"],
        "load_average": os.getloadavg()[0],
    }
    out = ROOT / "bench" / "results" / "scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
