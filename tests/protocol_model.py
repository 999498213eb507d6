"""The model a user trains (bench/protocol.py's settings), for tests that check a claim on fresh rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from processors.engine.scoring import Task


def fit_protocol_model(x: np.ndarray, y: np.ndarray, task: Task, seed: int, n_classes: int = 2) -> Any:
    """LightGBM with the protocol's settings on `x`, early-stopped on a random fifth of its rows."""
    from processors.engine.lgbm import import_lightgbm
    from processors.engine.scoring import PROTOCOL_EARLY_STOPPING, PROTOCOL_ROUNDS, protocol_params

    lgb = import_lightgbm()
    order = np.random.default_rng(seed).permutation(x.shape[0])
    stop, fit = order[: len(order) // 5], order[len(order) // 5 :]
    data = lgb.Dataset(x[fit], y[fit])
    return lgb.train(
        protocol_params(task, seed, n_classes=n_classes),
        data,
        PROTOCOL_ROUNDS,
        valid_sets=[lgb.Dataset(x[stop], y[stop], reference=data)],
        callbacks=[lgb.early_stopping(PROTOCOL_EARLY_STOPPING, verbose=False)],
    )


Loss = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], float]


def realized_lift(
    loss: Loss, x: np.ndarray, y: np.ndarray, fresh_x: np.ndarray, fresh_y: np.ndarray,
    column: np.ndarray, fresh_column: np.ndarray, seeds: int = 3,
) -> float:  # fmt: skip
    """What adding `column` gains on fresh rows: loss(train x, y -> fresh rows) without minus with it,
    `loss(train_x, train_y, test_x, test_y, seed)` lower is better, averaged over seeds."""
    with_column = np.column_stack([x, column]), np.column_stack([fresh_x, fresh_column])
    lifts = [
        loss(x, y, fresh_x, fresh_y, s) - loss(with_column[0], y, with_column[1], fresh_y, s) for s in range(seeds)
    ]
    return float(np.mean(lifts))
