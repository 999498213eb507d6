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

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class PairedTest:
    """Mean paired difference (positive = better), two-sided 95% CI and p-value.

    `p_greater` is the one-sided p of H1 "mean > 0" (does the feature help?).
    """

    mean: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    p_greater: float = 1.0


def corrected_paired_test(diffs: Sequence[float] | np.ndarray, valid_fraction: float) -> PairedTest:
    """Two-sided paired t-test of mean(diffs) != 0, optionally with the Nadeau-Bengio correction.

    `valid_fraction` is n_valid / n_rows of one split (1/K for K-fold); 0 gives the plain test.
    """
    d = np.asarray(diffs, dtype=np.float64)
    n = int(d.shape[0])
    mean = float(d.mean()) if n else 0.0
    if n < 2:
        return PairedTest(mean, -np.inf, np.inf, 0.5 if n else 1.0, n, 0.5 if n else 1.0)
    ratio = valid_fraction / max(1e-9, 1.0 - valid_fraction)
    var = float(d.var(ddof=1))
    se = float(np.sqrt(var * (1.0 / n + ratio)))
    if se <= 1e-15:
        p = 0.0 if mean != 0 else 1.0
        return PairedTest(mean, mean, mean, p, n, 0.0 if mean > 0 else 1.0)
    t = mean / se
    df = n - 1
    half = t_critical(df) * se
    # two-sided, so that p < 0.05 exactly when the reported 95% CI excludes zero
    p = t_two_sided_p(t, df)
    return PairedTest(mean, mean - half, mean + half, p, n, p / 2 if t > 0 else 1.0 - p / 2)


# Student's t without scipy: its import (0.2 s) was a measurable share of a small job.
def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom."""
    return _betainc(df / 2.0, 0.5, df / (df + t * t))


@lru_cache(maxsize=256)
def t_critical(df: int, alpha: float = 0.05) -> float:
    """The t with two-sided p = alpha (1.96 for large df), by bisection on `t_two_sided_p`."""
    lo, hi = 0.0, 2.0
    while t_two_sided_p(hi, df) > alpha:
        hi *= 2.0
    for _ in range(80):
        mid = (lo + hi) / 2.0
        if t_two_sided_p(mid, df) > alpha:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b), by its continued fraction (Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


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
