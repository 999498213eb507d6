"""What one evaluation round found, per candidate and overall."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Stage = Literal["screen", "confirm", "select"]


@dataclass(frozen=True)
class CandidateResult:
    """How far a candidate got and why it was or was not kept.

    `lift` is the mean paired metric difference over the confirm splits in the
    metric's natural direction (positive = better: AUC up, RMSE down), measured by
    full refits on splits other than the screening ones; None if not confirmed.
    `p_value` is the raw one-sided corrected t-test p; `q_value` its
    Benjamini-Hochberg adjustment over all confirmed candidates of the round.
    """

    id: str
    stage_reached: Stage
    screen_gain: float
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    q_value: float | None
    importance_rank: int | None
    selected: bool
    reason: str


@dataclass(frozen=True)
class RoundReport:
    """Scores are means over the confirm splits; `guard_lift` is on unseen guard rows."""

    metric: str
    baseline_score: float
    final_score: float
    candidates: tuple[CandidateResult, ...]
    newly_selected: tuple[str, ...]
    baseline_fold_scores: tuple[float, ...]
    final_fold_scores: tuple[float, ...]
    guard_lift: float | None
    n_screened: int
    n_confirmed: int
    seconds: float
    notes: tuple[str, ...] = ()

    def result(self, candidate_id: str) -> CandidateResult:
        for c in self.candidates:
            if c.id == candidate_id:
                return c
        raise KeyError(candidate_id)
