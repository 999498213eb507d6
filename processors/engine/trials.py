"""Fit feature sets on splits: design matrices per split, parallel fits, a cache.

A *feature set* is a tuple of candidate ids added to the raw base matrix. For
split i each candidate contributes column ``plan.fit_index_for_split(i)``, i.e.
its values with statistics fitted on that split's training rows only.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from processors.engine.folds import FoldPlan
from processors.engine.matrix import BaseMatrix
from processors.engine.scoring import FitJob, FitResult, Task, fit_and_score, lift_of

FeatureSet = tuple[str, ...]
Progress = Callable[[str, int, int], None]

# Hand-off to forked workers: set just before the fork, read only in the children.
# A LightGBM fit on a small table is dominated by per-iteration Python work that
# holds the GIL, so threads give no speed-up (measured 1.15 s vs 1.19 s); forked
# processes share the arrays copy-on-write and do give ~2x on 2 cores.
_FORKED: list[Trials] = []


def _fit_forked(key: tuple[FeatureSet, int]) -> FitResult:
    return _FORKED[0].fit(key)


@dataclass
class Trials:
    """Runs and remembers (feature set, split) fits for one round."""

    base: BaseMatrix
    plan: FoldPlan
    pool: Mapping[str, np.ndarray]
    task: Task
    seed: int
    threads: int
    deadline: float | None
    categorical: Collection[str] = ()
    results: dict[tuple[FeatureSet, int], FitResult] = field(default_factory=dict)
    n_fits: int = 0
    workers: Any = None

    def time_left(self) -> float:
        return np.inf if self.deadline is None else self.deadline - time.monotonic()

    def out_of_time(self) -> bool:
        return self.time_left() <= 0

    def design(self, features: FeatureSet, split: int) -> tuple[np.ndarray, tuple[int, ...]]:
        col = self.plan.fit_index_for_split(split)
        if not features:
            return self.base.x, self.base.categorical
        extra = np.column_stack([self.pool[f][:, col] for f in features])
        p = self.base.x.shape[1]
        cats = self.base.categorical + tuple(
            p + j for j, f in enumerate(features) if f in self.categorical
        )
        return np.hstack([self.base.x, extra]), cats

    def fit(self, key: tuple[FeatureSet, int]) -> FitResult:
        features, split = key
        x, cats = self.design(features, split)
        train_idx, valid_idx = self.plan.splits[split]
        return fit_and_score(FitJob(x, self.base.y, train_idx, valid_idx, cats), self.task, self.seed)

    def run(self, keys: Sequence[tuple[FeatureSet, int]]) -> None:
        """Fit every (set, split) not yet in the cache, `threads` at a time."""
        todo = list(dict.fromkeys(k for k in keys if k not in self.results))
        if self.threads > 1 and len(todo) > 1 and "fork" in multiprocessing.get_all_start_methods():
            if self.workers is None:
                _FORKED[:] = [self]
                self.workers = multiprocessing.get_context("fork").Pool(self.threads)
                _FORKED.clear()
            fitted = self.workers.map(_fit_forked, todo, chunksize=1)
        else:
            fitted = [self.fit(k) for k in todo]
        for key, result in zip(todo, fitted, strict=True):
            self.results[key] = result
        self.n_fits += len(todo)

    def close(self) -> None:
        """Stop the worker processes (call once the round is over)."""
        if self.workers is not None:
            self.workers.terminate()
            self.workers.join()
            self.workers = None

    def scores(self, features: FeatureSet, splits: Sequence[int]) -> np.ndarray:
        self.run([(features, s) for s in splits])
        return np.array([self.results[(features, s)].score for s in splits])

    def diffs(self, features: FeatureSet, reference: FeatureSet, splits: Sequence[int]) -> np.ndarray:
        """Per-split lift of `features` over `reference` (positive = better)."""
        new = self.scores(features, splits)
        ref = self.scores(reference, splits)
        return np.array([lift_of(self.task, r, n) for r, n in zip(ref, new, strict=True)])

    def oof_raw(self, features: FeatureSet, splits: Sequence[int]) -> np.ndarray:
        """Out-of-fold raw baseline scores over the validation rows of `splits`."""
        self.run([(features, s) for s in splits])
        raw = np.zeros(self.base.n_rows)
        for s in splits:
            raw[self.plan.splits[s][1]] = self.results[(features, s)].raw_valid
        return raw

    def importance_ranks(self, features: FeatureSet, splits: Sequence[int]) -> dict[str, int]:
        """Rank (1 = top) of each added feature by mean gain importance in the set's models."""
        self.run([(features, s) for s in splits])
        gain = np.mean([self.results[(features, s)].importance for s in splits], axis=0)
        order = np.argsort(-gain, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(1, order.shape[0] + 1)
        p = self.base.x.shape[1]
        return {f: int(rank[p + j]) for j, f in enumerate(features)}
