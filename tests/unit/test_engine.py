"""Engine behaviour on small synthetic tables, with real LightGBM."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

from processors.engine import evaluate_round, fit_baseline, plan_folds, prepare_base
from processors.engine.statistics import benjamini_hochberg, corrected_paired_test
from processors.engine.trials import Trials


def _table(task: str, n: int = 800, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.uniform(1, 10, n)
    b = rng.uniform(1, 10, n)
    signal = np.log(a / b)
    if task == "regression":
        y: np.ndarray = signal + rng.normal(0, 0.05, n)
    else:
        y = (np.sin(4 * signal) + rng.normal(0, 0.3, n) > 0).astype(int)
    return pl.DataFrame({"a": a, "b": b, "n1": rng.normal(size=n), "y": y})


def _candidates(df: pl.DataFrame, n_fits: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ratio = (df["a"] / df["b"]).to_numpy()
    out = {"a/b": np.repeat(ratio[:, None], n_fits, axis=1)}
    for i in range(4):
        out[f"noise{i}"] = np.repeat(rng.normal(size=(df.height, 1)), n_fits, axis=1)
    return out


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_ratio_is_selected_and_noise_is_not(task: str) -> None:
    df = _table(task, n=800 if task == "regression" else 1000)
    base = prepare_base(df, "y", task, "1" if task == "classification" else None)
    plan = plan_folds(base.y, task, seed=0)
    report = evaluate_round(base, plan, _candidates(df, plan.n_fits), {}, task=task, seed=0)
    ratio = report.result("a/b")
    assert ratio.selected, ratio.reason
    assert ratio.p_value is not None and ratio.p_value < 0.05
    assert ratio.lift is not None and ratio.lift > 0
    assert ratio.ci_low is not None and ratio.ci_low > 0
    assert ratio.importance_rank is not None
    assert report.newly_selected == ("a/b",)
    assert not any(report.result(f"noise{i}").selected for i in range(4))
    assert report.metric == ("roc_auc" if task == "classification" else "rmse")
    if task == "regression":
        assert report.final_score < report.baseline_score
    else:
        assert report.final_score > report.baseline_score


def test_plan_keeps_guard_rows_out_of_search_splits() -> None:
    y = np.random.default_rng(0).integers(0, 2, 400).astype(float)
    plan = plan_folds(y, "classification", seed=3)
    guard = plan.guard_rows
    assert guard is not None and guard.size
    for i in (*plan.split_indices("screen"), *plan.split_indices("confirm")):
        train_idx, valid_idx = plan.splits[i]
        assert not np.intersect1d(guard, np.concatenate([train_idx, valid_idx])).size
        assert plan.fits[plan.fit_index_for_split(i)][train_idx].all()
        assert not plan.fits[plan.fit_index_for_split(i)][valid_idx].any()
    assert plan.fits[plan.full_fit_index].all()
    assert len(plan.fits) == len(plan.splits) + 1
    # final splits: 2 x K-fold of all rows, early-stopping rows inside the training part, never tested on
    for i in plan.split_indices("final"):
        train_idx, test_idx = plan.splits[i]
        stop = plan.stop_rows(i)
        assert stop is not None and np.isin(stop, train_idx).all() and not np.isin(stop, test_idx).any()
        assert len(train_idx) + len(test_idx) == plan.n_rows
        assert np.intersect1d(test_idx, guard).size  # rows screening never saw are tested
        assert plan.fits[plan.fit_index_for_split(i)][train_idx].all()


def test_final_splits_are_repeated_k_fold_cross_validation() -> None:
    from processors.engine.folds import FINAL_FOLDS, FINAL_REPEATS

    y = np.random.default_rng(1).integers(0, 2, 500)
    plan = plan_folds(y, "classification", seed=2)
    final = plan.split_indices("final")
    assert len(final) == FINAL_FOLDS * FINAL_REPEATS and plan.final_fraction == pytest.approx(1 / FINAL_FOLDS)
    for r in range(FINAL_REPEATS):
        tests = [plan.splits[i][1] for i in final[r * FINAL_FOLDS : (r + 1) * FINAL_FOLDS]]
        # each repeat tests every row exactly once, stratified: every fold holds both classes
        assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(plan.n_rows))
        assert all(0 < y[t].mean() < 1 for t in tests)
    # a new shuffle per repeat
    assert not np.array_equal(plan.splits[final[0]][1], plan.splits[final[FINAL_FOLDS]][1])


def test_a_rare_class_gets_fewer_final_folds() -> None:
    y = np.zeros(300, dtype=int)
    y[:9] = 1  # 9 positives: 4 folds of 2+ positives each
    plan = plan_folds(y, "classification", seed=0)
    final = plan.split_indices("final")
    assert plan.final_fraction == pytest.approx(1 / 4) and len(final) == 8
    assert all(y[plan.splits[i][1]].sum() >= 2 for i in final)


def test_each_split_uses_its_own_fit_column() -> None:
    df = _table("regression", n=400)
    base = prepare_base(df, "y", "regression")
    plan = plan_folds(base.y, "regression", seed=0)
    marker = np.tile(np.arange(plan.n_fits, dtype=np.float64), (plan.n_rows, 1))
    trials = Trials(base, plan, {"m": marker}, "regression", 0, None)
    for i in range(len(plan.splits)):
        request = trials.request((("m",), i))
        assert request.extra is not None
        assert (request.extra[:, -1] == plan.fit_index_for_split(i)).all()
        stop = plan.stop_rows(i)
        expected = plan.splits[i][0] if stop is None else np.setdiff1d(plan.splits[i][0], stop)
        assert (request.train_idx == expected).all()


def test_fold_fitted_candidate_is_judged_on_its_fold_columns() -> None:
    # Useful in every split column, pure noise in the all-rows column: it can only be
    # selected if each split reads its own column.
    df = _table("regression")
    base = prepare_base(df, "y", "regression")
    plan = plan_folds(base.y, "regression", seed=0)
    ratio = (df["a"] / df["b"]).to_numpy()
    values = np.repeat(ratio[:, None], plan.n_fits, axis=1)
    values[:, plan.full_fit_index] = np.random.default_rng(5).normal(size=plan.n_rows)
    report = evaluate_round(base, plan, {"fold_ratio": values}, {}, task="regression", seed=0)
    assert report.result("fold_ratio").selected, report.result("fold_ratio").reason


def test_deadline_in_the_past_still_returns_a_report() -> None:
    df = _table("regression", n=300)
    base = prepare_base(df, "y", "regression")
    plan = plan_folds(base.y, "regression", seed=0)
    report = evaluate_round(
        base, plan, _candidates(df, plan.n_fits), {}, task="regression", seed=0, deadline=time.monotonic() - 1
    )
    assert report.newly_selected == ()
    assert np.isfinite(report.baseline_score)
    assert report.final_score == report.baseline_score
    assert all("deadline" in c.reason for c in report.candidates)
    assert report.notes


def test_same_seed_same_report() -> None:
    df = _table("classification", n=400)
    base = prepare_base(df, "y", "classification", "1")
    plan = plan_folds(base.y, "classification", seed=7)
    cands = _candidates(df, plan.n_fits)
    first = evaluate_round(base, plan, cands, {}, task="classification", seed=7)
    second = evaluate_round(base, plan, cands, {}, task="classification", seed=7)
    assert first.candidates == second.candidates
    assert first.baseline_fold_scores == second.baseline_fold_scores
    assert first.newly_selected == second.newly_selected


def test_baseline_fitted_ahead_gives_the_same_report() -> None:
    df = _table("classification", n=400)
    base = prepare_base(df, "y", "classification", "1")
    plan = plan_folds(base.y, "classification", seed=7)
    cands = _candidates(df, plan.n_fits)
    cache: dict = {}
    ahead = [s for s, role in enumerate(plan.roles) if role != "final"]
    assert fit_baseline(base, plan, task="classification", seed=7, fit_cache=cache) == len(ahead)
    assert set(cache) == {((), s) for s in ahead}
    ahead = evaluate_round(base, plan, cands, {}, task="classification", seed=7, fit_cache=cache)
    cold = evaluate_round(base, plan, cands, {}, task="classification", seed=7)
    assert ahead.candidates == cold.candidates
    assert ahead.baseline_fold_scores == cold.baseline_fold_scores
    assert fit_baseline(base, plan, task="classification", seed=7, fit_cache=cache) == 0  # all cached


def test_baseline_fitting_stops_when_asked() -> None:
    import threading

    df = _table("regression", n=300)
    base = prepare_base(df, "y", "regression")
    plan = plan_folds(base.y, "regression", seed=0)
    stop = threading.Event()
    stop.set()
    cache: dict = {}
    assert fit_baseline(base, plan, task="regression", seed=0, fit_cache=cache, stop=stop) == 0
    assert cache == {}


def test_fits_run_in_background_land_in_the_cache_and_failures_resurface_in_the_caller() -> None:
    df = _table("regression", n=300)
    base = prepare_base(df, "y", "regression")
    plan = plan_folds(base.y, "regression", seed=0)
    cands = _candidates(df, plan.n_fits)
    trials = Trials(base, plan, dict(cands), "regression", 0, None)
    keys = [(("a/b",), s) for s in plan.split_indices("screen")]
    trials.run_in_background(keys).join()
    assert all(k in trials.results for k in keys) and trials.n_fits == len(keys)
    bad = [(("no_such_candidate",), 0)]
    trials.run_in_background(bad).join()  # swallowed there ...
    assert bad[0] not in trials.results
    with pytest.raises(KeyError):  # ... and raised by the caller's own run
        trials.run(bad)


def test_selected_features_form_the_next_baseline() -> None:
    df = _table("regression", n=400)
    base = prepare_base(df, "y", "regression")
    plan = plan_folds(base.y, "regression", seed=0)
    cands = _candidates(df, plan.n_fits)
    report = evaluate_round(base, plan, {"noise0": cands["noise0"]}, {"a/b": cands["a/b"]}, task="regression", seed=0)
    assert report.newly_selected == ()
    assert report.baseline_score < prepare_base(df, "y", "regression").y.std()


def test_corrected_test_and_bh() -> None:
    test = corrected_paired_test([0.01] * 5 + [0.012] * 5, valid_fraction=0.2)
    assert test.p_value < 0.001 and test.ci_low > 0
    flat = corrected_paired_test([0.01, -0.01] * 5, valid_fraction=0.2)
    assert flat.p_value == pytest.approx(1.0)  # two-sided: no evidence either way
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.5])
    assert q.tolist() == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])


def _lazy(values: np.ndarray, plan: object) -> np.ndarray:
    """What the execution stage stores for a fitted candidate: eager columns only."""
    out = np.full(values.shape, np.nan)
    eager = list(plan.eager_fits)  # type: ignore[attr-defined]
    out[:, eager] = values[:, eager]
    return out


def test_partial_candidates_are_completed_before_confirmation_with_identical_results() -> None:
    df = _table("regression", n=500)
    base = prepare_base(df, "y", "regression")
    plan = plan_folds(base.y, "regression", seed=0)
    full = _candidates(df, plan.n_fits)
    full["a/b"] = full["a/b"] + np.arange(plan.n_fits) * 1e-9  # a distinct value per fit column
    asked: list[list[str]] = []

    def complete(ids: list[str]) -> dict[str, np.ndarray]:
        asked.append(list(ids))
        return {c: full[c] for c in ids}

    lazy = {c: _lazy(v, plan) for c, v in full.items()}
    eager_report = evaluate_round(base, plan, full, {}, task="regression", seed=0)
    lazy_report = evaluate_round(base, plan, lazy, {}, task="regression", seed=0, partial=set(lazy), complete=complete)
    assert lazy_report.candidates == eager_report.candidates
    assert lazy_report.newly_selected == eager_report.newly_selected == ("a/b",)
    assert asked and "a/b" in asked[0] and len(asked[0]) <= 12  # only candidates that reach confirmation


def test_a_candidate_that_cannot_be_completed_is_reported_not_confirmed() -> None:
    df = _table("regression", n=400)
    base = prepare_base(df, "y", "regression")
    plan = plan_folds(base.y, "regression", seed=0)
    full = _candidates(df, plan.n_fits)
    lazy = {"a/b": _lazy(full["a/b"], plan)}
    report = evaluate_round(base, plan, lazy, {}, task="regression", seed=0, partial={"a/b"}, complete=lambda ids: {})
    assert report.newly_selected == ()
    assert "could not be computed on the confirmation folds" in report.result("a/b").reason
    with pytest.raises(ValueError, match="complete"):
        evaluate_round(base, plan, lazy, {}, task="regression", seed=0, partial={"a/b"})


def test_a_lazy_fold_column_is_never_read_before_completion() -> None:
    df = _table("regression", n=300)
    base = prepare_base(df, "y", "regression")
    plan = plan_folds(base.y, "regression", seed=0)
    lazy = _lazy(_candidates(df, plan.n_fits)["a/b"], plan)
    trials = Trials(base, plan, {"a/b": lazy}, "regression", 0, None, partial={"a/b"})
    assert trials.request((("a/b",), plan.split_indices("screen")[0])).extra is not None
    with pytest.raises(RuntimeError, match="never computed"):
        trials.request((("a/b",), plan.split_indices("confirm")[0]))


def test_candidate_of_the_wrong_shape_is_refused() -> None:
    from processors.engine import CandidateShapeError

    df = _table("regression", n=300)
    base = prepare_base(df, "y", "regression")
    plan = plan_folds(base.y, "regression", seed=0)
    for bad in (np.zeros(299), np.zeros((300, plan.n_fits - 1))):
        with pytest.raises(CandidateShapeError, match="expected"):
            evaluate_round(base, plan, {"bad": bad}, {}, task="regression", seed=0)


def test_student_t_matches_scipy() -> None:
    from scipy import stats

    from processors.engine.statistics import t_critical, t_two_sided_p

    for df in (1, 2, 4, 9, 19, 49, 200):
        assert t_critical(df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-9)
        for t in (0.0, 0.2, 1.0, 2.1, 4.0, 12.0):
            assert t_two_sided_p(t, df) == pytest.approx(2 * stats.t.sf(t, df), rel=1e-10, abs=1e-300)


def test_step_grows_only_for_baselines_that_need_many_rounds() -> None:
    from processors.engine.scoring import LEARNING_RATE, MAX_LEARNING_RATE, step_for

    assert step_for(12) == step_for(100) == LEARNING_RATE
    assert step_for(142) == 0.15
    assert step_for(206) == 0.2
    assert step_for(5000) == MAX_LEARNING_RATE


def test_a_smooth_target_gets_a_larger_step_and_a_noisy_one_keeps_the_default() -> None:
    import threading

    from processors.engine.evaluation import calibrate_step
    from processors.engine.scoring import LEARNING_RATE

    smooth = _table("regression", n=600)  # log(a/b) plus little noise: hundreds of rounds at 0.1
    base = prepare_base(smooth, "y", "regression")
    plan = plan_folds(base.y, "regression", seed=0)
    cache: dict = {}
    step = calibrate_step(base, plan, task="regression", seed=0, fit_cache=cache)
    assert step is not None
    assert step.baseline_rounds > 100 and step.learning_rate > LEARNING_RATE
    assert set(cache) == {((), s) for s in plan.split_indices("screen")}  # the pilot fits, at the default step

    noisy = _table("classification", n=600)
    base = prepare_base(noisy, "y", "classification", "1")
    plan = plan_folds(base.y, "classification", seed=0)
    step = calibrate_step(base, plan, task="classification", seed=0, fit_cache={})
    assert step is not None and step.learning_rate == LEARNING_RATE

    stop = threading.Event()
    stop.set()
    assert calibrate_step(base, plan, task="classification", seed=0, fit_cache={}, stop=stop) is None


def test_the_step_reaches_every_fit_of_a_round() -> None:
    df = _table("regression", n=600)
    base = prepare_base(df, "y", "regression")
    plan = plan_folds(base.y, "regression", seed=0)
    cands = _candidates(df, plan.n_fits)
    coarse: dict = {}
    evaluate_round(base, plan, cands, {}, task="regression", seed=0, fit_cache=coarse, learning_rate=0.3)
    fine: dict = {}
    evaluate_round(base, plan, cands, {}, task="regression", seed=0, fit_cache=fine, learning_rate=0.1)
    final = set(plan.split_indices("final"))
    # the final confirmation fits the protocol's model, whatever the job's step
    assert all(coarse[k].score == fine[k].score for k in set(coarse) & set(fine) if k[1] in final)
    shared = sorted((k for k in set(coarse) & set(fine) if k[1] not in final), key=str)
    assert shared
    # every fit differs from its twin at the default step, and early stopping comes much sooner
    assert all(coarse[k].score != fine[k].score for k in shared)
    assert np.median([coarse[k].best_iteration / fine[k].best_iteration for k in shared]) < 0.6
