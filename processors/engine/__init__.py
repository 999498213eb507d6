"""Feature evaluation engine: which candidate features really help a LightGBM.

API
---
``plan_folds(y, task, seed) -> FoldPlan``
    Search/guard row split, the screen (1x5-fold) and confirm (4x5-fold) splits of
    the search rows, and 20 final splits (2 x 10-fold cross-validation of all rows,
    each with inner early-stopping rows). ``FoldPlan.fits`` are the reference masks the execution
    stage computes each candidate for (one per split, the last is all rows);
    ``fit_index_for_split(i)`` gives the column for split i.

``prepare_base(df, target, task, positive_class, exclude) -> BaseMatrix``
    Raw features encoded for LightGBM (numeric float64, categorical integer codes,
    date(time)s as epoch seconds plus parts); ``BaseMatrix.encode`` re-applies the
    encodings to new rows. ``BaseMatrix.task`` is the engine's task: ``classification``
    (binary, ROC AUC), ``regression`` (RMSE) or ``multiclass`` (a classification target
    with 3+ classes and no positive class: softmax LightGBM, multiclass log loss, y the
    index of the class in ``BaseMatrix.classes``). Pass it on as ``task``.

``evaluate_round(base, plan, candidates, selected, *, task, seed, deadline=None,
progress=None, categorical=(), confirm_top=10, max_new=10, partial=(), complete=None) -> RoundReport``
    candidates/selected: id -> float64 array (n_rows, n_fits) (1-D is accepted for
    stateless features). Stages: binned-Newton screening from the baseline's
    out-of-fold scores plus a joint LightGBM's importance shares -> fast LightGBM
    refits on 20 confirm splits for the top ``confirm_top`` (successive halving,
    paired t-test) -> a shortlist of at most 3 finalists (greedy: each must still help
    next to those before it) -> the final confirmation, which decides: each finalist
    against the baseline on the 20 final folds, fitted with the external protocol's
    model (2000 trees, step 0.05, 31 leaves, early stopping 100 on an inner split),
    corrected repeated k-fold t-test (Nadeau-Bengio, Bouckaert-Frank), Holm over the
    finalists. A finalist's
    reported lift, CI and p are those of the final confirmation. ``partial`` ids hold
    only ``plan.eager_fits`` columns; ``complete(ids)`` supplies the rest for those
    that reach confirmation.

LightGBM fits run on worker processes (``pool``, ``AFEP_ENGINE_WORKERS``).

``baseline_score(base, plan, *, task, seed) -> float``
    Raw-feature score (mean over confirm splits).

``fit_baseline(base, plan, *, task, seed, fit_cache, learning_rate) -> int``
    Fit the raw features on every screen and confirm split into ``fit_cache`` (the dict later passed to
    ``evaluate_round``), ahead of the round that needs them.

``calibrate_step(base, plan, *, task, seed, fit_cache) -> Step``
    The job's boosting step: 0.1, or larger when the raw-feature baseline needs more
    than ``scoring.TARGET_ROUNDS`` rounds at 0.1 (smooth, low-noise targets), so each
    fit costs about that many rounds. Every fit of a job uses it (``learning_rate=``
    of ``fit_baseline`` and ``evaluate_round``; one fit cache per step).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from processors.engine.evaluation import (
        CandidateShapeError,
        Step,
        baseline_score,
        calibrate_step,
        evaluate_round,
        fit_baseline,
    )
    from processors.engine.folds import FoldPlan, plan_folds
    from processors.engine.matrix import BaseMatrix, EngineInputError, prepare_base
    from processors.engine.report import CandidateResult, RoundReport

# Names are imported on first use, so a fit worker can import `processors.engine.scoring`
# without polars and the evaluation code.
_HOME = {
    "BaseMatrix": "matrix",
    "CandidateResult": "report",
    "CandidateShapeError": "evaluation",
    "EngineInputError": "matrix",
    "FoldPlan": "folds",
    "RoundReport": "report",
    "Step": "evaluation",
    "baseline_score": "evaluation",
    "calibrate_step": "evaluation",
    "evaluate_round": "evaluation",
    "fit_baseline": "evaluation",
    "plan_folds": "folds",
    "prepare_base": "matrix",
}

__all__ = [
    "BaseMatrix",
    "CandidateResult",
    "CandidateShapeError",
    "EngineInputError",
    "FoldPlan",
    "RoundReport",
    "Step",
    "baseline_score",
    "calibrate_step",
    "evaluate_round",
    "fit_baseline",
    "plan_folds",
    "prepare_base",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'processors.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"processors.engine.{_HOME[name]}"), name)
