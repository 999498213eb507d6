"""The engine's claims under the null and under a planted effect (issue 11), with real LightGBM.

A selection is a promise: the lift and 95% CI a job reports are for the model a user
trains (the external protocol's LightGBM), and a table with nothing to find gives
"no feature helps".
"""

from __future__ import annotations

import numpy as np
import polars as pl

from processors.engine import evaluate_round, plan_folds, prepare_base
from processors.engine.report import RoundReport
from tests.protocol_model import fit_protocol_model, realized_lift


def _ratio_table(n: int, seed: int, task: str) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(1, 10, n), rng.uniform(1, 10, n)
    signal = np.log(a / b)
    if task == "regression":
        y: np.ndarray = signal + rng.normal(0, 0.05, n)
    else:
        y = (np.sin(4 * signal) + rng.normal(0, 0.3, n) > 0).astype(int)
    return pl.DataFrame({"a": a, "b": b, "c": rng.normal(size=n), "y": y})


def _real_candidates(df: pl.DataFrame) -> dict[str, np.ndarray]:
    a, b, c = (df[k].to_numpy() for k in ("a", "b", "c"))
    return {"a/b": a / b, "a*b": a * b, "a-b": a - b, "a*c": a * c, "b/c": b / np.where(c == 0, 1e-9, c)}


def _run(df: pl.DataFrame, task: str, cands: dict[str, np.ndarray], seed: int) -> RoundReport:
    base = prepare_base(df, "y", task, "1" if task == "classification" else None)
    plan = plan_folds(base.y, task, seed=seed)
    return evaluate_round(base, plan, cands, {}, task=task, seed=seed)


def test_permuted_target_selects_nothing_and_says_so() -> None:
    df = _ratio_table(600, seed=11, task="regression")
    permuted = df.with_columns(pl.Series("y", np.random.default_rng(3).permutation(df["y"].to_numpy())))
    report = _run(permuted, "regression", _real_candidates(permuted), seed=11)
    assert report.newly_selected == ()
    assert report.verdict.startswith("no feature helps"), report.verdict
    assert all(not c.selected for c in report.candidates)


def test_pure_noise_mixed_into_real_candidates_is_never_selected() -> None:
    df = _ratio_table(1000, seed=12, task="classification")
    rng = np.random.default_rng(99)
    cands = {**_real_candidates(df), **{f"noise{i}": rng.normal(size=df.height) for i in range(30)}}
    report = _run(df, "classification", cands, seed=12)
    assert not [c for c in report.newly_selected if c.startswith("noise")], report.newly_selected
    assert "a/b" in report.newly_selected, report.result("a/b").reason


def test_reasons_name_the_test_and_never_claim_that_something_holds() -> None:
    df = _ratio_table(600, seed=13, task="regression")
    rng = np.random.default_rng(5)
    cands = {**_real_candidates(df), **{f"noise{i}": rng.normal(size=df.height) for i in range(10)}}
    report = _run(df, "regression", cands, seed=13)
    assert report.finalists
    for c in report.candidates:
        assert "holds" not in c.reason, c.reason
        if c.tested_by == "final":
            assert "corrected repeated cross-validation t-test (Nadeau-Bengio, Bouckaert-Frank)" in c.reason, c.reason
            assert "step 0.05" in c.reason, c.reason
            assert c.reason.startswith("selected:" if c.selected else "not selected:"), c.reason
            assert c.p_adjusted is not None and c.p_adjusted >= (c.p_value or 0.0)
        elif c.tested_by == "shortlist":
            assert c.reason.startswith("not selected: shortlist") and "internal cross-validation" in c.reason
            assert not c.selected


def _interaction(n: int, rng: np.random.Generator) -> tuple[pl.DataFrame, np.ndarray]:
    x1, x2, x3 = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.normal(size=n)
    y = 3 * x1 * x2 + 0.5 * x3 + rng.normal(0, 0.5, n)
    return pl.DataFrame({"x1": x1, "x2": x2, "x3": x3, "y": y}), x1 * x2


def _protocol_rmse(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int
) -> float:
    model = fit_protocol_model(train_x, train_y, "regression", seed)
    pred = model.predict(test_x, num_iteration=model.best_iteration)
    return float(np.sqrt(np.mean((test_y - pred) ** 2)))


def test_a_planted_interaction_is_selected_and_its_lift_on_fresh_rows_lies_in_its_ci() -> None:
    rng = np.random.default_rng(21)
    df, product = _interaction(800, rng)
    noise = {f"noise{i}": rng.normal(size=df.height) for i in range(5)}
    report = _run(df, "regression", {"x1*x2": product, "x1+x2": df["x1"].to_numpy() + df["x2"].to_numpy(), **noise}, 21)
    claim = report.result("x1*x2")
    assert claim.selected and claim.tested_by == "final", claim.reason
    assert claim.lift is not None and claim.ci_low is not None and claim.ci_high is not None
    # as a user would: train on the job's rows (early stopping on an inner split), score fresh rows
    fresh, fresh_product = _interaction(20_000, rng)
    x = df.select("x1", "x2", "x3").to_numpy()
    fx = fresh.select("x1", "x2", "x3").to_numpy()
    y, fy = df["y"].to_numpy(), fresh["y"].to_numpy()
    realized = realized_lift(_protocol_rmse, x, y, fx, fy, product, fresh_product)
    assert claim.ci_low <= realized <= claim.ci_high, (realized, claim.reason)
