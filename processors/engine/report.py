"""What one evaluation round found, per candidate and overall."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Stage = Literal["screen", "confirm", "select"]


@dataclass(frozen=True)
class CandidateResult:
    """How far a candidate got and why it was or was not kept.

    `lift` is the mean paired metric difference in the metric's natural direction
    (positive = better: AUC up, RMSE down), with its two-sided 95% CI and a p-value. `tested_by`
    says which test: "final" for finalists (the model a user trains, on the final
    folds, corrected repeated k-fold t-test: the decision), "shortlist" for candidates that
    only reached the fast internal cross-validation (optimistic, never decides a
    selection), None if not tested. For a finalist `p_value` is the one-sided p of
    "the feature helps" (the decision's statistic) and `p_adjusted` its Holm adjustment
    over the round's finalists; for the shortlist `p_value` is two-sided.
    """

    id: str
    stage_reached: Stage
    screen_gain: float
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_adjusted: float | None
    importance_rank: int | None
    selected: bool
    reason: str
    tested_by: Literal["final", "shortlist"] | None = None


@dataclass(frozen=True)
class RoundReport:
    """Scores are means over the confirm splits (fast internal models).

    `finalists` were confirmed on the final splits with the model a user trains;
    `verdict` says in plain words what the round found ("no feature helps" included).
    """

    metric: str
    baseline_score: float
    final_score: float
    candidates: tuple[CandidateResult, ...]
    newly_selected: tuple[str, ...]
    baseline_fold_scores: tuple[float, ...]
    final_fold_scores: tuple[float, ...]
    finalists: tuple[str, ...]
    verdict: str
    n_screened: int
    n_confirmed: int
    seconds: float
    notes: tuple[str, ...] = ()

    def result(self, candidate_id: str) -> CandidateResult:
        for c in self.candidates:
            if c.id == candidate_id:
                return c
        raise KeyError(candidate_id)
