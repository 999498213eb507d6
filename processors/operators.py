"""Typed operator search: which operators apply to which columns, and how good a guess each is.

Every candidate is a FeatureSpec plus a cheap prior in [0, 1] computed from the
profile only (single-column target scores, kinds, skew, cardinality, units), so a
budget can be spent on the most promising specs first.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from domain.spec import FeatureSpec
from processors.profiling import ColumnProfile, TableProfile

MAX_NAME = 60
PAIR_LIMIT = 12  # numeric columns considered for pairwise ops
GROUP_MAX_LEVELS = 60


_PLAIN_NAME = re.compile(r"[A-Za-z0-9 _.\-]+")


def sanitize(name: str) -> str:
    """'mean radius' -> 'mean_radius', 'Gr_Liv_Area' -> 'gr_liv_area' (snake_case, no dunders).

    A name with other characters (quotes, brackets, code, other scripts) also gets a short
    hash of itself, so two such columns never share a slug (three single quotes and three
    double quotes would both be empty; `); import os; (` and `')); import os; (('` both
    `import_os`), and no candidate is dropped as a duplicate of another column's.
    """
    out = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
    if _PLAIN_NAME.fullmatch(name) and out:
        return out
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"{out[:40].rstrip('_')}_{digest}" if out else f"col_{digest}"


def spec_key(spec: FeatureSpec) -> str:
    """Canonical text of a spec (labels excluded): equal keys compute equal values."""
    params = {k: v for k, v in spec.params if k != "label"}
    return json.dumps({"op": spec.op, "columns": list(spec.columns), "params": params}, sort_keys=True, default=str)


def feature_name(spec: FeatureSpec) -> str:
    """Deterministic snake_case name of a spec: 'ratio_debt_income', 'formula' uses its label."""
    label = spec.param("label")
    extras = [f"{k}_{v}" for k, v in spec.params if k not in ("label", "expr")]
    if label:
        base = sanitize(str(label))
    else:
        base = "_".join([spec.op, *(sanitize(c) for c in spec.columns), *map(sanitize, extras)])
    if len(base) <= MAX_NAME and not (spec.op == "formula" and not label):
        return base
    digest = hashlib.sha256(spec_key(spec).encode()).hexdigest()[:8]
    return f"{base[: MAX_NAME - 9].rstrip('_')}_{digest}"


@dataclass(frozen=True)
class Candidate:
    spec: FeatureSpec
    prior: float
    description: str
    rationale: str


def _score(col: ColumnProfile) -> float:
    return max(col.target_score, 0.0)


def _pair_prior(a: ColumnProfile, b: ColumnProfile, bonus: float) -> float:
    strength = math.sqrt(_score(a) * _score(b)) + 0.25 * max(_score(a), _score(b))
    return min(0.95, 0.15 + 0.6 * strength + bonus)


def numeric_columns(profile: TableProfile, units: dict[str, str]) -> list[ColumnProfile]:
    """Quantities (numeric, not a nominal code per research) best-first by target score."""
    cols = [c for c in profile.features if c.kind == "numeric" and c.quantiles and units.get(c.name) != "code"]
    return sorted(cols, key=lambda c: (-_score(c), c.name))


def group_columns(profile: TableProfile, units: dict[str, str]) -> list[ColumnProfile]:
    """Grouping keys: low-cardinality categoricals and numeric codes, best-first."""
    cols = [
        c
        for c in profile.features
        if (c.kind in ("categorical", "boolean") or units.get(c.name) == "code") and 2 <= c.n_unique <= GROUP_MAX_LEVELS
    ]
    return sorted(cols, key=lambda c: (-_score(c), c.name))


def same_unit(a: ColumnProfile, b: ColumnProfile, units: dict[str, str]) -> bool:
    ua, ub = units.get(a.name), units.get(b.name)
    if ua and ub:
        return ua == ub
    qa, qb = a.quantile("p50"), b.quantile("p50")
    if not qa or not qb or qa <= 0 or qb <= 0:
        return False
    return abs(math.log10(qa / qb)) < 1.0  # same order of magnitude


def pair_candidates(profile: TableProfile, units: dict[str, str]) -> Iterator[Candidate]:
    cols = numeric_columns(profile, units)[:PAIR_LIMIT]
    for i, a in enumerate(cols):
        for b in cols[i + 1 :]:
            compatible = same_unit(a, b, units)
            unit_note = "same unit family" if compatible else "different units"
            both_positive = a.positive and b.positive
            if both_positive or (a.non_negative and b.positive):
                yield Candidate(
                    FeatureSpec("ratio", (a.name, b.name)),
                    _pair_prior(a, b, 0.08 if both_positive else 0.0),
                    f"{a.name} divided by {b.name}",
                    f"Ratio of two informative positive columns ({unit_note}); trees cannot divide columns.",
                )
            elif a.non_negative and b.non_negative and b.n_unique > 2:
                yield Candidate(
                    FeatureSpec("ratio", (a.name, b.name)),
                    _pair_prior(a, b, -0.05),
                    f"{a.name} divided by {b.name} (null where {b.name} is 0)",
                    "Ratio of non-negative columns; zero denominators become null.",
                )
            if compatible:
                yield Candidate(
                    FeatureSpec("diff", (a.name, b.name)),
                    _pair_prior(a, b, 0.05),
                    f"{a.name} minus {b.name}",
                    f"Difference of two columns in the {unit_note}: an oblique split "
                    "a tree would need many axis-aligned cuts to approximate.",
                )
                yield Candidate(
                    FeatureSpec("sum", (a.name, b.name)),
                    _pair_prior(a, b, -0.05),
                    f"{a.name} plus {b.name}",
                    "Total of two quantities in the same unit.",
                )
            yield Candidate(
                FeatureSpec("product", (a.name, b.name)),
                _pair_prior(a, b, -0.08),
                f"{a.name} times {b.name}",
                "Interaction of two informative columns.",
            )


TOTAL_MIN_PARTS = 3  # two parts are the pair sums above
TOTAL_MAX_PARTS = 12
TOTAL_LIMIT = 6  # totals per table
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")  # 'Gr_Liv_Area' -> Gr Liv Area, 'TotalSF' -> Total SF
# Last words that say what a column counts, not in which unit: a total of them is not a quantity.
_NOT_A_UNIT = frozenset({"total", "sum", "count", "num", "number", "mean", "avg", "average", "max", "min", "std",
                         "pct", "percent", "rate", "ratio", "per", "id", "code", "flag", "year", "yr", "month",
                         "day", "date", "time", "score", "index", "level", "type", "cond", "qual", "error", "err", "se",
                         "sd", "var", "variance", "worst", "median"})  # fmt: skip


def unit_word(name: str) -> str | None:
    """The last word of a column name, singular and lower-case: 'Open_Porch_SF' -> 'sf',
    'total_eve_minutes' -> 'minute'; None for digits only or a word that is no unit."""
    words = _WORD.findall(name)
    if not words:
        return None
    word = words[-1].lower()
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return None if word in _NOT_A_UNIT or len(word) < 2 else word


def _magnitude(col: ColumnProfile) -> float | None:
    """A typical size of a non-negative quantity: its median, or its mean where most rows are 0."""
    for value in (col.quantile("p50"), col.mean):
        if value is not None and value > 0:
            return float(value)
    return None


def total_candidates(profile: TableProfile, units: dict[str, str]) -> Iterator[Candidate]:
    """Totals of three or more columns that measure the same thing: the same last name word
    ('…_SF', '…_minutes', '…_Bath') or the same unit per research, non-negative, varying
    (coefficient of variation ≥ 0.1: years and codes do not add up) and of one order of
    magnitude. A tree cannot add columns: a total of its parts (total floor area, total
    minutes) is a split it would need many cuts to approximate."""
    groups: dict[str, list[ColumnProfile]] = {}
    size: dict[str, float] = {}  # log10 of each part's typical size
    for c in profile.features:
        typical = _magnitude(c)
        if c.kind != "numeric" or not c.non_negative or typical is None or units.get(c.name) == "code":
            continue
        if c.std is None or c.mean is None or c.mean <= 0 or c.std / c.mean < 0.1:
            continue
        unit = units.get(c.name)
        key = unit.lower() if unit else unit_word(c.name)
        if key and key not in _NOT_A_UNIT and not key.endswith(("year", "years", "level", "ratio")):
            groups.setdefault(key, []).append(c)
            size[c.name] = math.log10(typical)
    found = []
    for key, cols in groups.items():
        centre = sorted(size[c.name] for c in cols)[len(cols) // 2]
        parts = [c for c in cols if abs(size[c.name] - centre) < 1.0]
        # 'MAUT0', 'MAUT1', 'MAUT2' are levels of one variable, not parts of a whole: one part per stem
        stems: dict[str, ColumnProfile] = {}
        for c in sorted(parts, key=lambda c: (-_score(c), c.name)):
            stems.setdefault(re.sub(r"\d+", "", c.name), c)
        parts = list(stems.values())[:TOTAL_MAX_PARTS]
        if len(parts) < TOTAL_MIN_PARTS:
            continue
        scores = sorted((_score(c) for c in parts), reverse=True)
        prior = min(0.95, 0.25 + 0.6 * math.sqrt(scores[0] * scores[1]) + 0.25 * scores[0])
        names = tuple(sorted(c.name for c in parts))
        found.append(
            Candidate(
                FeatureSpec("sum", names, (("label", f"total_{key}"),)),
                prior,
                f"total of the {len(names)} '{key}' columns ({', '.join(names)})",
                f"Sum of {len(names)} non-negative columns measured in '{key}' and of one order of magnitude: "
                "a total a tree would need many axis-aligned cuts to approximate.",
            )
        )
    yield from sorted(found, key=lambda c: (-c.prior, c.spec.columns))[:TOTAL_LIMIT]


def group_candidates(profile: TableProfile, units: dict[str, str]) -> Iterator[Candidate]:
    nums = numeric_columns(profile, units)[:8]
    for g in group_columns(profile, units)[:4]:
        for v in nums:
            if v.name == g.name:
                continue
            base = 0.12 + 0.45 * _score(v) + 0.3 * _score(g)
            yield Candidate(
                FeatureSpec("group_diff", (v.name, g.name)),
                min(0.9, base + 0.06),
                f"{v.name} minus its mean within {g.name}",
                f"Position of {v.name} relative to peers sharing {g.name}.",
            )
            yield Candidate(
                FeatureSpec("group_ratio", (v.name, g.name)),
                min(0.9, base + 0.03),
                f"{v.name} divided by its mean within {g.name}",
                "Relative level within the group (scale-free).",
            )
            yield Candidate(
                FeatureSpec("group_mean", (v.name, g.name)),
                min(0.9, base - 0.04),
                f"mean of {v.name} within {g.name}",
                f"Summarises {g.name} by a numeric profile (ordered encoding).",
            )
            yield Candidate(
                FeatureSpec("group_std", (v.name, g.name)),
                min(0.9, base - 0.08),
                f"standard deviation of {v.name} within {g.name}",
                "Dispersion of the group.",
            )


def single_candidates(profile: TableProfile) -> Iterator[Candidate]:
    for c in profile.features:
        if c.null_rate >= 0.05:
            yield Candidate(
                FeatureSpec("is_null", (c.name,)),
                0.1 + 0.3 * min(c.null_rate, 0.5),
                f"1 when {c.name} is missing",
                "Missingness is often informative.",
            )
        if c.kind == "categorical" and c.n_unique >= 3:
            high = c.n_unique > 30
            yield Candidate(
                FeatureSpec("freq", (c.name,)),
                0.15 + 0.3 * _score(c) + (0.1 if high else 0),
                f"share of rows with the same {c.name}",
                "Frequency encoding: rare levels behave differently; compact for many levels.",
            )
        if c.kind == "datetime":
            for part, period in (("month", 12), ("weekday", 7), ("hour", 24)):
                yield Candidate(
                    FeatureSpec("date_part", (c.name,), (("part", part),)),
                    0.3,
                    f"{part} of {c.name}",
                    "Calendar seasonality.",
                )
                yield Candidate(
                    FeatureSpec("cyclic_sin", (c.name,), (("part", part), ("period", period))),
                    0.2,
                    f"cyclic (sine) {part} of {c.name}",
                    "Wrap-around seasonality.",
                )
            yield Candidate(
                FeatureSpec("date_part", (c.name,), (("part", "year"),)), 0.25, f"year of {c.name}", "Trend over years."
            )
        if c.kind == "numeric" and c.skew is not None and abs(c.skew) > 2 and c.non_negative:
            yield Candidate(
                FeatureSpec("log", (c.name,), (("offset", 1.0),)),
                0.05,
                f"log(1 + {c.name})",
                "Monotone: useless for trees alone, helps linear models.",
            )
        if c.kind == "numeric" and c.n_unique > 20:
            yield Candidate(
                FeatureSpec("bin", (c.name,), (("n_bins", 10),)),
                0.04,
                f"decile bin of {c.name}",
                "Coarsening; trees gain little.",
            )
