"""Does thinking with a model keep the pipeline's quality? The wiring check, without a network.

    .venv/bin/python -m bench.llm_wiring [--datasets breast_cancer,credit_data,concrete] [--seed 0]

On each development benchmark table (bench/datasets.py) and the fixed protocol's split
(bench/protocol.py), AFEP runs twice in-process on the train part: offline (the default),
and with `KnowledgeBaseLLM`, a scripted stand-in that answers every prompt as a model would
(schema tool loop, ideation proposing the knowledge base's formulas as formulas over column
names, competing code for the first features). Each job's selected features are applied to
train and test and scored by the protocol's LightGBM. The stand-in must be no worse than
offline: this proves the wiring (prompts -> tool calls -> validated specs -> dedup ->
competing code -> events), not a model. AFEP only (no OpenFE); results go to
bench/results/llm_wiring.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from bench import datasets as dsets
from bench import protocol

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "llm_wiring.json"
TOLERANCE = {"auc": 0.002, "rmse": 0.005}  # AUC points; RMSE relative


def run_afep(work: Path, ds: dsets.Dataset, seed: int, mode: str) -> dict[str, Any]:
    from commands.unit_of_work import execute, load_job
    from domain.envelope import Context
    from domain.job import RequestJob
    from gateway.runtime_wiring import build_runtime, build_store
    from gateway.settings import Settings
    from processors.apply import apply_features
    from processors.export import export_job, job_features
    from processors.llm import Limits, LLMServices
    from processors.llm.scripted import KnowledgeBaseLLM
    from processors.sources import SourcePolicy

    settings = Settings(data_dir=work / f"{mode}-state")
    store = build_store(settings)
    runtime = build_runtime(settings, store, policy=SourcePolicy.local(settings.data_dir))
    stand_in = KnowledgeBaseLLM()
    if mode == "stand-in":
        runtime.bench.llm = LLMServices(stand_in, limits=Limits(competing_features=3), data_dir=settings.data_dir)
    job_id = str(uuid.uuid4())
    command = RequestJob(job_id, "default", str(work / "train.parquet"), None, ds.target, ds.task, 120.0, seed, 2, 200)
    started = time.monotonic()
    execute(store, [(command, Context(at=datetime.now(UTC), actor="bench", correlation_id=job_id))])
    try:
        runtime.run_until_idle(until=lambda: load_job(store, job_id).terminal)  # type: ignore[union-attr]
        wall = time.monotonic() - started
        out = work / f"{mode}-out"
        result = export_job(store, job_id, out, wall_seconds=wall)
        if result["status"] != "completed":
            raise SystemExit(f"{mode} job on {ds.name} ended {result['status']}: {result['failure']}")
        job = load_job(store, job_id)
        proposed: dict[str, int] = {}
        for feature in job_features(store, job):  # type: ignore[arg-type]
            proposed[feature.proposal.proposer] = proposed.get(feature.proposal.proposer, 0) + 1
        sandbox = runtime.bench.sandbox()
        train = apply_features(out, pl.read_parquet(work / "train_x.parquet"), sandbox)
        test = apply_features(out, pl.read_parquet(work / "test.parquet"), sandbox)
    finally:
        runtime.stop()
        store.close()
    features = json.loads((out / "features.json").read_text())
    return {
        "status": result["status"],
        "wall_s": round(wall, 2),
        "cv_baseline": result["baseline_score"],
        "cv_final": result["final_score"],
        "selected": [f["name"] for f in features],
        "selected_by": sorted({f["proposer"] for f in features}),
        "proposed_by": dict(sorted(proposed.items())),
        "llm_usage": {k: v for k, v in result["llm_usage"].items() if k != "by_agent"},
        "stand_in_calls": len(stand_in.calls),
        "new_columns": [c for c in train.columns if c not in pd.read_parquet(work / "train_x.parquet").columns],
        "_train": train,
        "_test": test,
    }


def measure(ds: dsets.Dataset, seed: int, root: Path) -> dict[str, Any]:
    split = protocol.split(ds.x, ds.y, ds.task, seed)
    work = root / ds.name
    work.mkdir(parents=True)
    split.x_train.assign(**{ds.target: split.y_train.values}).to_parquet(work / "train.parquet")
    split.x_train.to_parquet(work / "train_x.parquet")
    split.x_test.to_parquet(work / "test.parquet")
    metric = protocol.metric_name(ds.task)
    row: dict[str, Any] = {"dataset": ds.name, "task": ds.task, "seed": seed, "metric": metric}
    for mode in ("offline", "stand-in"):
        run = run_afep(work, ds, seed, mode)
        new = run.pop("new_columns")
        train, test = run.pop("_train").to_pandas(), run.pop("_test").to_pandas()
        x_train = pd.concat([split.x_train, train[new]], axis=1)
        x_test = pd.concat([split.x_test, test[new]], axis=1)
        score = protocol.evaluate(x_train, split.y_train, x_test, split.y_test, ds.task, seed)
        run["test_score"] = round(score.value, 6)
        row[mode] = run
    off, stand = row["offline"]["test_score"], row["stand-in"]["test_score"]
    if metric == "auc":
        row["no_worse"] = stand >= off - TOLERANCE["auc"]
    else:
        row["no_worse"] = stand <= off * (1 + TOLERANCE["rmse"])
    row["delta"] = round(stand - off, 6)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="breast_cancer,credit_data,concrete")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="afep-llm-wiring-") as tmp:
        for name in args.datasets.split(","):
            row = measure(dsets.LOADERS[name](), args.seed, Path(tmp))
            rows.append(row)
            print(
                f"{name}: {row['metric']} offline {row['offline']['test_score']:.4f}, "
                f"stand-in {row['stand-in']['test_score']:.4f} (delta {row['delta']:+.4f}); "
                f"stand-in proposed {row['stand-in']['proposed_by']}, selected from {row['stand-in']['selected_by']}, "
                f"{row['stand-in']['stand_in_calls']} calls",
                flush=True,
            )
    report = {
        "protocol": protocol.PROTOCOL,
        "tolerance": TOLERANCE,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "all_no_worse": all(r["no_worse"] for r in rows),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.out}; no worse than offline on every table: {report['all_no_worse']}")
    if not report["all_no_worse"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
