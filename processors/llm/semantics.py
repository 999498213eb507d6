"""The schema agent with a model: a tool-use loop that names the table's semantics.

The model reads samples and column profiles and runs read-only SQL over the job's
snapshot (checked by `processors.sources.sql.validate` before DuckDB runs it on a locked
down, read-only session), then reports the entity, units, time columns and leakage
suspects. The profile stays the ground truth for types: the report only adds meaning,
and names that are not columns of the table are dropped.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, Field, ValidationError

from processors.llm.port import LLMRequest, LLMUnavailable
from processors.llm.session import LLMSession, tool_request, tool_schema
from processors.profiling import TableProfile
from processors.sources.embedded import FileSource
from processors.sources.errors import SourceError

MAX_RESULT_CHARS = 4000
SQL_ROWS = 50


class LeakageSuspect(BaseModel):
    column: str
    reason: str = Field(max_length=500)


class Semantics(BaseModel):
    entity: list[str] = Field(default_factory=list, description="column(s) identifying what a row describes")
    units: dict[str, str] = Field(default_factory=dict, description="column -> unit of measure")
    time_columns: list[str] = Field(default_factory=list)
    leakage_suspects: list[LeakageSuspect] = Field(default_factory=list)
    notes: str = Field(default="", max_length=2000)


class SampleRows(BaseModel):
    n: int = Field(default=10, ge=1, le=50)


class ColumnArgs(BaseModel):
    column: str


class SqlArgs(BaseModel):
    sql: str = Field(max_length=4000)


TOOLS = (
    tool_schema("sample_rows", "The first n rows of the table, as CSV.", SampleRows),
    tool_schema("column_profile", "The profiler's full statistics for one column.", ColumnArgs),
    tool_schema(
        "run_sql", "Run one read-only SELECT over the table `data` (DuckDB); up to 50 rows come back.", SqlArgs
    ),
    tool_schema("report_semantics", "Report the table's semantics; call once, last.", Semantics),
)


def describe_columns(profile: TableProfile) -> str:
    lines = []
    for c in profile.columns:
        lo, hi = c.quantile("p1"), c.quantile("p99")
        span = f", p1..p99 {lo:g}..{hi:g}" if lo is not None and hi is not None else ""
        lines.append(f"- {c.name}: {c.kind} ({c.dtype}), {c.null_rate:.0%} null, {c.n_unique} distinct{span}")
    return "\n".join(lines)


def analyse(session: LLMSession, profile: TableProfile, snapshot: Path, frame: pl.DataFrame) -> Semantics:
    """Run the loop; raises LLMUnavailable / BudgetExhausted for the caller's offline fallback."""
    turns = session.services.limits.schema_turns
    base = tool_request(
        "schema",
        tools=TOOLS,
        max_tokens=2048,
        target=profile.target,
        task=profile.task,
        n_rows=profile.n_rows,
        n_cols=profile.n_cols,
        columns=describe_columns(profile),
        user="Analyse the table's semantics.",
    )
    messages = list(base.messages)
    for turn in range(1, turns + 1):
        last = turn == turns
        request = LLMRequest(
            task=base.task,
            prompt=base.prompt,
            prompt_version=base.prompt_version,
            system=base.system,
            messages=tuple(messages),
            tools=base.tools,
            tool_choice={"type": "tool", "name": "report_semantics"} if last else {"type": "auto"},
            max_tokens=base.max_tokens,
        )
        reply = session.ask(request)
        uses = reply.tool_uses
        if not uses:
            messages += [
                {"role": "assistant", "content": list(reply.content) or [{"type": "text", "text": "(empty)"}]},
                {"role": "user", "content": "Call report_semantics with your conclusions now."},
            ]
            continue
        results: list[dict[str, Any]] = []
        for use in uses:
            name, args = str(use.get("name")), use.get("input") or {}
            if name == "report_semantics":
                try:
                    return _checked(session, Semantics.model_validate(args), profile)
                except ValidationError as error:
                    problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
                    session.trace("thought", f"the report does not match its schema ({problem}); asking again")
                    results.append(_result(use, f"invalid report: {problem}", error=True))
                    continue
            session.trace(
                "tool_call", f"{name}({json.dumps(args)[:300]})", {"tool": name, "input": args, "model": reply.model}
            )
            text, failed = _run_tool(name, args, profile, snapshot, frame)
            session.trace(
                "tool_result",
                f"{name}: {'error: ' if failed else ''}{text[:300]}",
                {"tool": name, "ok": not failed, "chars": len(text)},
            )
            results.append(_result(use, text, error=failed))
        messages += [{"role": "assistant", "content": list(reply.content)}, {"role": "user", "content": results}]
    raise LLMUnavailable(f"no semantics report after {turns} turns")


def _result(use: dict[str, Any], text: str, *, error: bool) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": use.get("id"), "content": text, "is_error": error}


def _run_tool(
    name: str, args: dict[str, Any], profile: TableProfile, snapshot: Path, frame: pl.DataFrame
) -> tuple[str, bool]:
    try:
        if name == "sample_rows":
            n = SampleRows.model_validate(args).n
            sample = frame.head(n).with_columns(pl.all().cast(pl.String).str.slice(0, 60))
            return sample.write_csv()[:MAX_RESULT_CHARS], False
        if name == "column_profile":
            column = ColumnArgs.model_validate(args).column
            if column not in {c.name for c in profile.columns}:
                return f"no column {column!r}; columns: {', '.join(c.name for c in profile.columns)[:1000]}", True
            return json.dumps(asdict(profile.column(column)), default=str)[:MAX_RESULT_CHARS], False
        if name == "run_sql":
            sql = SqlArgs.model_validate(args).sql
            result = FileSource(snapshot, "parquet").run(sql, max_rows=SQL_ROWS, max_bytes=64 * 1024, timeout=10.0)
            rows = [result.columns, *result.rows]
            text = "\n".join(",".join(str(v)[:60] for v in row) for row in rows)
            return (text + ("\n(truncated)" if result.truncated else ""))[:MAX_RESULT_CHARS], False
        return f"unknown tool {name!r}", True
    except ValidationError as error:
        return f"bad arguments: {error.errors()[0]['msg']}", True
    except SourceError as error:  # RejectedQuery, timeouts, DuckDB errors: the model sees why
        return str(error)[:500], True


def _checked(session: LLMSession, semantics: Semantics, profile: TableProfile) -> Semantics:
    """Only names of real columns; the rest is said and dropped."""
    known = {c.name for c in profile.columns}
    unknown = sorted(
        {*semantics.entity, *semantics.units, *semantics.time_columns, *(s.column for s in semantics.leakage_suspects)}
        - known
    )
    if unknown:
        session.trace("thought", f"dropped names that are not columns: {', '.join(unknown)[:300]}")
    return Semantics(
        entity=[c for c in semantics.entity if c in known],
        units={c: u[:40] for c, u in semantics.units.items() if c in known},
        time_columns=[c for c in semantics.time_columns if c in known],
        leakage_suspects=[s for s in semantics.leakage_suspects if s.column in known],
        notes=semantics.notes,
    )
