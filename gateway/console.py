"""Live rendering of a job on the terminal: a progress bar and one line per agent trace."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from domain.envelope import Envelope

KIND_STYLE = {"thought": "dim", "tool_call": "cyan", "tool_result": "blue", "decision": "bold green"}
# Share of the whole bar each stage stands for (rounds after the first share the last part).
STAGE_SPAN = {
    "schema": (0, 5),
    "research": (5, 10),
    "ideation": (10, 15),
    "codegen": (15, 20),
    "execution": (20, 55),
    "screen": (55, 75),
    "confirm": (75, 88),
    "shortlist": (88, 91),
    "select": (91, 99),
}


class LiveView:
    """An observer for `LocalRuntime`: renders the events of one job as they are committed."""

    def __init__(self, console: Console, job_id: str, *, verbose: bool = True) -> None:
        self.console = console
        self.job_id = job_id
        self.verbose = verbose
        self.progress = Progress(
            TextColumn("[bold]{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("starting", total=100)

    def __enter__(self) -> LiveView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, envelopes: Sequence[Envelope]) -> None:
        for envelope in envelopes:
            if envelope.correlation_id != self.job_id:
                continue
            event: Any = envelope.event
            name = envelope.event_type
            if name == "AgentTraced" and self.verbose:
                style = KIND_STYLE.get(event.kind, "")
                self.progress.console.print(f"[{style}]{event.agent:>10} {event.kind:<11}[/] {event.message}")
            elif name == "ProgressReported":
                low, high = STAGE_SPAN.get(event.stage, (0, 99))
                share = event.done / event.total if event.total else 1.0
                self.progress.update(
                    self.task,
                    completed=low + (high - low) * share,
                    description=f"{event.stage} {event.done}/{event.total}",
                )
            elif name in ("JobCompleted", "JobFailed", "JobCancelled"):
                self.progress.update(self.task, completed=100, description=name)


def results_table(result: dict[str, Any], features: list[dict[str, Any]]) -> Table:
    metric = result.get("metric") or "score"
    # what a job claims is for LightGBM as users train it (see processors.engine.evaluation)
    head = f"{len(features)} features selected" if features else "no feature helps: none confirmed for your model"
    title = (
        f"{head}  |  {metric}: {_fmt(result.get('baseline_score'))} -> "
        f"{_fmt(result.get('final_score'))}  |  {result['counts']['proposed']} proposed, "
        f"{result['counts']['executed']} executed, {result['counts']['failed']} failed"
    )
    usage = result.get("llm_usage") or {}
    if usage.get("calls") or usage.get("cached_calls"):
        title += (
            f"  |  LLM: {usage['calls']} calls ({usage['cached_calls']} cached), {usage['tokens']:,} tokens, "
            f"${usage['cost_usd']:.4f}" + (" (budget exhausted)" if usage.get("budget_exhausted") else "")
        )
    per_feature = any("llm_usage" in f for f in features)
    table = Table(title=title, show_lines=False)
    columns = (
        "#",
        "feature",
        "lift",
        "95% CI",
        "p (one-sided)",
        *(("LLM tokens",) if per_feature else ()),
        "description",
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    for i, f in enumerate(features, start=1):
        ci = f.get("ci") or [None, None]
        spent = f.get("llm_usage") or {}
        tokens = f"{spent.get('tokens', 0):,} (${spent.get('cost_usd', 0.0):.4f})" if spent else "-"
        table.add_row(
            str(f.get("importance_rank") or i),
            f["name"],
            _fmt(f.get("lift"), signed=True),
            f"{_fmt(ci[0], signed=True)} .. {_fmt(ci[1], signed=True)}",
            _fmt_p(f.get("p_value")),
            *((tokens,) if per_feature else ()),
            f.get("description", ""),
        )
    if not features:
        closest = "the finalists below are the closest calls" if result.get("finalists_not_selected") else ""
        table.add_row(
            "-", "(none)", "", "", "", *(("",) if per_feature else ()), closest or "no candidate reached the final test"
        )
    return table


def finalists_table(result: dict[str, Any]) -> Table | None:
    """The finalists the job did not select (the closest calls), or None when there were none."""
    rows = result.get("finalists_not_selected") or []
    if not rows:
        return None
    table = Table(title="finalists not selected: the closest calls, tested like the selected ones", show_lines=False)
    for column in ("feature", "lift", "95% CI", "p (one-sided)", "why not"):
        table.add_column(column, overflow="fold")
    for f in rows:
        ci = f.get("ci") or [None, None]
        reason = str(f.get("reason") or "")
        table.add_row(
            f["name"],
            _fmt(f.get("lift"), signed=True),
            f"{_fmt(ci[0], signed=True)} .. {_fmt(ci[1], signed=True)}",
            _fmt_p(f.get("p_value")),
            reason.rsplit(": ", 1)[-1] if reason.startswith("not selected:") else reason,
        )
    return table


def timeline_lines(envelopes: Sequence[Envelope], *, collapse: bool = False) -> list[str]:
    """One line per event: position, time, event, actor, the position of its cause, a summary.

    Plain lines rather than a table, so that a replay can be piped, grepped and diffed.
    `collapse` folds a run of the same event from the same cause into one line (`x200`).
    """
    positions = {e.event_id: e.position for e in envelopes}
    lines = [f"{'pos':>6}  {'time':<12}  {'event':<18}  {'actor':<20}  {'cause':>6}  detail"]
    i = 0
    while i < len(envelopes):
        e = envelopes[i]
        run = 1
        while collapse and i + run < len(envelopes) and _same_kind(envelopes[i + run], e):
            run += 1
        cause = positions.get(e.causation_id or "", "")
        detail = summary(e) if run == 1 else f"x{run}, first: {summary(e)}"
        lines.append(
            f"{e.position:>6}  {e.occurred_at.strftime('%H:%M:%S.%f')[:-3]:<12}  {e.event_type:<18}  "
            f"{e.actor[:20]:<20}  {cause!s:>6}  {detail}"
        )
        i += run
    return lines


def _same_kind(a: Envelope, b: Envelope) -> bool:
    if a.event_type in ("FeatureSelected", "JobCompleted", "JobFailed") or a.event_type != b.event_type:
        return False
    return a.actor == b.actor and a.causation_id == b.causation_id


def summary(envelope: Envelope) -> str:
    event: Any = envelope.event
    match envelope.event_type:
        case "AgentTraced":
            return f"{event.kind}: {event.message}"[:160]
        case "ProgressReported":
            return f"{event.stage} {event.done}/{event.total}"
        case "FeatureProposed":
            return f"{event.name} ({event.proposer})"
        case "CodeExecuted":
            return "ok" if event.ok else f"failed: {event.reason}"
        case "FeatureEvaluated":
            return f"{event.stage} lift={_fmt(event.lift)} p={_fmt_p(event.p_value)}"
        case "JobRequested":
            return f"{event.source} target={event.target}"
        case "JobFailed" | "FeatureSelected" | "FeatureRejected":
            return str(event.reason)
        case "StageCompleted":
            return f"round {event.round} {event.stage}: {event.succeeded} ok, {event.failed} failed"
        case "RoundCompleted":
            return f"{event.metric} {event.baseline_score:.4f} -> {event.score:.4f}, {len(event.selected_ids)} selected"
        case "JobCompleted":
            return (
                f"{event.metric} {event.baseline_score:.4f} -> {event.final_score:.4f}, "
                f"{len(event.selected_ids)} selected"
            )
    fields = {k: v for k, v in vars(event).items() if k not in ("job_id", "feature_id") and len(str(v)) < 60}
    return json.dumps(fields, default=str)[:160]


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _fmt_p(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1e}" if value < 1e-3 else f"{value:.3f}"
