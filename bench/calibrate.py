"""Are AFEP's claims true? ``OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m bench.calibrate [options]``.

Three measurements, written to bench/results/calibration.json (and rendered into
docs/benchmarks.md by ``python -m bench.run --render-only``, with the scatter plot
docs/calibration.png):

* **claims** - every feature AFEP selected in the newest ``bench.run`` records of the
  chosen tables and seeds is re-evaluated as a user would: R fresh random 80/20 splits
  of the *full* table (train and test parts of the benchmark split together), the
  external protocol (``bench.protocol.evaluate``: LightGBM 2000 trees, step 0.05, 31
  leaves, early stopping 100 on an inner split), raw columns plus the feature against
  raw columns alone. Per feature: claimed lift and 95% CI (features.json), realized
  mean and standard error over the R splits, whether the realized mean lies inside the
  claimed CI, and the share of splits where the feature helps. Pooled: the realized
  lift as a share of the raw error (1 - AUC or RMSE), its mean over features, and the
  two-sided one-sample t-test p of that mean across features.

  The feature values are those ``bench.run`` computed for the record (``afep apply``
  on the train and test parts, kept under bench/work/afep_features/); a fitted feature
  (e.g. a frequency encoding) keeps the statistics AFEP fitted on its training rows.

* **null, permuted target** - ``afep run`` (the CLI, as the benchmark runs it) on the
  benchmark train part of the development tables with the target randomly permuted:
  any selection is a false positive.

* **null, injected noise** - the engine (``evaluate_round``) on 1,000-row tables of
  the development set (concrete; credit_data subsampled) with candidate products and
  ratios of numeric columns plus 30 pure-noise candidates (standard normal): does any
  noise candidate get selected?
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench import datasets as dsets
from bench import protocol, records
from bench.engines import afep_engine

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FEATURES_DIR = ROOT / "bench" / "work" / "afep_features"  # written by bench.run
OUT = RESULTS / "calibration.json"
NOISE_CANDIDATES = 30


def features_file(dataset: str, seed: int) -> Path:
    """Where bench.run keeps the values of AFEP's selected features on the full table."""
    return FEATURES_DIR / f"{dataset}-seed{seed}.parquet"


def _seeds(value: str) -> list[int]:
    out: list[int] = []
    for part in value.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return sorted(set(out))


def _lift(task: str, base: float, new: float) -> float:
    return new - base if task == "classification" else base - new


def _err(task: str, score: float) -> float:
    return 1.0 - score if task == "classification" else score


def calibrate_claims(names: list[str], seeds: list[int], splits: int, log, results: Path = RESULTS) -> list[dict]:
    cache = records.latest(results, protocol.PROTOCOL)
    rows: list[dict] = []
    for name in names:
        ds = dsets.LOADERS[name]()
        for seed in seeds:
            rec = cache.get(("afep", name, seed))
            if rec is None or rec.get("status") != "ok":
                log(f"{name} seed {seed}: no AFEP record, skipped")
                continue
            selected = (rec.get("engine_info") or {}).get("features_json") or []
            if not selected:
                continue
            path = features_file(name, seed)
            if not path.exists():
                log(f"{name} seed {seed}: {path} missing (re-run bench.run for it), skipped")
                continue
            values = pd.read_parquet(path)
            sp = protocol.split(ds.x, ds.y, ds.task, seed)
            x_full = pd.concat([sp.x_train, sp.x_test], ignore_index=True)
            y_full = pd.concat([sp.y_train, sp.y_test], ignore_index=True)
            if len(values) != len(x_full):
                log(f"{name} seed {seed}: {path} has {len(values)} rows, the table {len(x_full)}: skipped")
                continue
            t0 = time.perf_counter()
            base_scores, with_scores = [], {f["name"]: [] for f in selected}
            # the feature columns travel with their rows through the split (which shuffles)
            extra = {f"__afep_{i}": values[f["name"]].to_numpy(dtype=float) for i, f in enumerate(selected)}
            x_all = x_full.assign(**extra)
            for r in range(splits):
                split_seed = 10_000 + 100 * seed + r
                s = protocol.split(x_all, y_full, ds.task, split_seed)
                raw_tr, raw_te = s.x_train.drop(columns=list(extra)), s.x_test.drop(columns=list(extra))
                raw = protocol.evaluate(raw_tr, s.y_train, raw_te, s.y_test, ds.task, split_seed).value
                base_scores.append(raw)
                for i, f in enumerate(selected):
                    col = f"__afep_{i}"
                    x_tr = raw_tr.assign(**{col: s.x_train[col].to_numpy()})
                    x_te = raw_te.assign(**{col: s.x_test[col].to_numpy()})
                    score = protocol.evaluate(x_tr, s.y_train, x_te, s.y_test, ds.task, split_seed).value
                    with_scores[f["name"]].append(score)
            for f in selected:
                lifts = np.array([_lift(ds.task, b, w) for b, w in zip(base_scores, with_scores[f["name"]])])
                err = float(np.mean([_err(ds.task, b) for b in base_scores]))
                ci = f.get("ci") or [None, None]
                realized = float(lifts.mean())
                se = float(lifts.std(ddof=1) / np.sqrt(len(lifts)))
                inside = ci[0] is not None and ci[0] <= realized <= ci[1]
                rows.append(
                    dict(
                        set=dsets.set_of(name),
                        dataset=name,
                        seed=seed,
                        task=ds.task,
                        feature=f["name"],
                        claimed=f.get("lift"),
                        ci_low=ci[0],
                        ci_high=ci[1],
                        p_claimed=f.get("p_value"),
                        reason=f.get("selection_reason"),
                        realized=realized,
                        realized_se=se,
                        inside_ci=bool(inside),
                        share_helps=float((lifts > 0).mean()),
                        splits=len(lifts),
                        raw_error=err,
                        realized_rel=realized / err if err > 0 else float("nan"),
                        claimed_rel=(f.get("lift") or 0.0) / err if err > 0 else float("nan"),
                    )
                )
                log(
                    f"{name} seed {seed} {f['name']}: claimed {f.get('lift'):+.4g} [{ci[0]:+.4g}, {ci[1]:+.4g}], "
                    f"realized {realized:+.4g} ± {se:.2g} ({'in' if inside else 'OUT'}), "
                    f"helps {np.mean(lifts > 0):.0%}"
                )
            log(
                f"{name} seed {seed}: {len(selected)} feature(s) over {splits} splits in {time.perf_counter() - t0:.0f} s"
            )
    return rows


def pooled(rows: list[dict]) -> dict:
    from scipy.stats import ttest_1samp, wilcoxon

    if not rows:
        return {"n_features": 0}
    rel = np.array([r["realized_rel"] for r in rows], dtype=float)
    out = {
        "n_features": len(rows),
        "share_inside_ci": float(np.mean([r["inside_ci"] for r in rows])),
        "realized_rel_mean": float(rel.mean()),
        "claimed_rel_mean": float(np.mean([r["claimed_rel"] for r in rows])),
        "features_realized_positive": int((rel > 0).sum()),
        "share_splits_helping": float(np.mean([r["share_helps"] for r in rows])),
    }
    if len(rows) >= 2:
        out["p_t"] = float(ttest_1samp(rel, 0.0).pvalue)
        out["p_wilcoxon"] = float(wilcoxon(rel).pvalue) if np.any(rel != 0) else float("nan")
    return out


def null_permuted(jobs: int, log) -> dict:
    """`afep run` on development tables with a permuted target: how many jobs select anything."""
    names = list(dsets.DEVELOPMENT)
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for j in range(jobs):
            name, seed = names[j % len(names)], j // len(names)
            ds = dsets.LOADERS[name]()
            sp = protocol.split(ds.x, ds.y, ds.task, seed)
            y = pd.Series(np.random.default_rng(1000 + j).permutation(sp.y_train.to_numpy()))
            work = Path(tmp) / f"{name}-{seed}"
            work.mkdir()
            sp.x_train.assign(**{ds.target: y.values}).to_parquet(work / "train.parquet")
            sp.x_train.to_parquet(work / "train_x.parquet")
            sp.x_test.to_parquet(work / "test.parquet")
            timed, new_train, _, _ = afep_engine.run(
                work, target=ds.target, task=ds.task, seed=seed, timeout_s=900, log=work / "afep.log", cwd=work
            )
            n = None if new_train is None else int(new_train.shape[1])
            outcomes.append({"dataset": name, "seed": seed, "selected": n, "wall_s": timed.wall_s})
            log(f"permuted {name} seed {seed}: {n} selected ({timed.wall_s:.1f} s)")
    done = [o for o in outcomes if o["selected"] is not None]
    return {
        "jobs": len(done),
        "failed": len(outcomes) - len(done),
        "jobs_selecting": sum(1 for o in done if o["selected"] > 0),
        "runs": outcomes,
    }


def _noise_table(task: str, seed: int) -> tuple[pd.DataFrame, str]:
    if task == "regression":
        ds = dsets.LOADERS["concrete"]()
    else:
        ds = dsets.LOADERS["credit_data"]()
    df = ds.x.assign(**{"__y": ds.y.values})
    if len(df) > 1000:
        df = df.sample(n=1000, random_state=seed).reset_index(drop=True)
    return df, "__y"


def null_noise(jobs: int, log) -> dict:
    """Engine-level: real-ish candidates plus 30 pure-noise ones; which jobs select noise."""
    import polars as pl

    from processors.engine import evaluate_round, plan_folds, prepare_base

    outcomes = []
    for j in range(jobs):
        task = "regression" if j % 2 == 0 else "classification"
        seed = j // 2
        df, target = _noise_table(task, seed)
        rng = np.random.default_rng(5000 + j)
        numeric = [c for c in df.columns if c != target and df[c].dtype.kind in "fi"][:8]
        frame = df.copy()
        for c in frame.columns:
            if str(frame[c].dtype) == "category":
                frame[c] = frame[c].astype(str)
        base = prepare_base(pl.from_pandas(frame), target, task, "1" if task == "classification" else None)
        plan = plan_folds(base.y, task, seed)
        cands: dict[str, np.ndarray] = {}
        for a_i, a in enumerate(numeric):
            for b in numeric[a_i + 1 :]:
                va, vb = df[a].to_numpy(dtype=float), df[b].to_numpy(dtype=float)
                cands[f"{a}*{b}"] = va * vb
                with np.errstate(divide="ignore", invalid="ignore"):
                    cands[f"{a}/{b}"] = np.where(vb != 0, va / vb, np.nan)
        for k in range(NOISE_CANDIDATES):
            cands[f"noise{k}"] = rng.normal(size=len(df))
        t0 = time.perf_counter()
        report = evaluate_round(base, plan, cands, {}, task=task, seed=seed)
        chosen = list(report.newly_selected)
        noise = [c for c in chosen if c.startswith("noise")]
        outcomes.append(
            {
                "task": task,
                "seed": seed,
                "candidates": len(cands),
                "selected": chosen,
                "noise_selected": noise,
                "finalists": list(report.finalists),
                "noise_finalists": [c for c in report.finalists if c.startswith("noise")],
                "noise_p_le_05_shortlist": sum(
                    1
                    for c in report.candidates
                    if c.id.startswith("noise") and c.tested_by and (c.p_value or 1) <= 0.05
                ),
                "seconds": time.perf_counter() - t0,
            }
        )
        log(f"noise {task} seed {seed}: selected {chosen} (finalists {list(report.finalists)})")
    return {
        "jobs": len(outcomes),
        "jobs_selecting": sum(1 for o in outcomes if o["selected"]),
        "jobs_selecting_noise": sum(1 for o in outcomes if o["noise_selected"]),
        "runs": outcomes,
    }


def scatter(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for set_name, colour in (("development", "tab:blue"), ("evaluation", "tab:orange")):
        sub = [r for r in rows if r["set"] == set_name]
        if not sub:
            continue
        claimed = np.array([r["claimed"] / r["raw_error"] for r in sub]) * 100
        lo = np.array([r["ci_low"] / r["raw_error"] for r in sub]) * 100
        hi = np.array([r["ci_high"] / r["raw_error"] for r in sub]) * 100
        real = np.array([r["realized_rel"] for r in sub]) * 100
        se = np.array([r["realized_se"] / r["raw_error"] for r in sub]) * 100
        ax.errorbar(
            claimed, real, xerr=[claimed - lo, hi - claimed], yerr=se, fmt="o", color=colour, alpha=0.7,
            label=f"{set_name} ({len(sub)})", capsize=2,
        )  # fmt: skip
    lim = [min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])]
    ax.plot(lim, lim, "k--", lw=0.8, label="realized = claimed")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("claimed lift, % of raw error (bar: claimed 95% CI)")
    ax.set_ylabel("realized lift over fresh splits, % of raw error (bar: SE)")
    ax.set_title("AFEP: claimed vs realized lift per selected feature")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.calibrate", description=__doc__)
    p.add_argument("--set", default="all", choices=(*dsets.SETS, "all"))
    p.add_argument("--datasets", default=None, help="comma list (default: the tables of --set)")
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--splits", type=int, default=20, help="fresh outer splits per feature (default 20)")
    p.add_argument("--null-jobs", type=int, default=20, help="jobs per null experiment (default 20; 0 skips them)")
    p.add_argument("--skip-claims", action="store_true")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument(
        "--results", type=Path, default=RESULTS, help="bench.run records to read (its --results; default bench/results)"
    )
    p.add_argument("--plot", type=Path, default=ROOT / "docs" / "calibration.png")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    tables = dsets.LOADERS if args.set == "all" else dsets.SETS[args.set]
    names = [n.strip() for n in args.datasets.split(",")] if args.datasets else list(tables)
    seeds = _seeds(args.seeds)

    def log(msg: str) -> None:
        print(f"[calibrate] {msg}", flush=True)

    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    out = dict(old)
    out["created_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    out["command"] = "OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m bench.calibrate " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    out["protocol"] = protocol.PROTOCOL
    if not args.skip_claims:
        rows = calibrate_claims(names, seeds, args.splits, log, args.results)
        kept = [r for r in old.get("features", []) if r["dataset"] not in names or r["seed"] not in seeds]
        out["features"] = kept + rows
        out["splits"] = args.splits
        out["pooled"] = {
            s: pooled([r for r in out["features"] if r["set"] == s]) for s in ("development", "evaluation")
        }
        scatter(out["features"], args.plot)
    if args.null_jobs:
        out["null_permuted"] = null_permuted(args.null_jobs, log)
        out["null_noise"] = null_noise(args.null_jobs, log)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=float))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    raise SystemExit(main())
