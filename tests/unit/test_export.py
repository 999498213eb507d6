"""A finished job as files: result.json names the finalists that were not selected (the closest
calls), and the CLI shows them with why, so "no feature helps" is never a bare empty table."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from rich.console import Console

from commands.memory_store import InMemoryEventStore
from commands.unit_of_work import execute
from domain import feature, job
from domain.envelope import Context
from gateway.console import finalists_table, results_table
from processors.export import export_job

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WHY = "no gain for that model over the first 5 folds, so it was not fitted on the others"


def ctx(step: int) -> Context:
    return Context(at=T0 + timedelta(seconds=step), actor="agent:test", correlation_id="j1")


def finished_job(store: InMemoryEventStore, tmp_path: Path, *, select_first: bool) -> None:
    data = tmp_path / "d.parquet"
    pl.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0]}).write_parquet(data)
    execute(store, [(job.RequestJob("j1", "p", "d.csv", None, "y", "auto", 60.0, 0, 1, 10), ctx(0))])
    execute(store, [(job.RecordSchemaAnalysis("j1", 1, str(data), "sha", 100, 3, "classification", "roc_auc", "1",
                                              "{}", (), ("--entity cid: has 2 repeated keys",)), ctx(1))])  # fmt: skip
    execute(store, [(job.RecordDomainResearch("j1", 1, ("credit",), "{}", ()), ctx(2))])
    execute(store, [(job.StartRound("j1", 1, "broad", 10), ctx(2))])
    for i, name in enumerate(("ratio_a_b", "diff_a_b", "log_c")):
        fid = f"f{i}"
        execute(
            store,
            [
                (
                    feature.ProposeFeature(
                        fid,
                        "j1",
                        1,
                        name,
                        f"{name} desc",
                        "why",
                        '{"op": "ratio"}',
                        ("a", "b"),
                        0.1,
                        "operator_search",
                        (),
                    ),
                    ctx(3),
                ),
                (feature.RecordCode(fid, "code", "polars", "h" * 64, None, None, False), ctx(4)),
                (feature.RecordExecution(fid, True, None, None, 3.0, None, 0.0, 10), ctx(5)),
            ],
        )
    execute(store, [(job.CompleteStage("j1", 1, "ideation", ("f0", "f1", "f2"), 3, 0), ctx(5))])
    stages = (("select", 0.001, 0.40), ("select", 0.004, 0.01), ("confirm", 0.002, 0.2))
    for i, (stage, lift, p) in enumerate(stages):
        head = "selected" if (i == 1 and select_first) else "not selected"
        reason = f"{head}: {lift:+.4f} AUC (...) by a corrected repeated cross-validation t-test: {WHY}"
        execute(store, [(feature.RecordEvaluation(f"f{i}", 1, stage, "roc_auc", 0.01, lift, lift - 0.01, lift + 0.01,
                                                  p, None, reason), ctx(6))])  # fmt: skip
    chosen = ("f1",) if select_first else ()
    if select_first:
        execute(store, [(feature.SelectFeature("f1", 1, "selected"), ctx(7))])
    execute(store, [(job.CompleteJob("j1", chosen, "roc_auc", 0.80, 0.81 if chosen else 0.80, "{}"), ctx(8))])


def render(table: object) -> str:
    out = io.StringIO()
    Console(file=out, width=200).print(table)
    return out.getvalue()


def test_the_result_names_the_finalists_not_selected_closest_first(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    finished_job(store, tmp_path, select_first=False)
    execute(store, [(job.RecordExperiment("j1", "1", "run-1", 0), ctx(15))])  # tracking, after the job
    result = export_job(store, "j1", tmp_path / "out")
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == json.loads(json.dumps(result, default=str))
    names = [f["name"] for f in result["finalists_not_selected"]]
    assert names == ["diff_a_b", "ratio_a_b"]  # lowest p first; log_c never reached the final test
    assert result["warnings"] == ["--entity cid: has 2 repeated keys"]  # not only in the live trace
    assert result["wall_seconds"] == 8.0  # JobRequested at 0 s to JobCompleted at 8 s
    text = render(finalists_table(result)) + render(results_table(result, []))
    assert "no feature helps" in text and "closest calls" in text
    assert WHY[:30] in text and "ratio_a_b" in text and "log_c" not in text


def test_a_selected_finalist_is_not_listed_as_a_closest_call(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    finished_job(store, tmp_path, select_first=True)
    result = export_job(store, "j1", tmp_path / "out")
    assert [f["name"] for f in result["finalists_not_selected"]] == ["ratio_a_b"]
    assert [f["name"] for f in json.loads((tmp_path / "out" / "features.json").read_text())] == ["diff_a_b"]
