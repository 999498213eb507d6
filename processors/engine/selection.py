"""Stage 3: the shortlist, greedy forward selection of finalists on the confirm splits.

It picks at most a few finalists, each still helping next to those before it on the
fast internal models; it selects nothing. The final confirmation (`evaluation`) decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from processors.engine.statistics import PairedTest, corrected_paired_test
from processors.engine.trials import FeatureSet, Progress, Trials

REDUNDANT_CORR = 0.98
# Next to the finalists before it a candidate must still add a positive lift; the
# evidence bar is lower than for its own significance test (p <= 0.05 alone), since
# gains of correlated features overlap and ten splits cannot resolve small increments.
CONDITIONAL_P = 0.25


def standardised(values: np.ndarray) -> np.ndarray:
    """Column-standardise with missing values at the column mean (for correlations)."""
    v = np.array(values, dtype=np.float64, ndmin=2)
    if v.shape[0] == 1 and values.ndim == 1:
        v = v.T
    v[~np.isfinite(v)] = np.nan
    mean = np.nanmean(np.where(np.isnan(v).all(axis=0), 0.0, v), axis=0)
    v = np.where(np.isnan(v), mean, v) - mean
    std = v.std(axis=0)
    return np.asarray(np.divide(v, std, out=np.zeros_like(v), where=std > 0))


def most_correlated(vector: np.ndarray, others: np.ndarray, names: Sequence[str]) -> tuple[str, float]:
    """Name and |r| of the column of `others` (standardised) most correlated with `vector`."""
    if others.shape[1] == 0:
        return "", 0.0
    z = standardised(vector)[:, 0]
    r = np.abs(z @ others) / max(1, z.shape[0])
    j = int(np.argmax(r))
    return names[j], float(r[j])


@dataclass
class Selection:
    chosen: list[str] = field(default_factory=list)
    tests: dict[str, PairedTest] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def greedy_select(
    trials: Trials,
    baseline: FeatureSet,
    ordered: Sequence[str],
    first_tests: Mapping[str, PairedTest],
    full_values: Mapping[str, np.ndarray],
    *,
    alpha: float,
    max_new: int,
    valid_fraction: float,
    progress: Progress | None = None,
) -> Selection:
    """Add candidates in order while each still helps next to those already added.

    `progress("shortlist", i, n)` after each of the n candidates (each after the first
    finalist costs a model per confirm split).
    """
    confirm = trials.plan.split_indices("confirm")
    sel = Selection()
    current = baseline
    names: list[str] = []
    cols: list[np.ndarray] = []
    for i, cid in enumerate(ordered, start=1):
        if progress and i > 1:
            progress("shortlist", i - 1, len(ordered))
        if len(sel.chosen) >= max_new:
            sel.notes[cid] = f"not a finalist: the cap of {max_new} finalists was reached"
            continue
        if trials.out_of_time():
            sel.notes[cid] = "deadline reached before it could be tested next to the finalists"
            continue
        if cols:
            other, r = most_correlated(full_values[cid], np.column_stack(cols), names)
            if r > REDUNDANT_CORR:
                sel.notes[cid] = f"near-duplicate of finalist '{other}' (|r|={r:.3f})"
                continue
        if current == baseline:
            test = first_tests[cid]
        else:
            test = corrected_paired_test(trials.diffs((*current, cid), current, confirm), valid_fraction)
        bar = alpha if current == baseline else max(alpha, CONDITIONAL_P)
        if test.mean > 0 and test.p_value <= bar:
            sel.chosen.append(cid)
            sel.tests[cid] = test
            current = (*current, cid)
            names.append(cid)
            cols.append(standardised(full_values[cid])[:, 0])
        else:
            sel.notes[cid] = f"adds only {test.mean:+.4g} next to {len(sel.chosen)} finalist(s) (p={test.p_value:.3f})"
    if progress and ordered:
        progress("shortlist", len(ordered), len(ordered))
    return sel
