"""The LightGBM fit pool: worker processes give exactly the in-process results, and survive crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from processors.engine.pool import WORKERS_ENV, FitPool, FitRequest, _Worker, default_workers


def _problem(task: str, n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[FitRequest]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    x[:, 3] = rng.integers(0, 5, size=n)  # categorical codes
    signal_ = x[:, 0] * x[:, 1] + (x[:, 3] == 2)
    y = (signal_ + rng.normal(scale=0.5, size=n) > 0.3).astype(float) if task == "classification" else signal_
    order = rng.permutation(n)
    requests = []
    for k in range(4):
        valid = np.sort(order[k::4])
        train = np.setdiff1d(np.arange(n), valid)
        extra = None if k == 0 else (x[:, :1] / (1 + np.abs(x[:, 1:2])))
        requests.append(FitRequest(extra, (3,), train, valid))
    return x, y, requests


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_workers_give_the_in_process_results(task: str) -> None:
    x, y, requests = _problem(task)
    here = FitPool(0).fit_many("k", x, y, requests, task, 3)  # type: ignore[arg-type]
    pool = FitPool(2)
    try:
        there = pool.fit_many("k", x, y, requests, task, 3)  # type: ignore[arg-type]
        again = pool.fit_many("k", x, y, requests[::-1], task, 3)[::-1]  # type: ignore[arg-type]
    finally:
        pool.close()
    assert pool.fallbacks == 0
    for a, b, c in zip(here, there, again, strict=True):
        assert a.score == b.score == c.score
        assert a.best_iteration == b.best_iteration
        np.testing.assert_array_equal(a.raw_valid, b.raw_valid)
        np.testing.assert_array_equal(a.importance, c.importance)


def test_a_worker_that_dies_mid_fit_is_replaced_and_its_fit_done_here(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y, requests = _problem("regression")
    pool = FitPool(1)
    try:
        first = pool.fit_many("k", x, y, requests[:1], "regression", 0)
        worker = pool._workers[0]
        assert worker is not None
        original = _Worker.call

        def die_first(self: _Worker, *args: object) -> object:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            return original(self, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(_Worker, "call", die_first)
        second = pool.fit_many("k", x, y, requests[:1], "regression", 0)
        assert pool.fallbacks == 1 and pool._workers[0] is None
        monkeypatch.setattr(_Worker, "call", original)
        third = pool.fit_many("k", x, y, requests[:1], "regression", 0)  # a new worker, sent the base again
        assert pool._workers[0] is not None and pool._workers[0].process.pid != worker.process.pid
    finally:
        pool.close()
    assert first[0].score == second[0].score == third[0].score


def test_a_request_the_worker_rejects_raises_the_real_error_here() -> None:
    x, y, requests = _problem("regression")
    bad = FitRequest(np.ones((5, 1)), (), requests[0].train_idx, requests[0].valid_idx)  # wrong number of rows
    pool = FitPool(1)
    try:
        with pytest.raises(ValueError):
            pool.fit_many("k", x, y, [bad], "regression", 0)
    finally:
        pool.close()


def test_worker_count_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WORKERS_ENV, "0")
    assert default_workers() == 0
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert default_workers() == 3
    monkeypatch.setenv(WORKERS_ENV, "two")
    with pytest.raises(ValueError, match="whole number"):
        default_workers()


def test_the_worker_imports_lightgbm_without_scikit_learn() -> None:
    code = (
        "import sys; from processors.engine.lgbm import import_lightgbm; import_lightgbm(); "
        "print('sklearn' in sys.modules, 'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_close_hangs_up_on_every_worker_and_waits_for_its_clean_exit() -> None:
    pool = FitPool(2)
    x, y, requests = _problem("regression")
    pool.fit_many("k", x, y, requests[:2], "regression", 0)
    processes = [w.process for w in pool._workers if w is not None]
    assert len(processes) == 2
    pool.close()
    assert [p.returncode for p in processes] == [0, 0]  # exited on EOF, not killed after the grace time
    assert pool._workers == [None, None]
    # a closed pool starts new workers when asked again
    assert len(pool.fit_many("k", x, y, requests[:1], "regression", 0)) == 1
    pool.close()


def test_the_step_of_a_request_is_used_by_the_workers_as_in_process() -> None:
    from dataclasses import replace

    x, y, requests = _problem("regression")
    coarse = [replace(r, learning_rate=0.3) for r in requests]
    here = FitPool(0).fit_many("k", x, y, coarse, "regression", 1)
    pool = FitPool(2)
    try:
        there = pool.fit_many("k", x, y, coarse, "regression", 1)
        fine = pool.fit_many("k", x, y, requests, "regression", 1)
    finally:
        pool.close()
    assert [r.score for r in here] == [r.score for r in there]
    assert [r.best_iteration for r in here] == [r.best_iteration for r in there]
    assert all(c.best_iteration < f.best_iteration for c, f in zip(there, fine, strict=True))
