"""The job's encoded training matrix and fold plan, shared by execution and evaluation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from domain.job import Job
from processors.engine import BaseMatrix, FoldPlan, plan_folds, prepare_base
from processors.sources import SourceError
from processors.workbench import Workbench


def snapshot_path(path: str, bench: Workbench) -> str:
    """`path` if it is one of the workbench's own snapshots; a job never reads another file as its dataset."""
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(os.path.realpath(bench.datasets_dir)):
        raise SourceError("the job's dataset is not a snapshot of this data dir; retry the job to take a new one")
    return str(real)


def base_and_plan(job: Job, bench: Workbench) -> tuple[Any, BaseMatrix, FoldPlan]:
    """(frame, base matrix, fold plan) for the job's frozen dataset; computed once per process."""
    schema = job.schema
    assert schema is not None, "the schema agent runs first"
    request = job.request

    def build() -> tuple[Any, BaseMatrix, FoldPlan]:
        frame = bench.frame(snapshot_path(schema.dataset_path, bench))
        base = prepare_base(
            frame,
            request.target,
            schema.task,  # type: ignore[arg-type]
            schema.positive_class,
            schema.excluded_columns,
        )
        return frame, base, plan_folds(base.y, base.task, request.seed)

    return bench.memo(("base", schema.dataset_sha256, request.target, request.seed, schema.task), build)  # type: ignore[no-any-return]
