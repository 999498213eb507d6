"""Least time of a job: `afep run` with a single candidate, against a quarter of OpenFE's time.

    .venv/bin/python -m bench.floor [--datasets concrete,credit_data] [--seeds 0-4] [--openfe cached]
                                    # writes bench/results/floor.json

Same protocol split, same command and same `--apply` of train and test as `bench.run`,
with `--max-candidates 1`: start-up, event log, schema and domain research, one
candidate generated and run in the sandbox, the raw-feature baseline fitted on every
split, one candidate's significance test, export and apply. No job does less. Where
this is already above a quarter of OpenFE's wall time (the per-dataset target of the
benchmark), no setting of the engine can meet that target on this machine: the
remaining time goes to start-up and the baseline, not to candidates.

For each seed the one-candidate job, the full AFEP job and OpenFE run one after the
other on the same split, so all three are timed at the same machine speed (it drifts:
OpenFE on one caravan split took 314-647 s over a day). `--openfe cached` takes OpenFE's
and AFEP's times from the newest records in bench/results instead (quicker, but they may
come from another hour).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench import datasets as dsets
from bench import protocol, records, report
from bench.engines import afep_engine
from bench.run import _csv, _run_engine, _seeds, _write_workdir

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATASETS = ("breast_cancer", "credit_data", "concrete")


def measure(ds: dsets.Dataset, seed: int, root: Path, openfe: bool) -> dict[str, float]:
    """Wall and CPU seconds of the one-candidate job, then (if `openfe`) full AFEP and OpenFE."""
    name = ds.name
    sp = protocol.split(ds.x, ds.y, ds.task, seed)
    work = root / name / f"seed{seed}"
    _write_workdir(work, ds, seed, sp)
    runs: dict[str, tuple[str, ...]] = {"floor": ("--max-candidates", "1")}
    if openfe:
        runs["afep"] = ()
    out: dict[str, float] = {}
    for label, extra in runs.items():
        timed, train, _, info = afep_engine.run(
            work,
            target=ds.target,
            task=ds.task,
            seed=seed,
            timeout_s=600,
            log=work / f"{label}.log",
            cwd=work,
            extra_args=extra,
        )
        if timed.returncode != 0 or train is None:
            raise SystemExit(f"afep run ({label}) failed on {name} seed {seed}: {info}; see {work / f'{label}.log'}")
        out[f"{label}_wall_s"], out[f"{label}_cpu_s"] = timed.wall_s, timed.cpu_s
    if openfe:
        timed = _run_engine("openfe", work, ds, seed, 3600, ())[0]
        if timed.returncode != 0:
            raise SystemExit(f"OpenFE failed on {name} seed {seed}; see {work / 'openfe.log'}")
        out["openfe_wall_s"], out["openfe_cpu_s"] = timed.wall_s, timed.cpu_s
    return out


def _mean(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DEFAULT_DATASETS))
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--openfe",
        choices=("measure", "cached"),
        default="measure",
        help="measure OpenFE and the full AFEP job next to each one-candidate job (default), "
        "or take their times from the newest records",
    )
    args = parser.parse_args(argv)
    names = _csv(args.datasets, tuple(dsets.LOADERS), "dataset")
    seeds = _seeds(args.seeds)
    measured = args.openfe == "measure"
    known = records.latest(args.results, protocol.PROTOCOL)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            ds = dsets.LOADERS[name]()  # loaded once per dataset, split per seed
            runs = [measure(ds, seed, Path(tmp), measured) for seed in seeds]
            if measured:
                openfe = [r["openfe_wall_s"] for r in runs]
                full = [r["afep_wall_s"] for r in runs]
            else:
                openfe = [known[("openfe", name, s)]["wall_s"] for s in seeds if ("openfe", name, s) in known]
                full = [known[("afep", name, s)]["wall_s"] for s in seeds if ("afep", name, s) in known]
            row = {
                "dataset": name,
                "seeds": seeds,
                "floor_wall_s": statistics.mean(r["floor_wall_s"] for r in runs),
                "floor_cpu_s": statistics.mean(r["floor_cpu_s"] for r in runs),
                "afep_wall_s": _mean(full),
                "openfe_wall_s": _mean(openfe),
                "openfe_source": "measured alongside" if measured else "cached records",
                "per_seed": runs,
            }
            row["quarter_openfe_s"] = row["openfe_wall_s"] / 4 if openfe else None
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "per_seed"}), flush=True)
    out = {
        "command": "python -m bench.floor" + (f" {' '.join(argv)}" if argv else ""),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": report.machine_info(),
        "rows": rows,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "floor.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.results / 'floor.json'}")


if __name__ == "__main__":
    main()
