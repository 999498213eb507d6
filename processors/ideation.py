"""Propose candidate features: knowledge-base formulas, typed operator search, feedback.

`propose` is pure and deterministic for a seed. Round 1 spends the budget on the
knowledge-base formulas found by research, then on the best operator-search
candidates (ratios, differences, group statistics … ordered by a cheap prior from
the profile, with a diversity penalty so one strong column does not take the whole
budget). Later rounds exploit feedback: they recombine the columns and operators of
features that helped and down-weight columns whose features did not.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from domain.spec import FeatureSpec
from processors.operators import (
    Candidate,
    feature_name,
    group_candidates,
    group_columns,
    numeric_columns,
    pair_candidates,
    single_candidates,
    spec_key,
    total_candidates,
)
from processors.profiling import TableProfile
from processors.research import Research

Proposer = Literal["knowledge_base", "operator_search", "feedback", "llm", "web_research"]
REUSE_DECAY = 0.85
SIGNIFICANT = 0.05


@dataclass(frozen=True)
class Feedback:
    spec: FeatureSpec
    lift: float | None  # None: never confirmed (screened out, failed or not evaluated)
    p_value: float | None
    selected: bool

    @property
    def helped(self) -> bool:
        if self.selected:
            return True
        return self.lift is not None and self.p_value is not None and self.lift > 0 and self.p_value < SIGNIFICANT


@dataclass(frozen=True)
class Proposal:
    name: str
    description: str
    rationale: str
    spec: FeatureSpec
    source_columns: tuple[str, ...]
    expected_value: float
    proposer: Proposer
    domain_sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "spec": self.spec.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proposal:
        return cls(
            **{
                **data,
                "spec": FeatureSpec.from_dict(data["spec"]),
                "source_columns": tuple(data["source_columns"]),
                "domain_sources": tuple(data["domain_sources"]),
            }
        )


def propose(
    profile: TableProfile,
    research: Research,
    *,
    round: int,
    seen: set[str],
    feedback: Sequence[Feedback],
    budget: int,
    seed: int,
) -> list[Proposal]:
    """Up to `budget` new proposals, best first; nothing in `seen` (names or spec keys)."""
    if budget <= 0:
        return []
    rng = random.Random(seed * 1_000_003 + round)
    usable = {c.name for c in profile.features}
    done = set(seen) | {spec_key(f.spec) for f in feedback} | {feature_name(f.spec) for f in feedback}
    pool: list[Proposal] = []
    units = {f.column: f.unit for f in research.findings if f.unit}
    if round >= 2 and feedback:
        pool += _exploit(profile, feedback, usable, units)
    pool += _knowledge(profile, research)
    weights = _column_weights(feedback) if feedback else {}
    search = [
        *pair_candidates(profile, units),
        *total_candidates(profile, units),
        *group_candidates(profile, units),
        *single_candidates(profile),
    ]
    for cand in search:
        adjust = min((weights.get(c, 1.0) for c in cand.spec.columns), default=1.0)
        prior = min(0.95, cand.prior * adjust + rng.uniform(0.0, 0.01))
        pool.append(_proposal(cand, prior, "operator_search"))
    return _select(pool, usable, done, budget)


def _proposal(cand: Candidate, prior: float, proposer: Proposer, sources: tuple[str, ...] = ()) -> Proposal:
    return Proposal(
        name=feature_name(cand.spec),
        description=cand.description,
        rationale=cand.rationale,
        spec=cand.spec,
        source_columns=tuple(dict.fromkeys(cand.spec.columns)),
        expected_value=round(prior, 4),
        proposer=proposer,
        domain_sources=sources,
    )


def _knowledge(profile: TableProfile, research: Research) -> list[Proposal]:
    out = []
    for kf in research.features:
        strength = max((profile.column(c).target_score for c in kf.spec.columns), default=0.0)
        prior = min(0.97, 0.75 * kf.prior + 0.25 * strength + 0.1)
        cand = Candidate(kf.spec, prior, f"{kf.name.replace('_', ' ')}: {kf.description}", kf.rationale)
        out.append(_proposal(cand, prior, "knowledge_base", (kf.source,)))
    return out


def _select(pool: Iterable[Proposal], usable: set[str], done: set[str], budget: int) -> list[Proposal]:
    """Greedy pick by prior with a diversity penalty; knowledge-base and feedback first."""
    rank = {"feedback": 0, "knowledge_base": 1, "operator_search": 2}
    remaining: dict[str, Proposal] = {}
    for p in pool:
        key = spec_key(p.spec)
        if key in done or p.name in done or not set(p.spec.columns) <= usable:
            continue
        old = remaining.get(key)
        if old is None or (rank[p.proposer], -p.expected_value) < (
            rank[old.proposer],
            -old.expected_value,
        ):  # better-founded origin, then value
            remaining[key] = p
    chosen: list[Proposal] = []
    names: set[str] = set()
    uses: Counter[str] = Counter()
    while remaining and len(chosen) < budget:

        def adjusted(p: Proposal) -> tuple[int, float, str]:
            decay = REUSE_DECAY ** max((uses[c] for c in p.spec.columns), default=0)
            value = p.expected_value if p.proposer == "knowledge_base" else p.expected_value * decay
            return (rank[p.proposer], -value, p.name)

        key = min(remaining, key=lambda k: adjusted(remaining[k]))
        best = remaining.pop(key)
        if best.name in names:
            continue
        names.add(best.name)
        uses.update(set(best.spec.columns))
        chosen.append(best)
    return chosen


def _column_weights(feedback: Sequence[Feedback]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for f in feedback:
        for c in f.spec.columns:
            factor = 1.25 if f.helped else 0.8
            weights[c] = min(1.6, max(0.5, weights.get(c, 1.0) * factor))
    return weights


def _expression(spec: FeatureSpec) -> str | None:
    """Arithmetic form over x0..xn of a stateless spec, for recombination."""
    n = len(spec.columns)
    if spec.op == "ratio":
        return "x0 / x1"
    if spec.op == "diff":
        return "x0 - x1"
    if spec.op in ("sum", "product"):
        return (" + " if spec.op == "sum" else " * ").join(f"x{i}" for i in range(n))
    if spec.op == "formula":
        return str(spec.param("expr"))
    return None


def _combine(a: FeatureSpec, b_expr: str, b_cols: tuple[str, ...], joiner: str) -> FeatureSpec | None:
    a_expr = _expression(a)
    if a_expr is None:
        return None
    cols = list(a.columns)
    mapping = {}
    for i, c in enumerate(b_cols):
        if c not in cols:
            cols.append(c)
        mapping[i] = cols.index(c)
    shifted = re.sub(r"x(\d+)", lambda m: f"y{mapping[int(m.group(1))]}", b_expr).replace("y", "x")
    expr = f"({a_expr}) {joiner} ({shifted})"
    label = f"{feature_name(a)}_{'over' if joiner == '/' else 'times'}_{'_'.join(b_cols)}"
    return FeatureSpec("formula", tuple(cols), (("expr", expr), ("label", label[:80])))


def _exploit(
    profile: TableProfile, feedback: Sequence[Feedback], usable: set[str], units: dict[str, str]
) -> list[Proposal]:
    helped = sorted((f for f in feedback if f.helped), key=lambda f: (-(f.lift or 0.0), spec_key(f.spec)))[:5]
    if not helped:
        return []
    top_lift = max((f.lift or 0.0) for f in helped) or 1.0
    strong = numeric_columns(profile, units)[:6]
    groups = [c.name for c in group_columns(profile, units)[:3]]
    out: list[Candidate] = []
    for f in helped:
        base = 0.55 + 0.35 * max(0.0, min(1.0, (f.lift or 0.0) / top_lift))
        nums = [
            c for c in f.spec.columns if c in usable and units.get(c) != "code" and profile.column(c).kind == "numeric"
        ]
        name = feature_name(f.spec)
        for s in strong:
            if s.name in f.spec.columns:
                continue
            for joiner in ("/", "*"):
                spec = _combine(f.spec, "x0", (s.name,), joiner)
                if spec:
                    out.append(
                        Candidate(
                            spec,
                            base - 0.1 + 0.2 * s.target_score,
                            f"{name} {'divided by' if joiner == '/' else 'times'} {s.name}",
                            f"{name} helped; rescaling it by the strong column {s.name}.",
                        )
                    )
            for src in nums:
                if s.positive:
                    out.append(
                        Candidate(
                            FeatureSpec("ratio", (src, s.name)),
                            base - 0.2 + 0.2 * s.target_score,
                            f"{src} divided by {s.name}",
                            f"{src} is a source of the helpful {name}; pairs it with {s.name}.",
                        )
                    )
        for other in helped:
            if other is f or _expression(other.spec) is None:
                continue
            spec = _combine(f.spec, str(_expression(other.spec)), other.spec.columns, "*")
            if spec:
                out.append(
                    Candidate(
                        spec,
                        base - 0.05,
                        f"{name} times {feature_name(other.spec)}",
                        "Interaction of two features that both helped.",
                    )
                )
        by = [f.spec.columns[-1]] if f.spec.op.startswith("group_") else groups
        values = nums[:1] if f.spec.op.startswith("group_") else nums
        for g in by:
            pool = values if values else [c.name for c in strong[:3]]
            for v in pool + [c.name for c in strong[:3] if c.name not in pool]:
                if v == g:
                    continue
                for op in ("group_diff", "group_ratio", "group_zscore"):
                    out.append(
                        Candidate(
                            FeatureSpec(op, (v, g)),
                            base - 0.15,
                            f"{v} relative to its {g} group ({op.removeprefix('group_')})",
                            f"{g} or {v} took part in the helpful {name}; peer-relative versions often help further.",
                        )
                    )
    return [_proposal(c, min(0.95, c.prior), "feedback") for c in out]
