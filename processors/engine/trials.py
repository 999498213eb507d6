"""Fit feature sets on splits: design matrices per split, parallel fits, a cache.

A *feature set* is a tuple of candidate ids added to the raw base matrix. For
split i each candidate contributes column ``plan.fit_index_for_split(i)``, i.e.
its values with statistics fitted on that split's training rows only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from processors.engine.folds import FoldPlan
from processors.engine.matrix import BaseMatrix
from processors.engine.scoring import FitJob, FitResult, Task, fit_and_score, lift_of

FeatureSet = tuple[str, ...]
Progress = Callable[[str, int, int], None]


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
        cats = self.base.categorical + tuple(p + j for j, f in enumerate(features) if f in self.categorical)
        return np.hstack([self.base.x, extra]), cats

    def fit(self, key: tuple[FeatureSet, int]) -> FitResult:
        features, split = key
        x, cats = self.design(features, split)
        train_idx, valid_idx = self.plan.splits[split]
        job = FitJob(x, self.base.y, train_idx, valid_idx, cats)
        return fit_and_score(job, self.task, self.seed, 1)

    def run(self, keys: Sequence[tuple[FeatureSet, int]]) -> None:
        """Fit every (set, split) not yet in the cache."""
        todo = list(dict.fromkeys(k for k in keys if k not in self.results))
        # Sequential on purpose: concurrent lgb.train calls from threads segfaulted in
        # lib_lightgbm (seen on ames, 2 threads), and forked workers hung after LightGBM
        # had run in the parent. Each fit is single-threaded (fastest below 20k rows).
        fitted = [self.fit(k) for k in todo]
        for key, result in zip(todo, fitted, strict=True):
            self.results[key] = result
        self.n_fits += len(todo)

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
