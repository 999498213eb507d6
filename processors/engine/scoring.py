"""One LightGBM fit on one split, scored with the job's metric.

Each model uses ``num_threads=1``: on small tables (<= ~10k rows) LightGBM's
OpenMP threads spend more time synchronising than working (measured: 5 folds of
breast_cancer 2.3 s with 2 threads vs 0.22 s with 1). The cores are used by
running fits side by side in worker processes instead (`pool`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

# "classification" is binary (AUC); "multiclass" is three or more classes (multiclass log loss)
Task = Literal["classification", "regression", "multiclass"]

MAX_ROUNDS = 600
# Measured on the benchmark (25 dataset x seed pairs): a step of 0.2 or 0.15 made each fit
# 1.5-2x cheaper but lost the gains on caravan, where selection needs steadier fits; a
# patience of 15 rounds instead of 30 cut a third of the time, every dataset still gaining.
LEARNING_RATE = 0.1
EARLY_STOPPING = 15
# The step adapts to the job (`step_for`): a raw-feature baseline that needs far more than
# TARGET_ROUNDS rounds at 0.1 (a smooth, low-noise target such as concrete's, ~200) is
# fitted with a larger step, so every fit of the job costs about TARGET_ROUNDS rounds; the
# noisy targets above keep 0.1. Measured on the benchmark: concrete a third faster, the
# other 20 pairs unchanged, 24 of 25 selections identical (concrete seed 4 lost a +0.33%
# feature). Models still run to early stopping, unlike a cap on rounds, which favoured
# features that only speed up learning (a cap of 100 picked two harmful ones on concrete).
TARGET_ROUNDS = 100
MAX_LEARNING_RATE = 0.3
MULTITHREAD_ROWS = 20_000
# The model a user trains (bench/protocol.py, the external benchmark): the final
# confirmation of finalists fits exactly this, so the lift it reports is for that model.
PROTOCOL_LEARNING_RATE = 0.05
PROTOCOL_ROUNDS = 2000
PROTOCOL_EARLY_STOPPING = 100
PROTOCOL_MODEL = (
    f"LightGBM {PROTOCOL_ROUNDS} trees, step {PROTOCOL_LEARNING_RATE:g}, 31 leaves, "
    f"early stopping {PROTOCOL_EARLY_STOPPING} on an inner split"
)


def metric_name(task: Task) -> str:
    return {"classification": "roc_auc", "regression": "rmse", "multiclass": "log_loss"}[task]


def n_classes_of(y: np.ndarray) -> int:
    """Classes of a multiclass target encoded 0..K-1 (`matrix.encode_target`)."""
    return int(np.max(y)) + 1


def _objective(task: Task, n_classes: int) -> dict[str, object]:
    if task == "multiclass":
        return {"objective": "multiclass", "num_class": n_classes}
    return {"objective": "binary" if task == "classification" else "regression"}


def step_for(rounds: float) -> float:
    """Boosting step for a job whose baseline stops after `rounds` rounds at LEARNING_RATE.

    LEARNING_RATE up to TARGET_ROUNDS rounds; beyond, proportionally larger (in steps of
    0.05, at most MAX_LEARNING_RATE), so the job's fits take about TARGET_ROUNDS rounds.
    """
    scaled = LEARNING_RATE * rounds / TARGET_ROUNDS
    return float(min(MAX_LEARNING_RATE, max(LEARNING_RATE, round(scaled * 20) / 20)))


def lgb_params(
    task: Task, seed: int, threads: int = 1, learning_rate: float = LEARNING_RATE, n_classes: int = 2
) -> dict[str, object]:
    """Fast yet close to the external protocol (defaults, 31 leaves) with a larger step."""
    return {
        **_objective(task, n_classes),
        "learning_rate": learning_rate,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "max_bin": 63,
        "feature_fraction": 1.0,
        "num_threads": threads,
        "deterministic": True,
        "seed": seed,
        "verbose": -1,
    }


def protocol_params(task: Task, seed: int, threads: int = 1, n_classes: int = 2) -> dict[str, object]:
    """LightGBM's defaults as the scikit-learn wrapper uses them, step 0.05, stopping on AUC/RMSE/log loss."""
    return {
        **_objective(task, n_classes),
        "metric": {"classification": "auc", "regression": "rmse", "multiclass": "multi_logloss"}[task],
        "learning_rate": PROTOCOL_LEARNING_RATE,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "num_threads": threads,
        "deterministic": True,
        "seed": seed,
        "verbose": -1,
    }


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank (as scipy.stats.rankdata)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    first = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group = np.cumsum(first) - 1
    counts = np.bincount(group)
    start = np.cumsum(counts) - counts
    ranks = np.empty(values.shape[0], dtype=np.float64)
    ranks[order] = (start + (counts + 1) / 2.0)[group]
    return ranks


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties."""
    pos = y > 0.5
    n_pos = int(pos.sum())
    n_neg = int(y.shape[0] - n_pos)
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = average_ranks(np.asarray(score, dtype=np.float64))
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def multiclass_losses(y: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Per-row negative log-likelihood of the true class under softmax(raw); raw is (rows, ..., classes)."""
    top = raw.max(axis=-1, keepdims=True)
    log_norm = (top + np.log(np.exp(raw - top).sum(axis=-1, keepdims=True)))[..., 0]
    index = y.astype(np.int64).reshape((-1,) + (1,) * (raw.ndim - 1))
    return np.asarray(log_norm - np.take_along_axis(raw, index, axis=-1)[..., 0])


def multiclass_log_loss(y: np.ndarray, raw: np.ndarray) -> float:
    """Mean multiclass log loss; raw is (rows, classes)."""
    return float(np.mean(multiclass_losses(y, raw)))


def metric_value(task: Task, y: np.ndarray, raw: np.ndarray) -> float:
    if task == "classification":
        return roc_auc(y, raw)
    if task == "multiclass":
        return multiclass_log_loss(y, raw)
    return float(np.sqrt(np.mean((y - raw) ** 2)))


def lift_of(task: Task, base: float, new: float) -> float:
    """Improvement in the metric's natural direction: positive means better."""
    return new - base if task == "classification" else base - new


@dataclass(frozen=True)
class FitResult:
    score: float
    raw_valid: np.ndarray
    importance: np.ndarray
    best_iteration: int


@dataclass(frozen=True)
class FitJob:
    """One model: rows of `x` split into train/valid, `categorical` column indices.

    With `stop_idx` the model is the external protocol's (`protocol_params`): it trains
    on `train_idx`, early-stops on `stop_idx` and is scored on `valid_idx`, rows that
    neither training nor stopping saw. Without, the fast screening model early-stops on
    `valid_idx` itself (cheap, and slightly optimistic: it only ranks and shortlists).
    """

    x: np.ndarray
    y: np.ndarray
    train_idx: np.ndarray
    valid_idx: np.ndarray
    categorical: tuple[int, ...]
    stop_idx: np.ndarray | None = None


def fit_and_score(
    job: FitJob, task: Task, seed: int, threads: int = 1, learning_rate: float = LEARNING_RATE
) -> FitResult:
    from processors.engine.lgbm import import_lightgbm

    lgb = import_lightgbm()

    threads = threads if job.train_idx.shape[0] >= MULTITHREAD_ROWS else 1
    n_classes = n_classes_of(job.y) if task == "multiclass" else 2
    cat: list[int] | Literal["auto"] = list(job.categorical) or "auto"
    train = lgb.Dataset(job.x[job.train_idx], job.y[job.train_idx], categorical_feature=cat, free_raw_data=False)
    if job.stop_idx is None:
        params, rounds, patience = lgb_params(task, seed, threads, learning_rate, n_classes), MAX_ROUNDS, EARLY_STOPPING
        stop_idx = job.valid_idx
    else:
        params, rounds = protocol_params(task, seed, threads, n_classes), PROTOCOL_ROUNDS
        patience = PROTOCOL_EARLY_STOPPING
        stop_idx = job.stop_idx
    valid = lgb.Dataset(job.x[stop_idx], job.y[stop_idx], reference=train)
    model = lgb.train(
        params,
        train,
        num_boost_round=rounds,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(patience, verbose=False)],
        # the default (False) round-trips the model through its text form after training:
        # a fifth of a small fit's time, for a booster that is used once and dropped
        keep_training_booster=True,
    )
    best = model.best_iteration or model.current_iteration()
    raw = np.asarray(model.predict(job.x[job.valid_idx], num_iteration=best, raw_score=True))
    y_valid = job.y[job.valid_idx]
    return FitResult(
        score=metric_value(task, y_valid, raw),
        raw_valid=raw,
        importance=np.asarray(model.feature_importance("gain", iteration=best), dtype=np.float64),
        best_iteration=int(best),
    )
