"""Paired tests over resampling splits and multiple-testing corrections.

Why a corrected t-test and not a plain t-test or Wilcoxon: the per-split
differences of repeated K-fold are positively correlated (training sets overlap
by ~75%), so a plain paired t-test over J splits is badly anti-conservative, and
Wilcoxon has the same independence assumption (and with J=10 cannot go below
p~0.001 anyway). The Nadeau-Bengio corrected resampled t-test replaces the
variance factor 1/J by 1/J + n_valid/n_train, which keeps the false-positive rate
near nominal for repeated K-fold (Bouckaert & Frank 2004).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import stdtr, stdtrit


@dataclass(frozen=True)
class PairedTest:
    """Mean paired difference (positive = better), 95% CI and one-sided p-value."""

    mean: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int


def corrected_paired_test(diffs: Sequence[float] | np.ndarray, valid_fraction: float) -> PairedTest:
    """Two-sided paired t-test of mean(diffs) != 0, optionally with the Nadeau-Bengio correction.

    `valid_fraction` is n_valid / n_rows of one split (1/K for K-fold); 0 gives the plain test.
    """
    d = np.asarray(diffs, dtype=np.float64)
    n = int(d.shape[0])
    mean = float(d.mean()) if n else 0.0
    if n < 2:
        return PairedTest(mean, -np.inf, np.inf, 0.5 if n else 1.0, n)
    ratio = valid_fraction / max(1e-9, 1.0 - valid_fraction)
    var = float(d.var(ddof=1))
    se = float(np.sqrt(var * (1.0 / n + ratio)))
    if se <= 1e-15:
        p = 0.0 if mean != 0 else 1.0
        return PairedTest(mean, mean, mean, p, n)
    t = mean / se
    df = n - 1
    half = float(stdtrit(df, 0.975)) * se
    # two-sided, so that p < 0.05 exactly when the reported 95% CI excludes zero
    return PairedTest(mean, mean - half, mean + half, float(2 * stdtr(df, -abs(t))), n)


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """BH-adjusted p-values (q-values), same order as the input."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.shape[0]
    if m == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(adjusted, 0.0, 1.0)
    return out


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.shape[0]
    if m == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * (m - np.arange(m))
    adjusted = np.maximum.accumulate(scaled)
    out = np.empty(m)
    out[order] = np.clip(adjusted, 0.0, 1.0)
    return out
