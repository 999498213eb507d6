"""AFEP, driven exactly as a user drives it: the ``afep`` CLI in a subprocess.

    afep run WORK/train.parquet --target T --task TASK --seed S --out WORK/afep_model --data-dir WORK/afep_data \
             --apply WORK/train_x.parquet --apply WORK/test.parquet

``--apply`` does what ``afep apply`` does, after the job and in the same process
(one start-up instead of three); its tables land in WORK/afep_model/applied/.
Wall and CPU are those of that one call. The outputs hold the input columns plus
the new ones: we keep the columns not in the input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from bench.engines.launch import Timed, run_timed

ROOT = Path(__file__).resolve().parents[2]
# If the venv's editable install of afep lacks its .pth entry (it did while this harness was
# written), `.venv/bin/afep` cannot import `gateway`. PYTHONPATH=<repo root> is a no-op for a
# correct install and keeps the benchmark working otherwise.
# AFEP_TRACKING=off: no MLflow run per job (its import and logging add 5-6 s to `afep run`);
# OpenFE and DFS log no experiments either, and the benchmark compares feature engineering.
ENV = {"PYTHONPATH": str(ROOT), "AFEP_TRACKING": "off"}


def cli_path() -> Path:
    return Path(sys.executable).parent / "afep"


def unavailable_reason() -> str | None:
    """None when `afep run` and `afep apply` exist, else a message saying why AFEP is skipped."""
    exe = cli_path()
    if not exe.exists():
        return f"{exe} not found (is the afep package installed in this venv?)"
    for sub in ("run",):
        try:
            p = subprocess.run(
                [str(exe), sub, "--help"], capture_output=True, text=True, timeout=120, env=dict(os.environ, **ENV)
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`afep {sub} --help` failed: {exc}"
        if p.returncode != 0:
            tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["(no output)"]
            return f"`afep {sub} --help` exited {p.returncode}: {tail[0][:200]}"
    return None


def run(
    work: Path,
    *,
    target: str,
    task: str,
    seed: int,
    timeout_s: float,
    log: Path,
    cwd: Path,
    extra_args: tuple[str, ...] = (),
) -> tuple[Timed, pd.DataFrame | None, pd.DataFrame | None, dict]:
    exe = str(cli_path())
    model_dir, data_dir = work / "afep_model", work / "afep_data"
    sources = {"train": work / "train_x.parquet", "test": work / "test.parquet"}
    timed = run_timed(
        [
            exe,
            "run",
            str(work / "train.parquet"),
            "--target",
            target,
            "--task",
            task,
            "--seed",
            str(seed),
            "--out",
            str(model_dir),
            "--data-dir",
            str(data_dir),
            *(arg for src in sources.values() for arg in ("--apply", str(src))),
            *extra_args,
        ],
        cwd=cwd,
        log=log,
        timeout_s=timeout_s,
        env=ENV,
    )
    if timed.returncode != 0:
        return timed, None, None, {"failed_step": "run"}
    outputs = {}
    for part, src in sources.items():
        dst = model_dir / "applied" / f"{src.stem}.parquet"
        if not dst.exists():
            return timed, None, None, {"failed_step": f"apply {part}: {dst} not written"}
        inp_cols = set(pd.read_parquet(src).columns)
        out = pd.read_parquet(dst)
        outputs[part] = out[[c for c in out.columns if c not in inp_cols]].reset_index(drop=True)
    if len(outputs["train"].columns) != len(outputs["test"].columns) or list(outputs["train"].columns) != list(
        outputs["test"].columns
    ):
        return (
            timed,
            None,
            None,
            {
                "failed_step": f"apply: train/test new columns differ "
                f"({list(outputs['train'].columns)[:5]} vs {list(outputs['test'].columns)[:5]})"
            },
        )
    info: dict = {"engine": "afep", "cli_extra_args": list(extra_args)}
    features_json = model_dir / "features.json"
    if features_json.exists():
        try:
            info["features_json"] = json.loads(features_json.read_text())
        except ValueError as exc:
            info["features_json_error"] = str(exc)
    return timed, outputs["train"], outputs["test"], info
