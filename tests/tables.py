"""Small generated tables the tests share (no downloads)."""

from __future__ import annotations

import numpy as np
import polars as pl


def customers(n: int = 800, seed: int = 7) -> pl.DataFrame:
    """Churn depends on debt relative to income and on balance relative to tenure: two ratios trees
    cannot build from the raw columns, so a job selects both (seed 0: debt_to_income and a
    balance/tenure ratio). `customer_id` is the key."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(8, 0.6, n)
    debt = income * rng.uniform(0.05, 1.2, n)
    tenure = rng.uniform(1, 20, n)
    balance = tenure * rng.uniform(0.1, 3.0, n) * 100
    logit = 9 * (debt / income - 0.6) + 4 * (balance / (tenure * 100) - 1.5)
    churn = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pl.DataFrame(
        {
            "customer_id": np.arange(100001, 100001 + n),
            "Income": income,
            "Debt": debt,
            "Tenure": tenure,
            "Balance": balance,
            "Age": rng.integers(18, 80, n),
            "Churn": np.where(churn, "yes", "no"),
        }
    )
