"""The `afep` command as a user runs it: real processes, real SQLite store, real LightGBM."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ops.demo_data import synthetic_credit as credit_table
from processors.engine.evaluation import FINAL_ALPHA
from tests.tables import customers

REPO = Path(__file__).resolve().parents[2]
AFEP = [sys.executable, "-m", "gateway.cli"]
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO)}


def afep(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AFEP, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def events(data_dir: Path) -> list[tuple[str, str]]:
    """(event type, stream) in log order; empty while the store is still being created."""
    with sqlite3.connect(data_dir / "events.db") as conn:
        try:
            rows = conn.execute("SELECT topic, originator_id FROM stored_events ORDER BY rowid").fetchall()
        except sqlite3.OperationalError:  # the file exists but the running process has not made the table yet
            return []
    return [(t, s) for t, s in rows]


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    path = tmp_path / "credit.csv"
    credit_table().write_csv(path)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv", "--target", "y"], "file not found: missing.csv"),
        (["sqlite:///nowhere.db", "--table", "t", "--target", "y"], "database file not found"),
        (["sqlite:///nowhere.db", "--target", "y"], "name the table with --table"),
        (["{csv}", "--target", "Status", "--task", "sideways"], "--task must be one of"),
        (["{csv}", "--target", "Status", "--apply", "sqlite:///x.db"], "--apply takes CSV or Parquet files"),
        (["{csv}", "--target", "Status", "--seed", str(2**40)], "--seed must be between 0 and"),
        (["{csv}", "--target", "Status", "--apply", "nowhere.parquet"], "file not found: nowhere.parquet"),
        (["{csv}", "--target", "Status", "--apply", "{csv}", "--apply", "{csv}"], "would both be written to"),
        # the command line's own usage errors: one line and exit 2 too, never a traceback
        (["{csv}"], "Missing option '--target'"),
        (["{csv}", "--target", "Status", "--bogus"], "No such option: --bogus"),
        (["{csv}", "--target", "Status", "--seed", "abc"], "Invalid value for '--seed'"),
        (["{csv}", "--target", "Status", "--out", "{csv}"], "is a file, not a folder"),
        (["{csv}", "--target", "Status", "--out", "{csv}/results"], "is a file, not a folder"),
    ],
)
def test_bad_input_before_a_job_starts(tmp_path: Path, csv: Path, args: list[str], message: str) -> None:
    data_dir = tmp_path / "state"
    result = afep("run", *[a.format(csv=csv) for a in args], "--data-dir", str(data_dir), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (data_dir / "events.db").exists() or events(data_dir) == []


@pytest.mark.parametrize(
    ("frame", "target", "task", "message"),
    [
        (credit_table(50), "Stauts", "auto", "Status"),  # suggests the closest name
        (credit_table(50).with_columns(pl.lit("bad").alias("Status")), "Status", "auto", "single value"),
        (
            credit_table(50).with_columns(
                pl.when(pl.col("Age") > 60).then(None).otherwise(pl.col("Status")).alias("Status")
            ),
            "Status",
            "auto",
            "null",
        ),
        (credit_table(50).head(0), "Status", "auto", "empty"),
        (credit_table(50), "Status", "regression", "regress"),
    ],
)
def test_bad_input_ends_the_job_with_one_line_and_a_job_failed(
    tmp_path: Path, frame: pl.DataFrame, target: str, task: str, message: str
) -> None:
    path = tmp_path / "data.parquet"
    frame.write_parquet(path)
    data_dir = tmp_path / "state"
    result = afep("run", str(path), "--target", target, "--task", task, "--data-dir", str(data_dir), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and message.lower() in line.lower(), line
    topics = [t for t, _ in events(data_dir) if t not in ("AgentTraced", "ProgressReported")]
    assert topics == ["JobRequested", "JobFailed"]


def test_a_table_left_with_no_feature_column_says_so_and_keep_vouches_for_a_suspect(tmp_path: Path) -> None:
    status = credit_table(300)["Status"]
    noise = np.random.default_rng(0).normal(0, 0.01, status.len())
    path = tmp_path / "leaky.parquet"
    pl.DataFrame({"paid": (status == "good").cast(pl.Float64) + noise, "Status": status}).write_parquet(path)
    data_dir = tmp_path / "state"
    result = afep("run", str(path), "--target", "Status", "--data-dir", str(data_dir), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "LightGBM" not in result.stdout + result.stderr, line
    assert "every column besides the target was excluded: paid (leakage suspect" in line
    assert "keep it with --keep COLUMN" in line
    kept = afep(
        "run", str(path), "--target", "Status", "--keep", "paid", "--out", str(tmp_path / "out"),
        "--data-dir", str(tmp_path / "kept"), cwd=tmp_path,
    )  # fmt: skip
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert json.loads((tmp_path / "out" / "result.json").read_text())["status"] == "completed"


def test_a_four_row_csv_ends_the_job_with_one_line_saying_how_many_rows_are_needed(tmp_path: Path) -> None:
    path = tmp_path / "tiny.csv"
    path.write_text("income,debt,y\n100,10,0\n200,90,1\n150,20,0\n120,100,1\n")
    data_dir = tmp_path / "state"
    result = afep("run", str(path), "--target", "y", "--data-dir", str(data_dir), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "the table has 4 rows; AFEP needs at least 50 (and 10 of each class) to test features — add rows" in line
    assert "LightGBM" not in result.stdout + result.stderr
    topics = [t for t, _ in events(data_dir) if t not in ("AgentTraced", "ProgressReported")]
    assert topics == ["JobRequested", "JobFailed"]


@pytest.mark.slow
def test_a_target_with_three_classes_runs_as_multiclass_and_its_features_apply(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 1200
    a, b, c = rng.uniform(1, 10, n), rng.uniform(1, 10, n), rng.normal(size=n)
    score = 1.5 * np.log(a / b) + 0.5 * c
    segment = np.where(score < -0.5, "low", np.where(score < 0.6, "mid", "high"))
    segment = np.where(rng.random(n) < 0.15, rng.choice(["low", "mid", "high"], n), segment)
    pl.DataFrame({"a": a, "b": b, "c": c, "segment": segment}).write_csv(tmp_path / "segments.csv")
    pl.DataFrame({"a": a[:50], "b": b[:50], "c": c[:50]}).write_csv(tmp_path / "new.csv")
    data_dir, out = tmp_path / "state", tmp_path / "out"
    env_args = ("--budget", "60", "--out", str(out), "--data-dir", str(data_dir), "--quiet")
    run = afep("run", str(tmp_path / "segments.csv"), "--target", "segment", *env_args, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((out / "result.json").read_text())
    features = json.loads((out / "features.json").read_text())
    assert (result["status"], result["task"], result["metric"]) == ("completed", "classification", "log_loss")
    assert result["classes"] == ["high", "low", "mid"] and result["positive_class"] is None
    assert result["final_score"] < result["baseline_score"] < np.log(3)  # lower is better
    assert any({"a", "b"} <= set(f["source_columns"]) for f in features), features
    assert all(f["lift"] > 0 and "log loss" in f["selection_reason"] for f in features)
    applied = afep(
        "apply", str(out), str(tmp_path / "new.csv"), "--out", str(tmp_path / "scored.parquet"), cwd=tmp_path
    )
    assert applied.returncode == 0, applied.stderr
    assert all(f["name"] in pl.read_parquet(tmp_path / "scored.parquet").columns for f in features)


@pytest.mark.slow
def test_run_apply_and_replay(tmp_path: Path) -> None:
    # the customers table (tests/tables.py): two planted ratios that confirm with the user's model
    csv = tmp_path / "customers.csv"
    customers().write_csv(csv)
    data_dir, out = tmp_path / "state", tmp_path / "out"
    new_rows = customers(300, seed=1).drop("Churn")
    new_rows.write_csv(tmp_path / "new.csv")
    run = afep(
        "run",
        str(csv),
        "--target",
        "Churn",
        "--budget",
        "60",
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
        "--apply",
        str(tmp_path / "new.csv"),
        "--quiet",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((out / "result.json").read_text())
    features = json.loads((out / "features.json").read_text())
    assert result["status"] == "completed" and result["task"] == "classification"
    assert result["positive_class"] == "yes" and result["classes"] == []
    assert result["counts"]["selected"] == len(features) >= 1
    best = features[0]
    planted = ({"Debt", "Income"}, {"Balance", "Tenure"})
    assert any(pair <= set(f["source_columns"]) for f in features for pair in planted)
    # the decision: one-sided p of "it helps" (Holm over the finalists) for the model a user trains,
    # at FINAL_ALPHA; the 95% CI is two-sided, so its lower end may be below zero
    assert all(f["p_value"] <= FINAL_ALPHA and f["ci"][0] < f["lift"] < f["ci"][1] and f["lift"] > 0 for f in features)
    assert all("corrected repeated cross-validation t-test" in f["selection_reason"] for f in features)
    assert all(len(f["code_hash"]) == 64 for f in features)
    # the closest calls: finalists tested like the selected ones, shown with why they were not selected
    for f in result["finalists_not_selected"]:
        assert f["name"] not in {g["name"] for g in features} and f["reason"].startswith("not selected:")
        assert f["name"] in run.stdout and f["ci"][0] <= f["lift"] <= f["ci"][1]
    # the evaluation's tool_call says which boosting step the job's fits used, and why
    with sqlite3.connect(data_dir / "events.db") as conn:
        calls = [
            json.loads(state)["e"]
            for (state,) in conn.execute("SELECT state FROM stored_events WHERE topic = 'AgentTraced'")
            if b"evaluate_round(" in state
        ]
    assert len(calls) == 1 and "boosting step" in calls[0]["message"]
    step = json.loads(calls[0]["data_json"])
    assert 0.1 <= step["learning_rate"] <= 0.3 and step["baseline_rounds"] > 0

    applied = afep(
        "apply", str(out), str(tmp_path / "new.csv"), "--out", str(tmp_path / "scored.parquet"), cwd=tmp_path
    )
    assert applied.returncode == 0, applied.stderr
    scored = pl.read_parquet(tmp_path / "scored.parquet")
    assert scored.height == 300 and all(f["name"] in scored.columns for f in features)
    # `run --apply` in the job's process gives exactly what a later `afep apply` gives
    assert pl.read_parquet(out / "applied" / "new.parquet").equals(scored)
    # applied again to its own output: the features are recomputed over the old columns, and it says so
    again = afep(
        "apply", str(out), str(tmp_path / "scored.parquet"), "--out", str(tmp_path / "x.parquet"), cwd=tmp_path
    )
    said = " ".join(again.stdout.split())  # the console wraps long lines
    assert again.returncode == 0 and "replaced by the job's feature" in said, again.stdout
    assert "selected no features" not in said and pl.read_parquet(tmp_path / "x.parquet").equals(scored)

    # exactly as evaluated: applied to the training rows, a feature equals its full-fit evaluation values
    train_applied = tmp_path / "train_scored.parquet"
    assert afep("apply", str(out), str(csv), "--out", str(train_applied), cwd=tmp_path).returncode == 0
    artifacts = list((data_dir / "artifacts" / result["job_id"]).glob(f"{best['feature_id']}.npy"))
    evaluated = np.load(artifacts[0])[:, -1]
    np.testing.assert_allclose(pl.read_parquet(train_applied)[best["name"]].to_numpy(), evaluated, rtol=1e-9)

    replay = afep("jobs", "replay", result["job_id"], "--data-dir", str(data_dir), "--no-traces", cwd=tmp_path)
    assert replay.returncode == 0
    order = [
        name
        for name in (
            "JobRequested",
            "SchemaAnalyzed",
            "DomainResearched",
            "RoundStarted",
            "FeatureProposed",
            "CodeGenerated",
            "CodeExecuted",
            "FeatureEvaluated",
            "FeatureSelected",
            "JobCompleted",
        )
    ]
    positions = [replay.stdout.find(name) for name in order]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), positions


@pytest.mark.slow
def test_killed_mid_job_resumes_without_duplicates(tmp_path: Path, csv: Path) -> None:
    data_dir, out = tmp_path / "state", tmp_path / "out"
    proc = subprocess.Popen(
        [
            *AFEP,
            "run",
            str(csv),
            "--target",
            "Status",
            "--budget",
            "90",
            "--out",
            str(out),
            "--data-dir",
            str(data_dir),
            "--quiet",
        ],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if (data_dir / "events.db").exists() and any(t == "CodeExecuted" for t, _ in events(data_dir)):
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = events(data_dir)
    assert any(t == "CodeExecuted" for t, _ in before) and not any(t == "JobCompleted" for t, _ in before)
    job_id = next(s for t, s in before if t == "JobRequested").removeprefix("job-")

    resumed = afep("jobs", "resume", job_id, "--out", str(out), "--data-dir", str(data_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = events(data_dir)
    assert [t for t, _ in after].count("JobCompleted") == 1
    for topic in ("FeatureProposed", "CodeExecuted", "FeatureSelected"):
        streams = [s for t, s in after if t == topic]
        assert len(streams) == len(set(streams)), f"duplicate {topic}"
    assert json.loads((out / "result.json").read_text())["status"] == "completed"


def test_ctrl_c_exits_130_with_the_resume_command_and_resume_finishes_the_job(tmp_path: Path, csv: Path) -> None:
    data_dir, out = tmp_path / "state", tmp_path / "out"
    args = [*AFEP, "run", str(csv), "--target", "Status", "--out", str(out), "--data-dir", str(data_dir), "-q"]
    proc = subprocess.Popen(
        args, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(t == "CodeGenerated" for t, _ in _events_if_any(data_dir)):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    _, err = proc.communicate(timeout=120)
    job_id = next(s for t, s in events(data_dir) if t == "JobRequested").removeprefix("job-")
    assert proc.returncode == 130, err
    resume = f"afep jobs resume {job_id} --data-dir {data_dir} --out {out}"
    assert err.strip() == f"afep: interrupted; `{resume}` continues it"
    resumed = afep("jobs", "resume", job_id, "--out", str(out), "--data-dir", str(data_dir), "-q", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads((out / "result.json").read_text())["status"] == "completed"
    (out / "result.json").unlink()
    again = afep("jobs", "resume", job_id, "--data-dir", str(data_dir), cwd=tmp_path)  # a finished job, no --out
    assert again.returncode == 0 and "is already completed" in again.stdout, again.stdout + again.stderr
    assert not (tmp_path / "out" / "result.json").exists()  # nothing overwritten


def test_one_failing_apply_table_does_not_skip_the_others(tmp_path: Path, csv: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    empty = afep("run", str(csv), "--target", "Status", "--apply", "empty.csv", "--data-dir", "e", cwd=tmp_path)
    assert empty.returncode == 2 and empty.stderr.strip() == (
        "afep: --apply empty.csv is an empty file; give a table with a header row"
    ), empty.stderr  # before the job: nothing recorded
    assert not (tmp_path / "e" / "events.db").exists() or events(tmp_path / "e") == []
    (tmp_path / "a_broken.parquet").write_text("not a parquet file")
    frame = pl.read_csv(csv)
    frame.write_csv(tmp_path / "b_whole.csv")
    out = tmp_path / "out"
    both = afep(
        "run", str(csv), "--target", "Status", "--out", str(out), "--apply", "a_broken.parquet",
        "--apply", "b_whole.csv", "--data-dir", "d", cwd=tmp_path,
    )  # fmt: skip
    assert both.returncode == 2, both.stdout + both.stderr
    lines = both.stderr.strip().splitlines()
    assert lines[0].startswith("afep: --apply a_broken.parquet: "), lines
    assert lines[1] == f"afep: the job's results are in {out}; 1 --apply table(s) failed, fix and " + (
        f"`afep apply {out} a_broken.parquet --out ...`"
    )
    assert json.loads((out / "result.json").read_text())["status"] == "completed"
    assert pl.read_parquet(out / "applied" / "b_whole.parquet").height == frame.height


def _events_if_any(data_dir: Path) -> list[tuple[str, str]]:
    return events(data_dir) if (data_dir / "events.db").exists() else []


def test_health_of_a_service_that_never_beat_exits_1(tmp_path: Path) -> None:
    result = afep("health", "relay", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1 and "relay" in result.stdout and "is not alive" in result.stdout


def test_keys_create_prints_a_key_once_and_rejects_unknown_roles(tmp_path: Path) -> None:
    ok = afep("keys", "create", "--tenant", "acme", "--role", "viewer", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip().startswith("afep_"), ok.stderr
    bad = afep("keys", "create", "--tenant", "acme", "--role", "boss", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert bad.returncode == 2 and "admin, data_scientist, viewer, api_client" in bad.stderr
    for tenant in ("", " acme "):  # not a tenant id: one line, exit 2, no key
        odd = afep("keys", "create", "--tenant", tenant, "--role", "admin", "--data-dir", str(tmp_path), cwd=tmp_path)
        assert odd.returncode == 2 and "is not a tenant id" in odd.stderr and not odd.stdout.strip(), odd
    assert ok.stdout.strip() not in (tmp_path / "readmodels.db").read_bytes().decode("latin-1")  # only a hash is kept


def test_resume_of_a_cancelled_job_says_how_to_rerun_it(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from commands.recorder_store import SqliteEventStore
    from commands.unit_of_work import execute
    from domain.envelope import Context
    from domain.job import CancelJob, RequestJob

    store = SqliteEventStore(tmp_path / "events.db")
    ctx = Context(at=datetime.now(UTC), correlation_id="j1")
    execute(store, [(RequestJob("j1", "p", "x.csv", None, "y", "auto", 60.0, 0, 1, 10), ctx)])
    execute(store, [(CancelJob("j1", "changed my mind"), ctx)])
    store.close()
    result = afep("jobs", "resume", "j1", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1
    assert "was cancelled (changed my mind)" in result.stderr and "--retry" in result.stderr


def test_a_second_round_keeps_the_jobs_step_and_starts_from_the_first_rounds_result(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(1, 10, 1000), rng.uniform(1, 10, 1000)  # a smooth target: ~290 rounds at 0.1
    smooth = pl.DataFrame({"a": a, "b": b, "c": rng.normal(size=1000), "y": np.log(a / b) + rng.normal(0, 0.01, 1000)})
    smooth.write_csv(tmp_path / "smooth.csv")
    data_dir = tmp_path / "state"
    run = afep(
        "run", str(tmp_path / "smooth.csv"), "--target", "y", "--task", "regression", "--max-rounds", "2",
        # a budget no busy machine spends in round 1: the planner starts round 2 only with time left
        "--budget", "900", "--out", str(tmp_path / "out"), "--data-dir", str(data_dir), "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    with sqlite3.connect(data_dir / "events.db") as conn:
        states = [json.loads(s) for (s,) in conn.execute("SELECT state FROM stored_events ORDER BY rowid")]
    rounds = [s["e"] for s in states if {"round", "baseline_score", "selected_ids", "evaluated"} <= set(s["e"])]
    steps = [
        json.loads(s["e"]["data_json"])["learning_rate"]
        for s in states
        if s["e"].get("message", "").startswith("evaluate_round(")
    ]
    assert [r["round"] for r in rounds] == [1, 2]
    # a smooth target: a larger step than 0.1, chosen once and kept for round 2
    assert len(steps) == 2 and steps[0] == steps[1] > 0.1
    # round 2's baseline is round 1's final set, scored with the same step on the same splits
    assert rounds[1]["baseline_score"] == rounds[0]["score"]


def test_features_list_of_unselected_statuses_needs_a_job(tmp_path: Path) -> None:
    listed = afep("features", "list", "--status", "rejected", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert listed.returncode == 2 and "add --job ID" in listed.stderr and len(listed.stderr.splitlines()) == 1
    missing = afep("features", "list", "--status", "approved", "--data-dir", str(tmp_path / "typo"), cwd=tmp_path)
    assert missing.returncode == 2 and "no AFEP jobs in" in missing.stderr and not (tmp_path / "typo").exists()
    for command in (("jobs", "list"), ("jobs", "show", "j1"), ("features", "serve-online", "f1", "--entity", "1")):
        typo = afep(*command, "--data-dir", str(tmp_path / "typo"), cwd=tmp_path)
        assert typo.returncode == 2 and "give the --data-dir your jobs ran with" in typo.stderr, (command, typo)
    assert not (tmp_path / "typo").exists()


def test_replay_shows_what_another_job_did_to_this_jobs_features(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from commands.recorder_store import SqliteEventStore
    from commands.unit_of_work import execute
    from domain import feature
    from domain.envelope import Context
    from domain.job import RequestJob

    store = SqliteEventStore(tmp_path / "events.db")
    mine, theirs = (Context(at=datetime.now(UTC), correlation_id=j) for j in ("j1", "j2"))
    execute(store, [(RequestJob("j1", "p", "x.csv", None, "y", "auto", 60.0, 0, 1, 10), mine)])
    execute(store, [(RequestJob("j2", "p", "x.csv", None, "y", "auto", 60.0, 0, 1, 10), theirs)])
    # an event about j1's feature that j2's work caused (as a re-registration after j2's approval is)
    proposal = feature.ProposeFeature("f1", "j1", 1, "ratio_a_b", "a/b", "why", "{}", ("a", "b"), 0.1, "ideation", ())
    execute(store, [(proposal, theirs)])
    store.close()
    replay = afep("jobs", "replay", "j1", "--data-dir", str(tmp_path), "--no-traces", cwd=tmp_path)
    assert replay.returncode == 0 and "FeatureProposed" in replay.stdout, replay.stdout
    assert replay.stdout.count("JobRequested") == 1  # j2's own events stay out
