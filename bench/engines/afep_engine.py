"""AFEP, driven exactly as a user drives it: the ``afep`` CLI in subprocesses.

    afep run   WORK/train.parquet --target T --task TASK --seed S --out WORK/afep_model --data-dir WORK/afep_data
    afep apply WORK/afep_model WORK/train_x.parquet --out WORK/afep_train_features.parquet
    afep apply WORK/afep_model WORK/test.parquet    --out WORK/afep_test_features.parquet

Wall and CPU are summed over the three calls. ``apply`` may return the input columns
plus the new ones, or only the new ones: we keep the columns not in the input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from bench.engines.launch import Timed, add, run_timed

ROOT = Path(__file__).resolve().parents[2]
# If the venv's editable install of afep lacks its .pth entry (it did while this harness was
# written), `.venv/bin/afep` cannot import `gateway`. PYTHONPATH=<repo root> is a no-op for a
# correct install and keeps the benchmark working otherwise.
ENV = {"PYTHONPATH": str(ROOT)}


def cli_path() -> Path:
    return Path(sys.executable).parent / "afep"


def unavailable_reason() -> str | None:
    """None when `afep run` and `afep apply` exist, else a message saying why AFEP is skipped."""
    exe = cli_path()
    if not exe.exists():
        return f"{exe} not found (is the afep package installed in this venv?)"
    for sub in ("run", "apply"):
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
    for part, src in (("train", work / "train_x.parquet"), ("test", work / "test.parquet")):
        dst = work / f"afep_{part}_features.parquet"
        step = run_timed(
            [exe, "apply", str(model_dir), str(src), "--out", str(dst)], cwd=cwd, log=log, timeout_s=timeout_s, env=ENV
        )
        timed = add(timed, step)
        if step.returncode != 0:
            return timed, None, None, {"failed_step": f"apply {part}"}
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
