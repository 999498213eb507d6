"""Load the per-domain JSON files and match their roles against a profiled table.

A domain file declares *roles* (column-name regex over a normalised name, expected
kind, typical value range, unit, source URL) and *transformations* (a FeatureSpec
over roles, a rationale and a source URL). Matching binds roles to columns and
turns every transformation whose roles are all bound into a concrete FeatureSpec.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from domain.spec import FeatureSpec
from processors.profiling import ColumnProfile

_WORD = r"(?:(?<![a-z0-9])(?=[a-z0-9])|(?<=[a-z0-9])(?![a-z0-9]))"
MIN_CONFIDENCE = 0.4


@dataclass(frozen=True)
class Role:
    name: str
    pattern: re.Pattern[str]
    meaning: str
    kind: str  # numeric | categorical | any
    range: tuple[float, float] | None
    unit: str | None
    source: str | None
    multi: bool

    def matches(self, column: str) -> bool:
        return any(self.pattern.search(form) for form in name_forms(column))


@dataclass(frozen=True)
class Transformation:
    name: str
    op: str
    roles: tuple[str, ...]
    description: str
    rationale: str
    source: str
    prior: float
    params: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Domain:
    name: str
    title: str
    roles: tuple[Role, ...]
    transformations: tuple[Transformation, ...]


@dataclass(frozen=True)
class Binding:
    role: Role
    columns: tuple[str, ...]
    fits: bool | None  # observed p1..p99 inside the typical range (None: no range / not numeric)


@dataclass(frozen=True)
class DomainMatch:
    domain: Domain
    confidence: float
    bindings: tuple[Binding, ...]
    specs: tuple[tuple[Transformation, FeatureSpec], ...]


@dataclass(frozen=True)
class KnowledgeBase:
    domains: tuple[Domain, ...]

    def match(self, columns: tuple[ColumnProfile, ...]) -> tuple[DomainMatch, ...]:
        """Every domain with its bindings, best first (confidence may be 0)."""
        found = [_match_domain(d, columns) for d in self.domains]
        return tuple(sorted(found, key=lambda m: (-m.confidence, m.domain.name)))

    def detect(self, columns: tuple[ColumnProfile, ...]) -> tuple[DomainMatch, ...]:
        """Only domains confident enough to act on."""
        return tuple(m for m in self.match(columns) if m.confidence >= MIN_CONFIDENCE)


def name_forms(column: str) -> tuple[str, ...]:
    """Normalised spellings of a column name: 'TotRms_AbvGrd' -> 'totrms_abvgrd', 'tot_rms_abv_grd'."""
    plain = re.sub(r"[^a-z0-9]+", "_", column.lower()).strip("_")
    camel = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", column)
    split = re.sub(r"[^a-z0-9]+", "_", camel.lower()).strip("_")
    return (plain,) if split == plain else (plain, split)


@cache
def load_knowledge_base() -> KnowledgeBase:
    files = sorted(f for f in resources.files(__package__).iterdir() if f.name.endswith(".json"))
    return KnowledgeBase(tuple(_domain(json.loads(f.read_text("utf-8"))) for f in files))


def parse_domain(raw: dict[str, Any]) -> Domain:
    """One domain file's content (the shipped ones, or what accepted research taught: `processors/llm/learning.py`)."""
    return _domain(raw)


def _domain(raw: dict[str, Any]) -> Domain:
    roles = tuple(
        Role(
            name=name,
            pattern=re.compile(r["pattern"].replace(r"\b", _WORD)),
            meaning=r["meaning"],
            kind=r.get("kind", "numeric"),
            range=tuple(r["range"]) if r.get("range") else None,  # type: ignore[arg-type]
            unit=r.get("unit"),
            source=r.get("source"),
            multi=bool(r.get("multi", False)),
        )
        for name, r in raw["roles"].items()
    )
    known = {r.name for r in roles}
    transformations = []
    for t in raw["transformations"]:
        if unknown := set(t["roles"]) - known:
            raise ValueError(f"{raw['domain']}.{t['name']}: unknown roles {sorted(unknown)}")
        transformations.append(
            Transformation(
                name=t["name"],
                op=t["op"],
                roles=tuple(t["roles"]),
                description=t["description"],
                rationale=t["rationale"],
                source=t["source"],
                prior=float(t["prior"]),
                params=tuple(sorted((t.get("params") or {}).items())),
            )
        )
    return Domain(raw["domain"], raw["title"], roles, tuple(transformations))


def _kind_ok(role: Role, col: ColumnProfile) -> bool:
    if role.kind == "numeric":
        return col.kind in ("numeric", "boolean") and bool(col.quantiles)
    if role.kind == "categorical":
        return col.kind in ("categorical", "boolean")
    return col.kind in ("numeric", "categorical", "boolean")


def _fits(role: Role, col: ColumnProfile) -> bool | None:
    lo, hi = col.quantile("p1"), col.quantile("p99")
    if role.range is None or lo is None or hi is None:
        return None
    low, high = role.range
    slack = 0.05 * (high - low)
    return low - slack <= lo and hi <= high + slack


def _match_domain(domain: Domain, columns: tuple[ColumnProfile, ...]) -> DomainMatch:
    taken: set[str] = set()
    bindings: dict[str, Binding] = {}
    for role in sorted(domain.roles, key=lambda r: r.multi):  # multi roles share columns
        candidates = [
            c for c in columns if (role.multi or c.name not in taken) and role.matches(c.name) and _kind_ok(role, c)
        ]
        if not candidates:
            continue
        if role.multi:
            chosen = candidates
        else:  # prefer in-range values, then the shortest (most specific) name
            chosen = [min(candidates, key=lambda c: (_fits(role, c) is False, len(c.name)))]
        fits = [_fits(role, c) for c in chosen]
        verdict = None if all(f is None for f in fits) else all(f is not False for f in fits)
        bindings[role.name] = Binding(role, tuple(c.name for c in chosen), verdict)
        taken.update(() if role.multi else (c.name for c in chosen))
    specs = []
    for t in domain.transformations:
        if not all(r in bindings for r in t.roles):
            continue
        cols = tuple(c for r in t.roles for c in bindings[r].columns)
        if len(set(cols)) != len(cols) or (t.op == "sum" and len(cols) < 2):
            continue
        params = (*t.params, ("label", t.name))
        specs.append((t, FeatureSpec(t.op, cols, tuple(sorted(params)))))
    in_range = sum(1 for b in bindings.values() if b.fits is not False)
    score = in_range + 0.5 * (len(bindings) - in_range) + 2.0 * len(specs)
    confidence = round(1.0 - math.exp(-score / 6.0), 3) if specs else round(0.1 * len(bindings), 3)
    ordered = tuple(bindings[r.name] for r in domain.roles if r.name in bindings)
    return DomainMatch(domain, min(confidence, 0.99), ordered, tuple(specs))
