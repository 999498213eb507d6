"""`KnowledgeBaseLLM`: an offline stand-in for a model, answering AFEP's prompts as a model would.

It reads the same prompts a model reads and answers with the same tool calls: the schema
loop runs one SQL query and reports units the knowledge base knows; ideation proposes the
knowledge base's formulas listed in the research digest (as formulas over column names,
the way a model writes them); code generation writes the module for the definition it is
given (the generator's text with a comment of its own, so it is not AFEP's trusted code and
runs confined). Token counts are estimated from text length (4 characters a token).

It proves the wiring (prompts -> tool calls -> validation -> events) without a network,
in tests and in `bench.llm_wiring`; it is not a model.
"""

from __future__ import annotations

import json
import re
from typing import Any

from processors.codegen import UnsupportedSpec, generate_code
from processors.llm.expressions import formula_spec, grammar_spec
from processors.llm.port import LLMReply, LLMRequest, Unusable

_COLUMN_LINE = re.compile(r"^- (.+?): (\w+) \((.*?)\), ", re.M)
_KNOWN = re.compile(r"^- known (\S+): (.+?) \| (.*?) \| source: (.*)$", re.M)
_OP = re.compile(r"^op: (\w+)\((.*?)\)(?: params (\{.*\}))?$")
_TICKS = re.compile(r"`([^`]+)`")


class KnowledgeBaseLLM:
    name = "scripted"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []  # (prompt, model), in order

    def complete(self, request: LLMRequest, model: str) -> LLMReply:
        self.calls.append((request.prompt, model))
        answer = getattr(self, f"_{request.prompt}", None)
        if answer is None:
            raise Unusable(f"the stand-in has no answer for the prompt {request.prompt!r}")
        tool, payload = answer(request)
        block = {"type": "tool_use", "id": f"toolu_scripted_{len(self.calls):04d}", "name": tool, "input": payload}
        asked = len(request.system) + len(json.dumps(request.messages)) + len(json.dumps(request.tools))
        return LLMReply(
            model=model,
            content=(block,),
            stop_reason="tool_use",
            tokens_in=asked // 4,
            tokens_out=len(json.dumps(payload)) // 4 + 10,
            latency_ms=0.0,
        )

    # one method per prompt file: (tool name, tool input)

    def _schema(self, request: LLMRequest) -> tuple[str, dict[str, Any]]:
        answered = any(
            isinstance(m.get("content"), list) and any(b.get("type") == "tool_result" for b in m["content"])
            for m in request.messages
        )
        if not answered:
            return "run_sql", {"sql": "SELECT COUNT(*) AS n_rows FROM data"}
        from processors.knowledge import load_knowledge_base

        columns = _COLUMN_LINE.findall(request.system)
        units: dict[str, str] = {}
        for name, kind, _ in columns:
            if kind != "numeric":
                continue
            for domain in load_knowledge_base().domains:
                role = next((r for r in domain.roles if r.unit and r.matches(name)), None)
                if role is not None and role.unit:
                    units[name] = role.unit
                    break
        times = [name for name, kind, _ in columns if kind == "datetime"]
        return "report_semantics", {"entity": [], "units": units, "time_columns": times, "leakage_suspects": []}

    def _research_queries(self, request: LLMRequest) -> tuple[str, dict[str, Any]]:
        known = re.search(r"Domains AFEP already knows that match: (.*)", request.system)
        domain = (known.group(1).split(",")[0].strip() if known else "") or "general"
        target = re.search(r"Target: `(.*?)`", request.system)
        return "plan_queries", {
            "domain": domain,
            "queries": [f"{domain} derived features predicting {target.group(1) if target else 'the target'}"],
        }

    def _research_synthesis(self, request: LLMRequest) -> tuple[str, dict[str, Any]]:
        return "report_research", {"domain": "general", "summary": "", "columns": [], "features": []}

    def _ideation(self, request: LLMRequest) -> tuple[str, dict[str, Any]]:
        budget = int(re.search(r"Propose up to (\d+)", request.system).group(1))  # type: ignore[union-attr]
        ideas = []
        for name, definition, rationale, source in _KNOWN.findall(request.system)[:budget]:
            idea: dict[str, Any] = {
                "name": name,
                "description": f"{name.replace('_', ' ')}, as the domain computes it",
                "rationale": rationale or f"{name} is a standard quantity of this domain",
                "sources": [s.strip() for s in source.split(",") if s.strip()],
                "expected_value": 0.8,
            }
            if definition.startswith("formula: "):
                idea["formula"] = definition.removeprefix("formula: ")
            else:
                match = _OP.match(definition)
                if match is None:
                    continue
                idea["op"] = match.group(1)
                idea["columns"] = _TICKS.findall(match.group(2))
                idea["params"] = json.loads(match.group(3)) if match.group(3) else {}
            ideas.append(idea)
        return "propose_features", {"features": ideas}

    def _codegen(self, request: LLMRequest) -> tuple[str, dict[str, Any]]:
        name = re.search(r"^Feature: (.*)$", request.system, re.M)
        definition = re.search(r"^Definition: (.*)$", request.system, re.M)
        columns = re.search(r"^Input columns and their types: (.*)$", request.system, re.M)
        if not (name and definition and columns):
            raise Unusable("the codegen prompt lacks a feature, a definition or its columns")
        known = _TICKS.findall(columns.group(1))
        text = definition.group(1)
        try:
            if text.startswith("formula: "):
                spec = formula_spec(text.removeprefix("formula: "), known, name.group(1))
            else:
                match = _OP.match(text)
                if match is None:
                    raise UnsupportedSpec(text)
                params = json.loads(match.group(3)) if match.group(3) else {}
                spec = grammar_spec(match.group(1), _TICKS.findall(match.group(2)), params)
        except UnsupportedSpec as error:
            return "submit_code", {"code": f"# cannot write {name.group(1)}: {error}\n"}
        code = generate_code(spec).code
        return "submit_code", {"code": f"# {name.group(1)}, written by the scripted stand-in\n{code}"}
