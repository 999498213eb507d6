"""The file contract between the orchestrator and an engine subprocess.

WORK/train.parquet  train features + target column   (written by the orchestrator)
WORK/test.parquet   test features, no target          (written by the orchestrator)
WORK/meta.json      {"target", "task", "seed"}         (written by the orchestrator)
WORK/new_train.parquet, WORK/new_test.parquet          (written by the engine: new columns only,
                                                        rows in the input order)
WORK/info.json      engine-specific details, e.g. feature formulas (written by the engine)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class EngineInput:
    x_train: pd.DataFrame
    y_train: pd.Series
    x_test: pd.DataFrame
    target: str
    task: str
    seed: int


def read_input(work: Path) -> EngineInput:
    meta = json.loads((work / "meta.json").read_text())
    train = pd.read_parquet(work / "train.parquet")
    y = train.pop(meta["target"])
    return EngineInput(
        train, y, pd.read_parquet(work / "test.parquet"), meta["target"], meta["task"], int(meta["seed"])
    )


def write_output(work: Path, new_train: pd.DataFrame, new_test: pd.DataFrame, info: dict) -> None:
    new_train.reset_index(drop=True).to_parquet(work / "new_train.parquet")
    new_test.reset_index(drop=True).to_parquet(work / "new_test.parquet")
    (work / "info.json").write_text(json.dumps(info, indent=1, default=str))
