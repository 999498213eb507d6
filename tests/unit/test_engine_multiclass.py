"""Targets with three or more classes: softmax LightGBM, judged by multiclass log loss.

The same pipeline as binary targets (screen, shortlist, final confirmation with the
model a user trains), so the same promises: a planted interaction is selected and its
claim holds on fresh rows; pure noise and a permuted target give "no feature helps".
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import polars as pl

from processors.engine import evaluate_round, plan_folds, prepare_base
from processors.engine.report import RoundReport
from processors.engine.scoring import FitJob, fit_and_score, lift_of, metric_name, multiclass_log_loss
from processors.engine.screening import screen_candidates
from tests.protocol_model import fit_protocol_model, realized_lift

CLASSES = np.array(["high", "low", "mid"])


def _segments(n: int, seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    """Three classes cut from log(a/b) plus a little of c, 15% of labels drawn at random."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.uniform(1, 10, n), rng.uniform(1, 10, n), rng.normal(size=n)
    score = 1.5 * np.log(a / b) + 0.5 * c
    label = np.where(score < -0.5, "low", np.where(score < 0.6, "mid", "high"))
    label = np.where(rng.random(n) < 0.15, rng.choice(CLASSES, n), label)
    return pl.DataFrame({"a": a, "b": b, "c": c, "segment": label}), a / b


def _run(
    df: pl.DataFrame, cands: dict[str, np.ndarray], seed: int, progress: list[tuple[str, int, int]] | None = None
) -> RoundReport:
    base = prepare_base(df, "segment", "classification")
    plan = plan_folds(base.y, base.task, seed=seed)
    report = None if progress is None else lambda stage, done, total: progress.append((stage, done, total))
    return evaluate_round(base, plan, cands, {}, task=base.task, seed=seed, progress=report)


def test_log_loss_is_the_mean_negative_log_likelihood_and_lower_is_better() -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(50, 4)) * 3
    y = rng.integers(0, 4, 50).astype(np.float64)
    prob = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(prob[np.arange(50), y.astype(int)]))
    assert abs(multiclass_log_loss(y, raw) - expected) < 1e-12
    assert abs(multiclass_log_loss(y, raw + 1000.0) - expected) < 1e-9  # no overflow
    assert metric_name("multiclass") == "log_loss" and lift_of("multiclass", 0.9, 0.8) > 0


def test_a_target_with_three_classes_is_encoded_as_multiclass_and_two_stay_binary() -> None:
    df, _ = _segments(200, seed=1)
    base = prepare_base(df, "segment", "classification")
    assert base.task == "multiclass" and base.classes == ("high", "low", "mid") and base.positive_class is None
    assert set(np.unique(base.y)) == {0.0, 1.0, 2.0}
    assert (CLASSES[base.y.astype(int)] == df["segment"].to_numpy()).all()
    binary = prepare_base(df.with_columns(pl.col("segment") == "low"), "segment", "classification")
    assert binary.task == "classification" and binary.classes == () and binary.positive_class == "true"
    one_vs_rest = prepare_base(df, "segment", "classification", positive_class="low")
    assert one_vs_rest.task == "classification" and set(np.unique(one_vs_rest.y)) == {0.0, 1.0}


def test_a_fit_scores_every_class_and_screening_ranks_a_column_the_baseline_lacks_first() -> None:
    df, _ = _segments(900, seed=2)
    base = prepare_base(df.drop("c"), "segment", "classification")  # c, which shapes the classes, is held back
    plan = plan_folds(base.y, base.task, seed=2)
    train, valid = plan.splits[0]
    fit = fit_and_score(FitJob(base.x, base.y, train, valid, ()), "multiclass", seed=2)
    assert fit.raw_valid.shape == (valid.shape[0], 3) and 0 < fit.score < np.log(3)
    rng = np.random.default_rng(2)
    cands = {"c": df["c"].to_numpy(), **{f"noise{i}": rng.normal(size=df.height) for i in range(4)}}
    oof = np.zeros((df.height, 3))
    for s in plan.split_indices("screen"):
        tr, va = plan.splits[s]
        oof[va] = fit_and_score(FitJob(base.x, base.y, tr, va, ()), "multiclass", seed=2).raw_valid
    per_fit = {c: np.broadcast_to(v[:, None], (df.height, plan.n_fits)) for c, v in cands.items()}
    gains = screen_candidates(plan, "multiclass", base.y, oof, list(cands), per_fit)
    assert gains[0] > 0.03 and gains[0] > 5 * max(gains[1:]), gains


def test_a_planted_ratio_is_selected_its_claim_holds_on_fresh_rows_and_noise_is_not() -> None:
    df, ratio = _segments(900, seed=3)
    rng = np.random.default_rng(3)
    noise = {f"noise{i}": rng.normal(size=df.height) for i in range(5)}
    progress: list[tuple[str, int, int]] = []
    report = _run(df, {"a/b": ratio, **noise}, seed=3, progress=progress)
    assert report.metric == "log_loss" and report.final_score < report.baseline_score
    # the slow stages report as they go: the shortlist per candidate, the final confirmation per few fits
    stages = [stage for stage, _, _ in progress]
    assert stages.index("screen") < stages.index("confirm") < stages.index("shortlist") < stages.index("select")
    final = [(done, total) for stage, done, total in progress if stage == "select"]
    assert len(final) > 1 and final[-1] == (final[-1][1], final[-1][1]) and len(set(final)) == len(final)
    assert all(a[0] < b[0] for a, b in itertools.pairwise(final))
    claim = report.result("a/b")
    assert claim.selected and claim.tested_by == "final", claim.reason
    assert claim.reason.startswith("selected: log loss ") and " lower " in claim.reason
    assert report.newly_selected == ("a/b",)
    assert claim.lift is not None and claim.ci_low is not None and claim.ci_high is not None
    # as a user would: train on the job's rows (early stopping on an inner split), score fresh rows
    fresh, fresh_ratio = _segments(20_000, seed=4)
    x, fx = df.select("a", "b", "c").to_numpy(), fresh.select("a", "b", "c").to_numpy()
    y, fy = (np.searchsorted(CLASSES, t["segment"].to_numpy()).astype(np.float64) for t in (df, fresh))
    realized = realized_lift(_protocol_log_loss, x, y, fx, fy, ratio, fresh_ratio)
    assert claim.ci_low <= realized <= claim.ci_high, (realized, claim.reason)


def test_a_permuted_multiclass_target_selects_nothing() -> None:
    df, ratio = _segments(600, seed=5)
    permuted = df.with_columns(pl.Series("segment", np.random.default_rng(5).permutation(df["segment"].to_numpy())))
    rng = np.random.default_rng(6)
    report = _run(
        permuted, {"a/b": ratio, "a*b": df["a"].to_numpy() * df["b"].to_numpy(), "n": rng.normal(size=600)}, 5
    )
    assert report.newly_selected == () and report.verdict.startswith("no feature helps"), report.verdict


def _protocol_log_loss(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int
) -> float:
    model = fit_protocol_model(train_x, train_y, "multiclass", seed, n_classes=3)
    raw = model.predict(test_x, num_iteration=model.best_iteration, raw_score=True)
    return multiclass_log_loss(test_y, np.asarray(raw))


def test_a_final_confirmation_that_runs_past_the_deadline_finishes_and_says_by_how_much(monkeypatch) -> None:
    from processors.engine.trials import Trials

    df, ratio = _segments(600, seed=8)
    base = prepare_base(df, "segment", "classification")
    plan = plan_folds(base.y, base.task, seed=8)
    # the deadline has passed, but every stage before the final confirmation is let through
    monkeypatch.setattr(Trials, "out_of_time", lambda self: False)
    report = evaluate_round(base, plan, {"a/b": ratio}, {}, task=base.task, seed=8, deadline=time.monotonic() - 30)
    assert report.finalists == ("a/b",) and report.result("a/b").tested_by == "final"
    late = [n for n in report.notes if n.startswith("the final confirmation ended ")]
    assert late and "s after the evaluation's deadline" in late[0], report.notes
    assert int(late[0].split()[4]) >= 30
