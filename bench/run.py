"""Benchmark entry point: ``OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m bench.run [options]``.

Runs the selected engines on the selected datasets and seeds, appends one record per
engine x dataset x seed to bench/results/<engine>.jsonl, and regenerates
docs/benchmarks.md from every record (fresh and cached) for that selection.

Default = what `make bench` wants: reuse cached raw/OpenFE/DFS records for the current
protocol, always re-run AFEP.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

from bench import datasets as dsets
from bench import protocol, records, report
from bench.engines import afep_engine
from bench.engines.launch import run_timed

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("afep", "openfe", "dfs")
FEATURES_DIR = ROOT / "bench" / "work" / "afep_features"  # read by bench.calibrate
SUBPROCESS_ENGINES = {"openfe": "bench.engines.openfe_engine", "dfs": "bench.engines.dfs_engine"}
ENGINE_NOTES = {
    "afep": "the `afep` CLI: one `afep run` on train with `--apply` on train and test (what `afep apply` does, in the same process), every selected feature added. "
    "A feature is selected only if it confirms for this protocol's model: up to 3 finalists from fast screening, each refitted "
    "with LightGBM 2000/0.05/31 leaves/early stopping 100 on 2 x 10-fold cross-validation of the job's rows, "
    "corrected repeated k-fold t-test (Nadeau-Bengio/Bouckaert-Frank, one-sided), Holm over the finalists. "
    "Run with AFEP_TRACKING=off (no MLflow logging; OpenFE and DFS log nothing either).",
    "openfe": "openfe 0.0.12, `OpenFE().fit(data, label, task, n_jobs=2, seed=seed)`, top 10 of "
    "`new_features_list` added via `transform(train, test, …, n_jobs=2)` (transform sees train+test feature "
    "values together, as OpenFE is designed; never the test target). `mean_squared_error(squared=False)` "
    "shimmed for scikit-learn ≥ 1.6.",
    "dfs": "featuretools DFS, single-table EntitySet, trans_primitives add/subtract/multiply/divide_numeric, "
    "no aggregations, max_depth=1, all generated columns added (no selection); definitions built on train, "
    "`calculate_feature_matrix` on test. Values stored as float32.",
}


def _csv(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise SystemExit(f"unknown {what}: {', '.join(bad)} (choose from {', '.join(allowed)})")
    return items


def _seeds(value: str) -> list[int]:
    out: list[int] = []
    for part in value.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return sorted(set(out))


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--engines", default=",".join(ENGINES), help="comma list of afep,openfe,dfs (default: all)")
    p.add_argument(
        "--datasets",
        default=None,
        help=f"comma list of tables (default: those of --set); development: {','.join(dsets.DEVELOPMENT)}; "
        f"evaluation: {','.join(dsets.EVALUATION)}",
    )
    p.add_argument(
        "--set",
        default="development",
        choices=(*dsets.SETS, "all"),
        help="declared table set when --datasets is not given (default: development)",
    )
    p.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,2 (default: 0-4)")
    p.add_argument(
        "--reuse",
        default="raw,openfe,dfs",
        help="engines whose cached records (same protocol) are reused instead of re-run; "
        "'none' re-runs everything, 'all' also reuses AFEP (default: raw,openfe,dfs)",
    )
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per engine subprocess (default 3600)")
    p.add_argument(
        "--afep-arg",
        action="append",
        default=[],
        help="extra argument passed to `afep run` (repeat; e.g. --afep-arg=--budget --afep-arg=30)",
    )
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument(
        "--work",
        type=Path,
        default=ROOT / "bench" / "work",
        help="scratch root (gitignored); each invocation uses its own run-<time>-<pid>/ below it",
    )
    p.add_argument("--keep-work", action="store_true", help="keep engine inputs/outputs/logs of successful runs too")
    p.add_argument("--timing-note", default="", help="a sentence added under the time table (e.g. how runs were timed)")
    p.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: regenerate the markdown from the records already in --results",
    )
    return p.parse_args(argv)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _record(engine: str, ds: dsets.Dataset, seed: int, sp: protocol.Split, raw: dict | None, **fields) -> dict:
    rec = {
        "engine": engine,
        "dataset": ds.name,
        "seed": seed,
        "task": ds.task,
        "metric": protocol.metric_name(ds.task),
        "protocol": protocol.PROTOCOL,
        "created_at": _now(),
        "n_train": len(sp.x_train),
        "n_test": len(sp.x_test),
        "n_raw_columns": sp.x_train.shape[1],
    }
    rec.update(fields)
    if raw is not None and rec.get("status") == "ok":
        sign = 1.0 if ds.task == "classification" else -1.0
        rec["score_raw"] = raw["score"]
        rec["gain"] = sign * (rec["score"] - raw["score"])
        err_raw = 1.0 - raw["score"] if ds.task == "classification" else raw["score"]
        err = 1.0 - rec["score"] if ds.task == "classification" else rec["score"]
        rec["rel_err_reduction"] = (err_raw - err) / err_raw
    return rec


def _write_workdir(work: Path, ds: dsets.Dataset, seed: int, sp: protocol.Split) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    sp.x_train.assign(**{ds.target: sp.y_train.values}).to_parquet(work / "train.parquet")
    sp.x_train.to_parquet(work / "train_x.parquet")
    sp.x_test.to_parquet(work / "test.parquet")
    (work / "meta.json").write_text(json.dumps({"target": ds.target, "task": ds.task, "seed": seed}))


def _run_engine(engine: str, work: Path, ds: dsets.Dataset, seed: int, timeout: float, afep_args: tuple[str, ...]):
    log = work / f"{engine}.log"
    if engine == "afep":
        return afep_engine.run(
            work, target=ds.target, task=ds.task, seed=seed, timeout_s=timeout, log=log, cwd=work, extra_args=afep_args
        )
    timed = run_timed(
        [sys.executable, "-m", SUBPROCESS_ENGINES[engine], str(work)],
        cwd=ROOT,
        log=log,
        timeout_s=timeout,
        env={"PYTHONPATH": str(ROOT)},
    )
    if timed.returncode != 0 or not (work / "info.json").exists():
        return timed, None, None, {"failed_step": "engine exited without writing its outputs"}
    info = json.loads((work / "info.json").read_text())
    new_train, new_test = pd.read_parquet(work / "new_train.parquet"), pd.read_parquet(work / "new_test.parquet")
    for f in ("new_train.parquet", "new_test.parquet"):
        (work / f).unlink()
    return timed, new_train, new_test, info


def _log_tail(path: Path, n: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])[-600:]
    except OSError:
        return ""


def _evaluate_engine(
    engine: str,
    ds: dsets.Dataset,
    seed: int,
    sp: protocol.Split,
    raw: dict,
    work: Path,
    timeout: float,
    afep_args: tuple[str, ...],
) -> dict:
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    timed, new_train, new_test, info = _run_engine(engine, work, ds, seed, timeout, afep_args)
    # 1-minute load average around the engine run: this 2-core box is shared, so a high value
    # flags a wall time inflated by someone else's work.
    base = dict(wall_s=timed.wall_s, cpu_s=timed.cpu_s, loadavg_1m=[load_before, os.getloadavg()[0]])
    if timed.timed_out or new_train is None or new_test is None:
        status = "timeout" if timed.timed_out else "failed"
        return _record(
            engine,
            ds,
            seed,
            sp,
            raw,
            status=status,
            **base,
            error=f"exit {timed.returncode} {info.get('failed_step', '')}: {_log_tail(work / f'{engine}.log')}",
        )
    if (
        len(new_train) != len(sp.x_train)
        or len(new_test) != len(sp.x_test)
        or list(new_train.columns) != list(new_test.columns)
    ):
        return _record(
            engine,
            ds,
            seed,
            sp,
            raw,
            status="failed",
            **base,
            error=f"shape mismatch: train {new_train.shape} vs {len(sp.x_train)} rows, test {new_test.shape}",
        )
    prefix = f"{engine}__"
    names = [f"{prefix}{i}" for i in range(new_train.shape[1])]
    mapping = dict(zip(names, map(str, new_train.columns)))
    new_train.columns = new_test.columns = names
    x_tr = pd.concat([sp.x_train, new_train], axis=1)
    x_te = pd.concat([sp.x_test, new_test], axis=1)
    score = protocol.evaluate(x_tr, sp.y_train, x_te, sp.y_test, ds.task, seed)
    if engine == "afep" and mapping:
        # the selected features' values on the full table (train part, then test part), for bench.calibrate
        values = pd.concat([new_train, new_test], ignore_index=True).rename(columns=mapping)
        FEATURES_DIR.mkdir(parents=True, exist_ok=True)
        values.to_parquet(FEATURES_DIR / f"{ds.name}-seed{seed}.parquet")
    features = info.get("features") or {}
    described = [features.get(mapping[n], mapping[n]) for n in names]
    extra = {k: v for k, v in info.items() if k not in ("features", "engine")}
    return _record(
        engine,
        ds,
        seed,
        sp,
        raw,
        status="ok",
        score=score.value,
        best_iteration=score.best_iteration,
        n_features_added=len(names),
        **base,
        eval_s=time.perf_counter() - t0 - timed.wall_s,
        features=described[:25],
        engine_info=extra,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    engines = _csv(args.engines, ENGINES, "engine")
    default_tables = dsets.LOADERS if args.set == "all" else dsets.SETS[args.set]
    datasets = _csv(args.datasets or ",".join(default_tables), tuple(dsets.LOADERS), "dataset")
    seeds = _seeds(args.seeds)
    reuse = (
        set(ENGINES) | {"raw"}
        if args.reuse == "all"
        else set()
        if args.reuse == "none"
        else set(_csv(args.reuse, ("raw",) + ENGINES, "engine"))
    )
    started = _now()
    command = "OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m bench.run" + (" " + shlex.join(argv) if argv else "")
    machine = report.machine_info()
    skipped: dict[str, str] = {}
    if "afep" in engines:
        reason = afep_engine.unavailable_reason()
        if reason:
            skipped["afep"] = (
                f"AFEP CLI not available — {reason}. Other engines ran; re-run `make bench` once `afep run` works."
            )
            print(f"[bench] SKIP afep: {reason}", flush=True)
    todo = [e for e in engines if e not in skipped]
    # A private scratch dir per invocation: concurrent bench runs must not delete each other's files.
    run_dir = args.work / f"run-{dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
    cache = records.latest(args.results, protocol.PROTOCOL)
    fresh: set[records.Key] = set()
    notes: dict[str, str] = {}
    last_run = args.results / "last_run.json"
    if args.render_only and last_run.exists():
        # rendering again (e.g. after bench.scale / bench.floor): the header and the *source*
        # column still describe the run that made the records, not this re-rendering
        last = json.loads(last_run.read_text())
        started, command, machine = last["started"], last["command"], last["machine"]
        fresh = {(e, d, int(s)) for e, d, s in last["fresh"]}

    def write_doc() -> None:
        if not args.render_only:
            args.results.mkdir(parents=True, exist_ok=True)
            last_run.write_text(
                json.dumps({"started": started, "command": command, "machine": machine, "fresh": sorted(fresh)})
            )
        # Show every engine that was selected or has records for this selection (so a quick
        # `--engines afep` run still reports against the cached baselines).
        shown = [
            e
            for e in ENGINES
            if e in engines
            or any(
                k[0] == e and k[1] in datasets and k[2] in seeds and r.get("status") == "ok" for k, r in cache.items()
            )
        ]
        args.doc.parent.mkdir(parents=True, exist_ok=True)
        args.doc.write_text(
            report.render(
                records=cache,
                datasets=datasets,
                seeds=seeds,
                engines=["raw"] + shown,
                fresh=fresh,
                skipped=skipped,
                machine=machine,
                command=command,
                started=started,
                protocol=protocol.PROTOCOL,
                notes=notes,
                engine_notes=ENGINE_NOTES,
                sets={d: dsets.set_of(d) for d in datasets},
                timing_note=args.timing_note,
                results_dir=args.results,
            )
        )

    def usable(key: records.Key) -> bool:
        return key[0] in reuse and cache.get(key, {}).get("status") == "ok"

    for name in datasets:
        ds = dsets.LOADERS[name]()
        notes[name] = (
            f"{ds.task}, target `{ds.target}`, {ds.x.shape[0]} rows × {ds.x.shape[1]} columns "
            f"({sum(str(t) == 'category' for t in ds.x.dtypes)} categorical) — {ds.note}"
        )
        for seed in seeds:
            pending = [e for e in todo if not usable((e, name, seed))]
            raw_key = ("raw", name, seed)
            if args.render_only:
                missing = [e for e in todo if cache.get((e, name, seed), {}).get("status") != "ok"]
                if missing:
                    print(f"[bench] {name} seed {seed}: no record for {', '.join(missing)} (--render-only)", flush=True)
                continue
            if not pending and usable(raw_key):
                print(f"[bench] {name} seed {seed}: all cached", flush=True)
                continue
            sp = protocol.split(ds.x, ds.y, ds.task, seed)
            if usable(raw_key):
                raw = cache[raw_key]
            else:
                t0 = time.perf_counter()
                s = protocol.evaluate(sp.x_train, sp.y_train, sp.x_test, sp.y_test, ds.task, seed)
                raw = _record(
                    "raw",
                    ds,
                    seed,
                    sp,
                    None,
                    status="ok",
                    score=s.value,
                    best_iteration=s.best_iteration,
                    n_features_added=0,
                    wall_s=0.0,
                    cpu_s=0.0,
                    eval_s=time.perf_counter() - t0,
                )
                raw.update(score_raw=s.value, gain=0.0, rel_err_reduction=0.0)
                records.append(args.results, raw)
                cache[raw_key], _ = raw, fresh.add(raw_key)
            print(f"[bench] {name} seed {seed}: raw {raw['metric']} = {raw['score']:.4f}", flush=True)
            work = run_dir / name / f"seed{seed}"
            _write_workdir(work, ds, seed, sp)
            for engine in pending:
                print(f"[bench] {name} seed {seed}: running {engine} …", flush=True)
                try:
                    rec = _evaluate_engine(engine, ds, seed, sp, raw, work, args.timeout, tuple(args.afep_arg))
                except Exception as exc:  # one broken engine run must not end the whole benchmark
                    rec = _record(
                        engine,
                        ds,
                        seed,
                        sp,
                        raw,
                        status="failed",
                        wall_s=None,
                        cpu_s=None,
                        error=f"{type(exc).__name__}: {exc}"[:600],
                    )
                records.append(args.results, rec)
                key = (engine, name, seed)
                cache[key], _ = rec, fresh.add(key)
                if rec["status"] == "ok":
                    print(
                        f"[bench] {name} seed {seed}: {engine} {rec['metric']} = {rec['score']:.4f} "
                        f"(gain {rec['gain']:+.4f}, {rec['n_features_added']} features, wall {rec['wall_s']:.1f}s, "
                        f"cpu {rec['cpu_s']:.1f}s)",
                        flush=True,
                    )
                else:
                    print(
                        f"[bench] {name} seed {seed}: {engine} {rec['status']}: {rec.get('error', '')[:300]}",
                        flush=True,
                    )
                write_doc()
            if not args.keep_work and all(cache[(e, name, seed)]["status"] == "ok" for e in pending):
                shutil.rmtree(work, ignore_errors=True)  # keep the logs of failed runs only
    write_doc()
    if not args.keep_work and run_dir.exists() and not any(p.is_file() for p in run_dir.rglob("*")):
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"[bench] wrote {args.doc}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
