"""Fit feature sets on splits: design matrices per split, parallel fits, a cache.

A *feature set* is a tuple of candidate ids added to the raw base matrix. For
split i each candidate contributes column ``plan.fit_index_for_split(i)``, i.e.
its values with statistics fitted on that split's training rows only.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from processors.engine.folds import FoldPlan
from processors.engine.matrix import BaseMatrix
from processors.engine.pool import FitPool, FitRequest, shared_pool
from processors.engine.scoring import LEARNING_RATE, FitResult, Task, lift_of

log = logging.getLogger(__name__)
FeatureSet = tuple[str, ...]
Progress = Callable[[str, int, int], None]


@dataclass
class Trials:
    """Runs and remembers (feature set, split) fits for one round."""

    base: BaseMatrix
    plan: FoldPlan
    pool: dict[str, np.ndarray]
    task: Task
    seed: int
    deadline: float | None
    categorical: Collection[str] = ()
    results: dict[tuple[FeatureSet, int], FitResult] = field(default_factory=dict)
    n_fits: int = 0
    workers: FitPool | None = None
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    partial: set[str] = field(default_factory=set)  # ids with only the plan's eager fit columns
    learning_rate: float = LEARNING_RATE  # the job's boosting step (`scoring.step_for`)

    @property
    def parallel(self) -> int:
        """How many fits run side by side: a batch of this many keeps every worker busy."""
        return max(1, (self.workers if self.workers is not None else shared_pool()).size)

    def time_left(self) -> float:
        return np.inf if self.deadline is None else self.deadline - time.monotonic()

    def out_of_time(self) -> bool:
        return self.time_left() <= 0

    def request(self, key: tuple[FeatureSet, int]) -> FitRequest:
        """The model for (feature set, split): base matrix plus the set's columns for that split."""
        features, split = key
        col = self.plan.fit_index_for_split(split)
        train_idx, valid_idx = self.plan.splits[split]
        stop_idx = self.plan.stop_rows(split)
        if stop_idx is not None:  # a final split: the protocol's model trains on the rest of its 80%
            train_idx = np.setdiff1d(train_idx, stop_idx, assume_unique=True)
        if not features:
            return FitRequest(None, self.base.categorical, train_idx, valid_idx, self.learning_rate, stop_idx)
        if col not in self.plan.eager_fits and self.partial.intersection(features):
            missing = sorted(self.partial.intersection(features))
            raise RuntimeError(f"fold column {col} of {missing} was never computed: complete them first")
        extra = np.column_stack([self.pool[f][:, col] for f in features])
        p = self.base.x.shape[1]
        cats = self.base.categorical + tuple(p + j for j, f in enumerate(features) if f in self.categorical)
        return FitRequest(extra, cats, train_idx, valid_idx, self.learning_rate, stop_idx)

    def run(self, keys: Sequence[tuple[FeatureSet, int]]) -> None:
        """Fit every (set, split) not yet in the cache, on the fit workers (see `pool`)."""
        todo = list(dict.fromkeys(k for k in keys if k not in self.results))
        workers = self.workers if self.workers is not None else shared_pool()
        requests = [self.request(k) for k in todo]
        fitted = workers.fit_many(self.key, self.base.x, self.base.y, requests, self.task, self.seed)
        for key, result in zip(todo, fitted, strict=True):
            self.results[key] = result
        self.n_fits += len(todo)

    def run_in_background(self, keys: Sequence[tuple[FeatureSet, int]]) -> threading.Thread:
        """`run(keys)` on a thread, so the caller can compute meanwhile; join it before reading.

        An error there is not raised: the fits are missing afterwards, and the caller's
        next `run` of the same keys fits them again and raises it.
        """

        def work() -> None:
            try:
                self.run(keys)
            except Exception:  # repeated, and raised, by the caller's own run
                log.debug("background fits failed; they are fitted again in the caller", exc_info=True)

        thread = threading.Thread(target=work, name="fits-ahead", daemon=True)
        thread.start()
        return thread

    def scores(self, features: FeatureSet, splits: Sequence[int]) -> np.ndarray:
        self.run([(features, s) for s in splits])
        return np.array([self.results[(features, s)].score for s in splits])

    def diffs(self, features: FeatureSet, reference: FeatureSet, splits: Sequence[int]) -> np.ndarray:
        """Per-split lift of `features` over `reference` (positive = better)."""
        new = self.scores(features, splits)
        ref = self.scores(reference, splits)
        return np.array([lift_of(self.task, r, n) for r, n in zip(ref, new, strict=True)])

    def oof_raw(self, features: FeatureSet, splits: Sequence[int]) -> np.ndarray:
        """Out-of-fold raw baseline scores over the validation rows of `splits` (rows x classes for multiclass)."""
        self.run([(features, s) for s in splits])
        shape = self.results[(features, splits[0])].raw_valid.shape[1:]  # (classes,) for multiclass
        raw = np.zeros((self.base.n_rows, *shape))
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
