"""Offline domain research: what the columns mean and which formulas experts use.

`research(profile, kb)` matches the profiled columns against the shipped knowledge
base and returns a frozen, JSON-round-trippable `Research` record: detected domains
with confidence, a finding per recognised column (meaning, typical range, whether
the observed values fit it, known transformations, source URL) and the concrete
knowledge-base FeatureSpecs ready for ideation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from domain.spec import FeatureSpec
from processors.knowledge import KnowledgeBase
from processors.profiling import TableProfile


@dataclass(frozen=True)
class DomainHit:
    domain: str
    title: str
    confidence: float
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Finding:
    column: str
    domain: str
    role: str
    meaning: str
    unit: str | None
    typical_range: tuple[float, float] | None
    observed_range: tuple[float, float] | None  # p1..p99 of the column
    fits: bool | None  # None when there is no range to compare (categoricals)
    transformations: tuple[str, ...]
    source: str | None


@dataclass(frozen=True)
class KnowledgeFeature:
    name: str
    domain: str
    spec: FeatureSpec
    description: str
    rationale: str
    source: str
    prior: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "spec": self.spec.to_dict()}


@dataclass(frozen=True)
class Research:
    domains: tuple[DomainHit, ...]
    findings: tuple[Finding, ...]
    features: tuple[KnowledgeFeature, ...]
    sources: tuple[str, ...]

    def finding(self, column: str) -> Finding | None:
        return next((f for f in self.findings if f.column == column), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "domains": [asdict(d) for d in self.domains],
            "findings": [asdict(f) for f in self.findings],
            "features": [f.to_dict() for f in self.features],
            "sources": list(self.sources),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Research:
        domains = tuple(DomainHit(**{**d, "columns": tuple(d["columns"])}) for d in data["domains"])
        findings = tuple(
            Finding(
                **{
                    **f,
                    "transformations": tuple(f["transformations"]),
                    "typical_range": _pair(f["typical_range"]),
                    "observed_range": _pair(f["observed_range"]),
                }
            )
            for f in data["findings"]
        )
        features = tuple(KnowledgeFeature(**{**f, "spec": FeatureSpec.from_dict(f["spec"])}) for f in data["features"])
        return cls(domains, findings, features, tuple(data["sources"]))


def _pair(value: Any) -> tuple[float, float] | None:
    return None if value is None else (float(value[0]), float(value[1]))


def research(profile: TableProfile, kb: KnowledgeBase) -> Research:
    """Detect domains, explain recognised columns and instantiate knowledge-base formulas."""
    columns = profile.features
    matches = kb.detect(columns)
    domains, findings, features = [], [], []
    described: set[str] = set()
    for match in matches:
        domain = match.domain
        bound = tuple(dict.fromkeys(c for b in match.bindings for c in b.columns))
        domains.append(DomainHit(domain.name, domain.title, match.confidence, bound))
        for binding in match.bindings:
            uses = tuple(t.name for t, _ in match.specs if binding.role.name in t.roles)
            for column in binding.columns:
                if column in described:
                    continue
                described.add(column)
                col = profile.column(column)
                lo, hi = col.quantile("p1"), col.quantile("p99")
                findings.append(
                    Finding(
                        column=column,
                        domain=domain.name,
                        role=binding.role.name,
                        meaning=binding.role.meaning,
                        unit=binding.role.unit,
                        typical_range=binding.role.range,
                        observed_range=(lo, hi) if lo is not None and hi is not None else None,
                        fits=_fits(binding.role.range, lo, hi),
                        transformations=uses,
                        source=binding.role.source,
                    )
                )
        for transformation, spec in match.specs:
            features.append(
                KnowledgeFeature(
                    name=transformation.name,
                    domain=domain.name,
                    spec=spec,
                    description=transformation.description,
                    rationale=transformation.rationale,
                    source=transformation.source,
                    prior=round(transformation.prior * match.confidence, 4),
                )
            )
    urls = [f.source for f in findings if f.source] + [f.source for f in features]
    return Research(tuple(domains), tuple(findings), tuple(features), tuple(dict.fromkeys(urls)))


def _fits(typical: tuple[float, float] | None, lo: float | None, hi: float | None) -> bool | None:
    if typical is None or lo is None or hi is None:
        return None
    low, high = typical
    slack = 0.05 * (high - low)
    return low - slack <= lo and hi <= high + slack
