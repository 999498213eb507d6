"""One-line explanations a user can read, built from a candidate's outcome."""

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
    test: PairedTest | None = None
    q_value: float | None = None
    conditional: PairedTest | None = None
    importance_rank: int | None = None
    selected: bool = False
    n_before: int = 0
    note: str = ""


def _lift(metric: str, value: float, base: float) -> str:
    if metric == "rmse":
        pct = f" ({abs(value) / base:.1%})" if base > 0 else ""
        return f"RMSE {abs(value):.4g}{pct} {'lower' if value >= 0 else 'higher'}"
    return f"{value:+.4f} {metric.upper().replace('ROC_', '')}"


def _test(metric: str, t: PairedTest, base: float) -> str:
    if metric == "rmse":
        ci = f"lift 95% CI {t.ci_low:+.4g}..{t.ci_high:+.4g}"
    else:
        ci = f"95% CI {t.ci_low:+.4f}..{t.ci_high:+.4f}"
    return f"{_lift(metric, t.mean, base)} ({ci}, p={t.p_value:.3g})"


def describe(
    o: Outcome,
    metric: str,
    base: float,
    guard_lift: float | None,
    confirm_top: int,
    n_tested: int,
) -> str:
    if o.selected and o.test is not None and o.conditional is not None:
        text = f"selected: {_test(metric, o.test, base)}, q={o.q_value:.3g} over {n_tested} tested"
        if o.n_before:
            text += (
                f"; still helps next to {o.n_before} selected feature(s) "
                f"({o.conditional.mean:+.4g}, p={o.conditional.p_value:.3g})"
            )
        if guard_lift is not None:
            text += f"; the selected set holds on unseen guard rows ({guard_lift:+.4g})"
        return text
    if o.test is not None:
        head = f"not selected: {_test(metric, o.test, base)}"
        if o.note:
            return f"{head}; {o.note}"
        if o.test.mean <= 0:
            return f"{head}: no gain over the baseline on full refits"
        return f"{head}: not reliable enough (needs p<=0.05; BH q={o.q_value:.3g} over {n_tested} tested)"
    if o.note:
        return o.note if o.screen_rank is None else f"{o.note} (screen gain {o.screen_gain:.2%})"
    if o.screen_rank is None:
        return "not screened"
    return (
        f"screened out: {o.importance_share:.2%} of a joint model's gain and {o.screen_gain:+.2%} residual loss "
        "reduction on screening folds, "
        f"rank {o.screen_rank}, below the top {confirm_top}"
    )
