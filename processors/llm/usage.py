"""LLM usage of a job, per agent and per feature, read back from its AgentTraced events.

Every LLM call is traced with `data.llm = {model, tokens_in, tokens_out, cost_usd, cached, ...}`
and, when it worked for particular features, `data.feature_ids`; a call for several features
is shared evenly among them. Cached answers cost nothing and count as `cached_calls`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from commands.store import EventStore
from domain.activity import activity_stream

LLM_AGENTS = ("schema", "research", "ideation", "codegen")


@dataclass
class Usage:
    calls: int = 0
    cached_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    searches: int = 0

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    def add(self, llm: dict[str, Any], share: float = 1.0) -> None:
        if llm.get("cached"):
            self.cached_calls += 1
            return
        self.calls += 1
        self.tokens_in += round(int(llm.get("tokens_in", 0)) * share)
        self.tokens_out += round(int(llm.get("tokens_out", 0)) * share)
        self.cost_usd = round(self.cost_usd + float(llm.get("cost_usd", 0.0)) * share, 6)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens": self.tokens}


@dataclass
class JobUsage:
    total: Usage = field(default_factory=Usage)
    by_agent: dict[str, Usage] = field(default_factory=dict)
    by_feature: dict[str, Usage] = field(default_factory=dict)
    budget_exhausted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.total.to_dict(),
            "budget_exhausted": self.budget_exhausted,
            "by_agent": {k: v.to_dict() for k, v in sorted(self.by_agent.items())},
        }


def job_usage(store: EventStore, job_id: str) -> JobUsage:
    usage = JobUsage()
    for agent in LLM_AGENTS:
        for envelope in store.read_stream(activity_stream(job_id, agent)):
            data_json = getattr(envelope.event, "data_json", "{}")
            if '"llm' not in data_json and '"web"' not in data_json:
                continue
            data = json.loads(data_json)
            if data.get("llm_budget", {}).get("exhausted"):
                usage.budget_exhausted = True
            if "web" in data:
                usage.total.searches += 1
                usage.by_agent.setdefault(agent, Usage()).searches += 1
            llm = data.get("llm")
            if not isinstance(llm, dict):
                continue
            usage.total.add(llm)
            usage.by_agent.setdefault(agent, Usage()).add(llm)
            features = [str(f) for f in data.get("feature_ids", [])]
            for fid in features:
                usage.by_feature.setdefault(fid, Usage()).add(llm, 1 / len(features))
    return usage
