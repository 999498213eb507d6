"""The benchmark report: side results (floor) and re-rendering without losing the run's header."""

from __future__ import annotations

import json
from pathlib import Path

from bench import protocol
from bench.report import side_results
from bench.run import main as bench_main


def test_the_floor_table_compares_a_one_candidate_job_with_a_quarter_of_openfe(tmp_path: Path) -> None:
    row = {
        "dataset": "concrete",
        "seeds": [0, 1],
        "floor_wall_s": 3.28,
        "floor_cpu_s": 5.19,
        "afep_wall_s": 7.4,
        "openfe_wall_s": 9.44,
        "quarter_openfe_s": 2.36,
    }
    credit = {
        **row,
        "dataset": "credit_data",
        "floor_wall_s": 1.2,
        "afep_wall_s": 2.5,
        "openfe_wall_s": 10.8,
        "quarter_openfe_s": 2.7,
    }
    slower = {**credit, "dataset": "ames", "afep_wall_s": 4.0}
    rows = [row, credit, slower]
    floor = {"command": "python -m bench.floor", "machine": {"cpu": "Test CPU, 2 logical cores"}, "rows": rows}
    (tmp_path / "floor.json").write_text(json.dumps(floor))
    text = "\n".join(side_results(tmp_path))
    assert "## Least time of a job" in text
    assert "| concrete | 3.28 | 5.19 | 7.40 | 9.44 | 2.36 | 0.78 | out of reach: the least job is slower |" in text
    assert "| credit_data | 1.20 | 5.19 | 2.50 | 10.80 | 2.70 | 0.23 | met |" in text
    assert "| ames | 1.20 | 5.19 | 4.00 | 10.80 | 2.70 | 0.37 | not met, not ruled out |" in text
    assert "| **total** (6 runs) | 11.4 | 31.1 | 27.8 | 62.1 | — | 0.448 (least job: **0.183**) | — |" in text
    assert "Test CPU" in text
    assert "may come from another hour" in text  # no row says OpenFE ran alongside

    for r in rows:
        r["openfe_source"] = "measured alongside"
    (tmp_path / "floor.json").write_text(json.dumps(floor))
    assert "same machine speed" in "\n".join(side_results(tmp_path))


def test_render_only_keeps_the_command_and_sources_of_the_run_that_made_the_records(tmp_path: Path) -> None:
    record = {
        "engine": "raw",
        "dataset": "concrete",
        "seed": 0,
        "task": "regression",
        "metric": "rmse",
        "protocol": protocol.PROTOCOL,
        "created_at": "2026-11-26T10:00:00+00:00",
        "n_train": 824,
        "n_test": 206,
        "n_raw_columns": 8,
        "status": "ok",
        "score": 4.9,
        "best_iteration": 100,
    }
    (tmp_path / "raw.jsonl").write_text(json.dumps(record) + "\n")
    machine = {
        "cpu": "Run CPU, 2 logical cores",
        "memory": "1 GiB",
        "os": "x",
        "python": "3",
        "packages": "",
        "git": "abc",
    }
    last = {"started": "2026-11-26T09:00:00+00:00", "command": "make bench (the real run)", "machine": machine}
    (tmp_path / "last_run.json").write_text(json.dumps({**last, "fresh": [["raw", "concrete", 0]]}))
    doc = tmp_path / "doc.md"
    argv = ["--datasets", "concrete", "--seeds", "0", "--engines", "afep", "--results", str(tmp_path)]
    bench_main([*argv, "--doc", str(doc), "--render-only"])
    text = doc.read_text()
    assert "make bench (the real run)" in text and "Run CPU" in text
    assert "--render-only" not in text.split("## Protocol")[0]
    # a render-only call does not overwrite what the last real run recorded
    assert json.loads((tmp_path / "last_run.json").read_text())["command"] == "make bench (the real run)"


def test_the_multiclass_check_reports_quality_per_table_and_every_claim(tmp_path: Path) -> None:
    claim = {
        "feature": "ratio_a_b", "claimed": 0.02, "ci_low": 0.01, "ci_high": 0.03, "p_claimed": 0.001,
        "realized": 0.035, "realized_se": 0.004, "inside_ci": False, "share_helps": 0.95, "realized_pct_of_raw": 0.04,
    }  # fmt: skip
    rows = [
        {"dataset": "t", "seed": 0, "status": "ok", "wall_s": 10.0, "raw_log_loss": 0.8, "afep_log_loss": 0.76,
         "rel_err_red": 0.05, "features": ["ratio_a_b"], "claims": [claim]},
        {"dataset": "t", "seed": 1, "status": "ok", "wall_s": 12.0, "raw_log_loss": 0.8, "afep_log_loss": 0.8,
         "rel_err_red": 0.0, "features": [], "claims": []},
        {"dataset": "t", "seed": 2, "status": "failed", "info": {}, "log_tail": ""},
    ]  # fmt: skip
    result = {
        "created_at": "now", "machine": {"cpu": "cpu"}, "seeds": [0, 1, 2], "splits": 20,
        "tables": {"t": "a table"}, "rows": rows,
    }  # fmt: skip
    (tmp_path / "multiclass.json").write_text(json.dumps(result))
    text = "\n".join(side_results(tmp_path))
    assert "| t | 0.8000 | 0.7800 | +2.50% | 1 / 0 | 1 in 2 jobs | 11.0 |" in text
    assert "Failed: t seed 2." in text
    assert "Claims: 0 of 1 selected features realized inside their claimed 95% CI" in text
    assert "| t | 0 | `ratio_a_b` | +0.0200 (+0.0100..+0.0300) | +0.0350 ± 0.0040 | no | 95% |" in text
