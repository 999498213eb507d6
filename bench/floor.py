"""Least time of a job: `afep run` with a single candidate, against a quarter of OpenFE's time.

    .venv/bin/python -m bench.floor [--datasets concrete,credit_data] [--seeds 0-4]
                                    # writes bench/results/floor.json

Same protocol split, same command and same `--apply` of train and test as `bench.run`,
with `--max-candidates 1`: start-up, event log, schema and domain research, one
candidate generated and run in the sandbox, the raw-feature baseline fitted on every
split, one candidate's significance test, export and apply. No job does less. Where
this is already above a quarter of OpenFE's wall time (the per-dataset target of the
benchmark), no setting of the engine can meet that target on this machine: the
remaining time goes to start-up and the baseline, not to candidates.

OpenFE's times are the newest records in bench/results/openfe.jsonl (run `bench.run`
on the same machine first; the file notes the machine of both).
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
from bench.run import _csv, _seeds, _write_workdir

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATASETS = ("breast_cancer", "credit_data", "concrete")


def measure(ds: dsets.Dataset, seed: int, root: Path) -> dict[str, float]:
    name = ds.name
    sp = protocol.split(ds.x, ds.y, ds.task, seed)
    work = root / name / f"seed{seed}"
    _write_workdir(work, ds, seed, sp)
    timed, train, _, info = afep_engine.run(
        work,
        target=ds.target,
        task=ds.task,
        seed=seed,
        timeout_s=600,
        log=work / "afep.log",
        cwd=work,
        extra_args=("--max-candidates", "1"),
    )
    if timed.returncode != 0 or train is None:
        raise SystemExit(f"afep run failed on {name} seed {seed}: {info}; see {work / 'afep.log'}")
    return {"wall_s": timed.wall_s, "cpu_s": timed.cpu_s}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DEFAULT_DATASETS))
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = _csv(args.datasets, tuple(dsets.LOADERS), "dataset")
    seeds = _seeds(args.seeds)
    known = records.latest(args.results, protocol.PROTOCOL)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            ds = dsets.LOADERS[name]()  # loaded once per dataset, split per seed
            runs = [measure(ds, seed, Path(tmp)) for seed in seeds]
            openfe = [known[("openfe", name, s)]["wall_s"] for s in seeds if ("openfe", name, s) in known]
            full = [known[("afep", name, s)]["wall_s"] for s in seeds if ("afep", name, s) in known]
            row = {
                "dataset": name,
                "seeds": seeds,
                "floor_wall_s": statistics.mean(r["wall_s"] for r in runs),
                "floor_cpu_s": statistics.mean(r["cpu_s"] for r in runs),
                "afep_wall_s": statistics.mean(full) if full else None,
                "openfe_wall_s": statistics.mean(openfe) if openfe else None,
            }
            row["quarter_openfe_s"] = row["openfe_wall_s"] / 4 if openfe else None
            rows.append(row)
            print(json.dumps(row), flush=True)
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
