"""One-line explanations a user can read, built from a candidate's outcome.

Every sentence with a number names the test behind it: the *final confirmation*
(the decision: a corrected repeated cross-validation t-test over the job's final folds, fitted with
the model a user trains) or the *shortlist* (fast internal cross-validation, which
only picks the finalists and is optimistic).
"""

from __future__ import annotations

from dataclasses import dataclass

from processors.engine.report import Stage
from processors.engine.statistics import PairedTest


@dataclass
class Outcome:
    """Mutable scratch record of a candidate during one round."""

    stage: Stage = "screen"
    screen_gain: float = 0.0
    importance_share: float = 0.0
    screen_rank: int | None = None
    test: PairedTest | None = None  # shortlist: fast internal cross-validation
    final: PairedTest | None = None  # final confirmation (finalists only): the decision
    holm: float | None = None  # Holm-adjusted p of `final` over the round's finalists
    selected: bool = False
    importance_rank: int | None = None
    note: str = ""


@dataclass(frozen=True)
class Tests:
    """How this round tested, for the reason texts."""

    final_test: str  # "... over {n} folds ...": n is filled in with the folds a finalist got
    n_final_splits: int
    shortlist_test: str
    n_finalists: int
    alpha: float  # the shortlist's level
    final_alpha: float  # the final confirmation's level (Holm-adjusted, one-sided)
    confirm_top: int


LOWER_IS_BETTER = {"rmse": "RMSE", "log_loss": "log loss"}


def _lift(metric: str, value: float, base: float) -> str:
    if metric in LOWER_IS_BETTER:
        pct = f" ({abs(value) / base:.1%})" if base > 0 else ""
        return f"{LOWER_IS_BETTER[metric]} {abs(value):.4g}{pct} {'lower' if value >= 0 else 'higher'}"
    return f"{value:+.4f} {metric.upper().replace('ROC_', '')}"


def _numbers(metric: str, t: PairedTest, base: float, one_sided: bool = False) -> str:
    if metric in LOWER_IS_BETTER:
        ci = f"lift 95% CI {t.ci_low:+.4g}..{t.ci_high:+.4g}"
    else:
        ci = f"95% CI {t.ci_low:+.4f}..{t.ci_high:+.4f}"
    p = f"one-sided p={t.p_greater:.3g}" if one_sided else f"p={t.p_value:.3g}"
    return f"{_lift(metric, t.mean, base)} ({ci}, {p}"


def describe(o: Outcome, metric: str, base: float, tests: Tests) -> str:
    if o.final is not None:
        holm = f", Holm-adjusted p={o.holm:.3g} over {tests.n_finalists} finalist(s))" if o.holm is not None else ")"
        numbers = _numbers(metric, o.final, base, one_sided=True) + holm
        test = tests.final_test.format(n=o.final.n)
        if o.selected:
            return f"selected: {numbers} by {test}, at one-sided level {tests.final_alpha:g}"
        why = o.note or (
            "no gain for that model"
            if o.final.mean <= 0
            else f"not significant after Holm's correction (needs Holm-adjusted one-sided p<={tests.final_alpha:g})"
        )
        if o.final.n < tests.n_final_splits:
            why = f"no gain for that model over the first {o.final.n} folds, so it was not fitted on the others"
        return f"not selected: {numbers} by {test}: {why}"
    if o.test is not None:
        head = f"not selected: shortlist {_numbers(metric, o.test, base)}) by {tests.shortlist_test}"
        if o.note:
            return f"{head}; {o.note}"
        if o.test.mean <= 0:
            return f"{head}: no gain over the baseline"
        return f"{head}: not a finalist (needs p<={tests.alpha:g} there)"
    if o.note:
        return o.note if o.screen_rank is None else f"{o.note} (screen gain {o.screen_gain:.2%})"
    if o.screen_rank is None:
        return "not screened"
    return (
        f"screened out: {o.importance_share:.2%} of a joint model's gain and {o.screen_gain:+.2%} residual loss "
        "reduction on screening folds, "
        f"rank {o.screen_rank}, below the top {tests.confirm_top}"
    )
