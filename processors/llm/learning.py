"""Accepted research becomes knowledge: the long-term memory that later jobs, offline ones too, use.

When a job completes, every selected feature that came from the model or the web research
and cites web sources is written to `<data dir>/knowledge/learned.json`, in the format of
the shipped domain files: a role per source column (its name, the meaning and unit the
research found) and a transformation (the spec, its rationale, its first source). The
workbench loads these files next to the shipped ones (`learned_domains`), so the next
table with such columns gets the formula from the knowledge base, with its source, offline.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from domain.feature import Feature
from domain.spec import FeatureSpec
from processors.knowledge import Domain, parse_domain
from processors.knowledge.base import name_forms
from processors.operators import sanitize

LEARNED = "learned.json"
LEARNED_PROPOSERS = ("llm", "web_research")


def learn(directory: Path, features: list[Feature], findings: dict[str, Any]) -> list[str]:
    """Add the accepted features to the learned domain file; returns the names added (none twice)."""
    notes = {n["column"]: n for n in (findings.get("web") or {}).get("columns", [])}
    path = directory / LEARNED
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        raw = {"domain": "learned", "title": "Learned from accepted web research", "roles": {}, "transformations": []}
    known = {t["name"] for t in raw["transformations"]}
    added = []
    for feature in features:
        proposal = feature.proposal
        if proposal.proposer not in LEARNED_PROPOSERS or not proposal.domain_sources:
            continue
        spec = FeatureSpec.from_dict(json.loads(proposal.spec_json))
        name = sanitize(proposal.name)
        if name in known:
            continue
        roles = []
        for column in spec.columns:
            role = f"col_{sanitize(column)}"
            note = notes.get(column, {})
            raw["roles"].setdefault(
                role,
                {
                    "pattern": r"\b" + re.escape(name_forms(column)[0]) + r"\b",
                    "meaning": note.get("meaning") or f"the column {column}",
                    "kind": "any",
                    "range": note.get("typical_range"),
                    "unit": note.get("unit"),
                    "source": proposal.domain_sources[0],
                },
            )
            roles.append(role)
        raw["transformations"].append(
            {
                "name": name,
                "op": spec.op,
                "roles": roles,
                "description": proposal.description,
                "rationale": proposal.rationale,
                "source": proposal.domain_sources[0],
                "prior": 0.6,
                "params": {k: v for k, v in spec.params if k != "label"},
            }
        )
        known.add(name)
        added.append(name)
    if added:
        parse_domain(raw)  # what is written must load
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(raw, indent=1) + "\n", "utf-8")
        tmp.replace(path)
    return added


def learned_domains(directory: Path | None) -> tuple[Domain, ...]:
    """The learned domain files under `directory` (none when it does not exist)."""
    if directory is None or not directory.is_dir():
        return ()
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            out.append(parse_domain(json.loads(path.read_text("utf-8"))))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a damaged file teaches nothing; the shipped knowledge still loads
    return tuple(out)
