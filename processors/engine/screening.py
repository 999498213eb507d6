"""Stage 1: cheap screening of many candidates against the baseline's residuals.

For each screen split the baseline LightGBM's out-of-fold raw scores are the
starting point (like OpenFE's init_score). Each candidate is cut into quantile
bins on the split's training rows (categorical candidates: one bin per frequent
value), and a few regularised Newton steps fit one value per bin, i.e. a
one-feature histogram tree with up to 16 leaves boosted from the baseline. The
validation loss reduction, pooled over the screen splits, is the screen gain. It
is used to rank only: a one-feature fit adds estimation noise, so a useful
feature can still show a small negative gain on a strong baseline.
All candidates of a split are handled together with `np.bincount`, so hundreds
of candidates cost a fraction of one LightGBM fit.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

from processors.engine.folds import FoldPlan
from processors.engine.scoring import Task, multiclass_losses
from processors.engine.trials import Trials

NEWTON_STEPS = {"classification": 3, "regression": 1, "multiclass": 3}
PRIOR_ROWS = 20.0
# Multiclass screening holds (training rows x candidates x classes) raw scores; candidates
# are taken in chunks so that this stays near 32 MB.
MULTICLASS_CELLS = 4_000_000


def _n_bins(n_train: int) -> int:
    return int(np.clip(n_train // 100, 4, 16))


def _bin_numeric(values: np.ndarray, train_idx: np.ndarray, n_bins: int) -> np.ndarray:
    train = values[train_idx]
    train = train[np.isfinite(train)]
    bins = np.full(values.shape[0], n_bins, dtype=np.int64)  # last bin: missing
    if train.size == 0:
        return bins
    edges = np.unique(np.quantile(train, np.linspace(0, 1, n_bins + 1)[1:-1]))
    finite = np.isfinite(values)
    bins[finite] = np.searchsorted(edges, values[finite], side="right")
    return bins


def _bin_categorical(values: np.ndarray, train_idx: np.ndarray, n_bins: int) -> np.ndarray:
    train = values[train_idx]
    codes, counts = np.unique(train[np.isfinite(train)], return_counts=True)
    frequent = codes[np.argsort(-counts, kind="stable")[: n_bins - 1]]
    bins = np.full(values.shape[0], n_bins, dtype=np.int64)
    bins[np.isfinite(values)] = n_bins - 1  # rare values share a bin
    for b, code in enumerate(frequent):
        bins[values == code] = b
    return bins


def _softmax(raw: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (the classes)."""
    e = np.exp(raw - raw.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def _loss(task: Task, y: np.ndarray, raw: np.ndarray) -> np.ndarray:
    if task == "multiclass":
        return multiclass_losses(y, raw)
    if task == "classification":
        return np.asarray(np.logaddexp(0.0, raw) - y * raw)
    return np.asarray((y - raw) ** 2)


def _grad_hess(task: Task, y: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if task == "classification":
        p = 1.0 / (1.0 + np.exp(-raw))
        return p - y, np.maximum(p * (1.0 - p), 1e-6)
    return raw - y, np.ones_like(raw)


def _screen_split(
    task: Task,
    y: np.ndarray,
    init: np.ndarray,
    bins: np.ndarray,
    train_idx: np.ndarray,
    valid_idx: np.ndarray,
    n_bins: int,
) -> np.ndarray:
    """Validation loss (summed) per candidate after boosting one histogram tree each."""
    if task == "multiclass":
        return _screen_split_multiclass(y, init, bins, train_idx, valid_idx, n_bins)
    m = bins.shape[1]
    width = n_bins + 1
    offsets = np.arange(m, dtype=np.int64) * width
    flat_train = (bins[train_idx] + offsets).ravel()
    flat_valid = bins[valid_idx] + offsets
    y_tr = y[train_idx]
    raw_tr = np.repeat(init[train_idx][:, None], m, axis=1)
    leaf = np.zeros(m * width)
    prior = PRIOR_ROWS * float(np.mean(_grad_hess(task, y_tr, init[train_idx])[1]))
    for _ in range(NEWTON_STEPS[task]):
        g, h = _grad_hess(task, y_tr[:, None], raw_tr)
        grad = np.bincount(flat_train, weights=g.ravel(), minlength=m * width)
        hess = np.bincount(flat_train, weights=h.ravel(), minlength=m * width)
        step = -grad / (hess + prior)
        leaf += step
        raw_tr += step[flat_train].reshape(raw_tr.shape)
    raw_va = init[valid_idx][:, None] + leaf[flat_valid]
    return np.asarray(_loss(task, y[valid_idx][:, None], raw_va).sum(axis=0))


def _screen_split_multiclass(
    y: np.ndarray,
    init: np.ndarray,
    bins: np.ndarray,
    train_idx: np.ndarray,
    valid_idx: np.ndarray,
    n_bins: int,
) -> np.ndarray:
    """`_screen_split` for a softmax model: one value per bin and class, diagonal Newton steps."""
    n_classes = init.shape[1]
    m = bins.shape[1]
    width = n_bins + 1
    y_tr = y[train_idx].astype(np.int64)
    onehot = np.eye(n_classes)[y_tr][:, None, :]
    p0 = _softmax(init[train_idx])
    prior = PRIOR_ROWS * float(np.mean(p0 * (1.0 - p0)))
    chunk = max(1, MULTICLASS_CELLS // max(1, train_idx.shape[0] * n_classes))
    out = np.empty(m)
    for start in range(0, m, chunk):
        cols = np.arange(start, min(m, start + chunk))
        offsets = np.arange(cols.shape[0], dtype=np.int64) * width
        flat_train = bins[np.ix_(train_idx, cols)] + offsets
        flat = flat_train.ravel()
        raw_tr = np.repeat(init[train_idx][:, None, :], cols.shape[0], axis=1)
        leaf = np.zeros((cols.shape[0] * width, n_classes))
        for _ in range(NEWTON_STEPS["multiclass"]):
            p = _softmax(raw_tr)
            g, h = p - onehot, np.maximum(p * (1.0 - p), 1e-6)
            size = cols.shape[0] * width
            grad = np.stack([np.bincount(flat, weights=g[..., c].ravel(), minlength=size) for c in range(n_classes)], 1)
            hess = np.stack([np.bincount(flat, weights=h[..., c].ravel(), minlength=size) for c in range(n_classes)], 1)
            step = -grad / (hess + prior)
            leaf += step
            raw_tr += step[flat_train]
        raw_va = init[valid_idx][:, None, :] + leaf[bins[np.ix_(valid_idx, cols)] + offsets]
        out[cols] = multiclass_losses(y[valid_idx], raw_va).sum(axis=0)
    return out


def screen_candidates(
    plan: FoldPlan,
    task: Task,
    y: np.ndarray,
    oof_raw: np.ndarray,
    ids: Sequence[str],
    candidates: Mapping[str, np.ndarray],
    categorical: Collection[str] = (),
) -> np.ndarray:
    """Relative validation loss reduction per candidate (0.01 = 1% lower loss)."""
    screen = plan.split_indices("screen")
    if not ids:
        return np.zeros(0)
    base_loss = 0.0
    new_loss = np.zeros(len(ids))
    for s in screen:
        train_idx, valid_idx = plan.splits[s]
        n_bins = _n_bins(train_idx.shape[0])
        col = plan.fit_index_for_split(s)
        bins = np.empty((y.shape[0], len(ids)), dtype=np.int64)
        for j, cid in enumerate(ids):
            values = candidates[cid][:, col]
            binner = _bin_categorical if cid in categorical else _bin_numeric
            bins[:, j] = binner(values, train_idx, n_bins)
        new_loss += _screen_split(task, y, oof_raw, bins, train_idx, valid_idx, n_bins)
        base_loss += float(_loss(task, y[valid_idx], oof_raw[valid_idx]).sum())
    return (base_loss - new_loss) / max(base_loss, 1e-12)


def joint_importance(trials: Trials, baseline: tuple[str, ...], ids: Sequence[str]) -> np.ndarray:
    """Share of a joint model's split gain that each candidate earns, averaged over screen splits.

    One LightGBM per screen split sees the raw features, the selected ones and every
    candidate at once, so candidates compete with the raw columns and with each other:
    a ratio the trees would otherwise approximate with many splits earns gain, a copy of
    a raw column or pure noise earns little. This ranks interactions that a
    one-feature residual fit cannot see.
    """
    if not ids:
        return np.zeros(0)
    screen = trials.plan.split_indices("screen")
    features = (*baseline, *ids)
    trials.run([(features, s) for s in screen])
    first = trials.base.x.shape[1] + len(baseline)
    shares = np.zeros(len(ids))
    for s in screen:
        gain = trials.results[(features, s)].importance
        total = float(gain.sum())
        if total > 0:
            shares += gain[first:] / total
    return shares / len(screen)
